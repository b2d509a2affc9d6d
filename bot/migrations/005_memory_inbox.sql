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
