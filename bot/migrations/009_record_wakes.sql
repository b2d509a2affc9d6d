-- A membot_record that also wakes the learning jobs of the owners whose messages it queued, in
-- the same call: the wake was a second round trip (two, when a batch was full) after every
-- recorded exchange. It records through migration 008's function (which processes of the
-- previous version go on calling during an upgrade), then wakes, under the rule
-- bot.learning.schedule.Schedule passes in: an owner's job is due at once when `batch_size` or
-- more of their messages wait (or `batch_idle` is 0), else in `batch_idle` seconds (then a
-- waiting job is enough). The job rows are written as procrastinate's `defer` writes them (its
-- version is pinned), so its insert trigger notifies the workers; a waiting job due later is
-- replaced by one due now.
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
    select coalesce(array_agg(r.owner_id order by r.owner_id), '{}'),
           coalesce(array_agg(r.queued order by r.owner_id), '{}'),
           coalesce(array_agg(r.waiting order by r.owner_id), '{}')
      into written, queued_counts, waiting_counts
    from membot_record(lock_key, owners, turn_conversations, turn_owners, turn_roles,
                       turn_texts, turn_times, turn_said, keep, events, write_events,
                       write_owners, write_accounts, write_texts, write_said, write_metadata,
                       write_sources) r;

    -- Each written owner's job (these statements see the rows written above).
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
