-- membot_record also wakes the learning jobs of the owners it queued messages for, in the same
-- call: the wake was a second round trip (two, when a batch was full) after every recorded
-- exchange. The rule is the one bot.learning.schedule.Schedule passes in: an owner's job is
-- due at once when `batch_size` or more of their messages wait (or `batch_idle` is 0), else in
-- `batch_idle` seconds (then a waiting job is enough). The job rows are written as
-- procrastinate's `defer` writes them (its version is pinned), so its insert trigger notifies
-- the workers; a waiting job due later is replaced by one due now.
--
-- The function of migration 008 (17 arguments) is left for processes of the previous version
-- still running during an upgrade; this one takes five more.
create or replace function membot_record(
    lock_key integer, owners text[],
    turn_conversations text[], turn_owners text[], turn_roles text[], turn_texts text[],
    turn_times timestamptz[], turn_said timestamptz[], keep integer, events text[],
    write_events text[], write_owners text[], write_accounts text[], write_texts text[],
    write_said timestamptz[], write_metadata text[], write_sources text[],
    batch_size integer, batch_idle double precision,
    job_queue text, job_task text, job_lock_prefix text)
returns table (owner_id text, queued bigint, waiting bigint)
language plpgsql volatile
as $$
#variable_conflict use_column
declare
    written text[];
    queued_counts bigint[];
    waiting_counts bigint[];
begin
    perform pg_advisory_xact_lock_shared(lock_key, hashtext(o)) from unnest(owners) o order by o;
    with turns as (
        select * from unnest(turn_conversations, turn_owners, turn_roles, turn_texts, turn_times,
                             turn_said) with ordinality
            as t(conversation_id, owner_id, role, content, at, said, n)),
    added_turns as (
        insert into conversation_turns (conversation_id, owner_id, role, content, at)
        select t.conversation_id, t.owner_id, t.role, t.content, t.at from turns t
        where not exists (select from owner_settings s where s.owner_id = t.owner_id
                          and s.forgotten_at >= t.said)
        order by t.n),
    -- The delete cannot see the rows this statement adds: it keeps `keep` minus those.
    trimmed as (
        delete from conversation_turns old using (
            select r.id from (
                select c.id, c.conversation_id,
                       row_number() over (partition by c.conversation_id order by c.id desc) age
                from conversation_turns c
                where c.conversation_id in (select t.conversation_id from turns t)) r
            join (select t.conversation_id, count(*) as new from turns t
                  group by t.conversation_id) k using (conversation_id)
            where r.age > greatest(keep - k.new, 0)) gone
        where old.id = gone.id),
    settled as (
        update processed_events p set pending = null
        where p.event_id = any(events) and p.pending is not null
        returning p.event_id),
    writes as (
        select * from unnest(write_events, write_owners, write_accounts, write_texts,
                             write_said, write_metadata, write_sources)
            as w(event_id, owner_id, account, text, said_at, metadata, source)),
    added as (
        insert into memory_inbox (owner_id, account, event_id, text, said_at, metadata, source)
        select w.owner_id, w.account, w.event_id, w.text, w.said_at, w.metadata::jsonb,
               w.source::jsonb
        from writes w
        where not exists (select from owner_settings s where s.owner_id = w.owner_id
                          and s.forgotten_at >= w.said_at)
          and (w.event_id in (select e.event_id from settled e)
               or not exists (select from processed_events p where p.event_id = w.event_id))
        on conflict (event_id) do nothing
        returning memory_inbox.owner_id)
    select coalesce(array_agg(o.owner_id order by o.owner_id), '{}'),
           coalesce(array_agg(o.queued order by o.owner_id), '{}'),
           coalesce(array_agg(o.queued + (select count(*) from memory_inbox m
                                          where m.owner_id = o.owner_id
                                            and m.failed_at is null)
                              order by o.owner_id), '{}')
      into written, queued_counts, waiting_counts
    from (select w.owner_id, (select count(*) from added a where a.owner_id = w.owner_id)
              as queued
          from writes w group by w.owner_id) o;

    -- Each written owner's job (the statements below see the rows written above).
    delete from procrastinate_jobs j
    where j.queueing_lock in (select job_lock_prefix || w.owner_id
                              from unnest(written, waiting_counts) w(owner_id, waiting)
                              where w.waiting >= batch_size or batch_idle <= 0)
      and j.status = 'todo' and j.scheduled_at > now();
    insert into procrastinate_jobs (queue_name, task_name, lock, queueing_lock, args,
                                    scheduled_at)
    select job_queue, job_task, job_lock_prefix || w.owner_id, job_lock_prefix || w.owner_id,
           jsonb_build_object('owner_id', w.owner_id),
           case when w.waiting < batch_size and batch_idle > 0
                then now() + make_interval(secs => ceil(batch_idle)) end
    from unnest(written, waiting_counts) w(owner_id, waiting)
    on conflict (queueing_lock) where status = 'todo' do nothing;

    return query select * from unnest(written, queued_counts, waiting_counts);
end;
$$;
