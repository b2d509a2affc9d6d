-- A turn's message is kept with its claim until the turn is recorded. A turn is recorded after
-- its reply is sent (the reply waits for nothing it does not need); if the process dies in
-- between, `pending` still holds what the person said, and the queue's sweep moves it to
-- memory_inbox (under the person's settings then), so the write is not lost. Recording the
-- turn, or that sweep, sets it back to null, whichever comes first: the message is queued
-- exactly once.
alter table processed_events add column if not exists pending jsonb;

create index if not exists processed_events_pending_idx on processed_events (claimed_at)
    where pending is not null;
