-- Inbound event ids claimed before any side effect, so a redelivered event (a Discord gateway
-- replay, a Slack retry, possibly on another replica) is answered once. Old ids are pruned.
create table processed_events (
    event_id text primary key,
    claimed_at timestamptz not null default now()
);

create index processed_events_claimed_at_idx on processed_events (claimed_at);
