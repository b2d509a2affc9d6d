-- membot's memory inbox for a Supabase project, for `supabase db push` (see the README). The same
-- table as bot/migrations/005_memory_inbox.sql, which membot also applies by itself at start;
-- both are idempotent. The job queue's own tables (procrastinate) are created by `membot
-- migrate` or at start, from the procrastinate package membot pins.
-- The memory writes waiting to be learned: one row per message a person sent that the writer
-- should learn from, written in the same transaction as the exchange itself (so an answer that
-- was sent always has its write). The job queue (procrastinate, schema applied beside these
-- migrations) only says "learn owner X's inbox"; the rows are the work, which is why a lost or
-- repeated job loses or repeats nothing.
--
-- event_id is unique: a redelivered event cannot queue its write twice. A row leaves the inbox
-- in the transaction that follows a successful extraction, when forget-all cancels it, or when
-- the owner's memory is paused or forgotten since the message. A row whose learning failed for
-- good (its job out of retries, or an error no retry can fix) stays, with failed_at and the
-- error's class, out of later batches until an operator retries it.

create table if not exists memory_inbox (
    id bigserial primary key,
    owner_id text not null,
    account text not null,
    event_id text not null unique,
    text text not null,
    said_at timestamptz not null,
    metadata jsonb not null default '{}',
    source jsonb,
    created_at timestamptz not null default now(),
    failed_at timestamptz,
    error text
);

create index if not exists memory_inbox_owner on memory_inbox (owner_id, id);

do $$
begin
    if exists (select from pg_roles where rolname = 'anon') then
        revoke all on memory_inbox from anon, authenticated;
        revoke all on sequence memory_inbox_id_seq from anon, authenticated;
    end if;
end
$$;

alter table memory_inbox enable row level security;
