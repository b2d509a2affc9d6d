-- Account linking: one-time link requests, the links they make, and the Supabase users whose
-- memories live here. On a Supabase database (where auth.users exists) the user ids reference
-- auth.users(id) on delete cascade, and deleting a user queues their memories for purging.
-- deploy/supabase/migrations holds the same schema for `supabase db push`.

-- Long-lived secrets every membot process shares (the key that signs CSRF tokens and hashes
-- email addresses for rate limits), made once by the first process that needs them.
create table if not exists site_keys (
    name text primary key,
    key bytea not null
);

-- One row per /link. Only a hash of the token is stored. A request moves through: created
-- (token sent in chat) -> email sent (bound to one browser) -> confirmed (the Supabase user is
-- known, a confirmation code is shown) -> used (the code came back in chat; the link is made).
create table if not exists link_requests (
    id uuid primary key,
    token_hash bytea not null unique,
    platform text not null,
    workspace text not null,
    platform_user text not null,
    account_name text not null default '',
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    browser_hash bytea,
    email_hint text,
    email_sent_at timestamptz,
    code_verifier text,
    auth_user_id uuid,
    code_hash bytea,
    confirmed_at timestamptz,
    failed_codes integer not null default 0,
    used_at timestamptz
);
create index if not exists link_requests_account_idx
    on link_requests (platform, workspace, platform_user, created_at);

-- Emails sent per address (an HMAC of it, never the address), for the per-address rate limit.
create table if not exists link_email_sends (
    email_hash bytea not null,
    sent_at timestamptz not null default now()
);
create index if not exists link_email_sends_idx on link_email_sends (email_hash, sent_at);

-- A platform account tied to a Supabase user. One link per account; /unlink removes it.
create table if not exists account_links (
    platform text not null,
    workspace text not null,
    platform_user text not null,
    account_key text not null unique,
    user_id uuid not null,
    email_hint text not null,
    linked_at timestamptz not null default now(),
    primary key (platform, workspace, platform_user)
);
create index if not exists account_links_user_idx on account_links (user_id);

-- Supabase users whose memories are kept here. Stays after /unlink (the memories stay with the
-- user); removed, by cascade, when the Supabase user is deleted, which queues the purge.
create table if not exists memory_owners (
    user_id uuid primary key,
    since timestamptz not null default now()
);

-- Owners whose memories must be deleted. Every membot process sweeps this queue.
create table if not exists owner_purges (
    owner_id text primary key,
    requested_at timestamptz not null default now()
);

create or replace function membot_queue_owner_purge() returns trigger
language plpgsql security definer set search_path = public as $$
begin
    insert into owner_purges (owner_id) values (old.user_id::text) on conflict do nothing;
    return old;
end
$$;

drop trigger if exists memory_owners_purge on memory_owners;
create trigger memory_owners_purge after delete on memory_owners
    for each row execute function membot_queue_owner_purge();

-- On Supabase: tie the user ids to auth.users, and keep the tables away from the API roles.
do $$
begin
    if to_regclass('auth.users') is not null then
        alter table account_links drop constraint if exists account_links_user_fk;
        alter table account_links add constraint account_links_user_fk
            foreign key (user_id) references auth.users (id) on delete cascade;
        alter table memory_owners drop constraint if exists memory_owners_user_fk;
        alter table memory_owners add constraint memory_owners_user_fk
            foreign key (user_id) references auth.users (id) on delete cascade;
        alter table link_requests drop constraint if exists link_requests_user_fk;
        alter table link_requests add constraint link_requests_user_fk
            foreign key (auth_user_id) references auth.users (id) on delete cascade;
    end if;
    if exists (select from pg_roles where rolname = 'anon') then
        revoke all on site_keys, link_requests, link_email_sends, account_links, memory_owners,
            owner_purges from anon, authenticated;
        revoke execute on function membot_queue_owner_purge() from public, anon, authenticated;
    end if;
end
$$;

alter table site_keys enable row level security;
alter table link_requests enable row level security;
alter table link_email_sends enable row level security;
alter table account_links enable row level security;
alter table memory_owners enable row level security;
alter table owner_purges enable row level security;
