-- A turn's message is kept with its claim until the turn is recorded. A turn is recorded after
-- its reply is sent (the reply waits for nothing it does not need); if the process dies in
-- between, `pending` still holds what the person said, and the queue's sweep moves it to
-- memory_inbox (under the person's settings then), so the write is not lost. Recording the
-- turn, or that sweep, sets it back to null, whichever comes first: the message is queued
-- exactly once.
alter table processed_events add column if not exists pending jsonb;

create index if not exists processed_events_pending_idx on processed_events (claimed_at)
    where pending is not null;

-- Records a batch of answered exchanges in one call (one round trip, after the replies went
-- out): each conversation's new turns, trimmed to its newest `keep`; each event's claim
-- settled; each message to learn queued in memory_inbox, unless the sweep queued it from its
-- claim already. Nothing is written for a message said before its owner's last forget: the
-- owners' shared erase locks are taken first (`lock_key`, hashtext(owner)), and every statement
-- after them sees a snapshot taken after them (a volatile function's), so a forget is either
-- waited for and seen, or waits for this call and deletes what it wrote. Returns, for each owner
-- with a write, how many of its messages this call queued and how many of theirs now wait.
create or replace function membot_record(
    lock_key integer, owners text[],
    turn_conversations text[], turn_owners text[], turn_roles text[], turn_texts text[],
    turn_times timestamptz[], turn_said timestamptz[], keep integer, events text[],
    write_events text[], write_owners text[], write_accounts text[], write_texts text[],
    write_said timestamptz[], write_metadata text[], write_sources text[])
returns table (owner_id text, queued bigint, waiting bigint)
language plpgsql volatile
as $$
#variable_conflict use_column
begin
    perform pg_advisory_xact_lock_shared(lock_key, hashtext(o)) from unnest(owners) o order by o;
    return query
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
    select o.owner_id, o.queued,
           o.queued + (select count(*) from memory_inbox m
                       where m.owner_id = o.owner_id and m.failed_at is null)
    from (select w.owner_id, (select count(*) from added a where a.owner_id = w.owner_id)
              as queued
          from writes w group by w.owner_id) o;
end;
$$;
