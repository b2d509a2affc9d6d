-- The login emails the link pages send, one row each, claimed before the email goes out: the
-- address a link request is bound to (its first claim), and the counts behind the limits per
-- address, per chat account and per bot. Addresses appear only as an HMAC, never in clear.
-- deploy/supabase/migrations holds the same table for `supabase db push`.
create table if not exists link_email_claims (
    id bigint generated always as identity primary key,
    request_id uuid not null references link_requests (id) on delete cascade,
    account_key text not null,
    email_hash bytea not null,
    claimed_at timestamptz not null default now()
);
create index if not exists link_email_claims_request_idx on link_email_claims (request_id);
create index if not exists link_email_claims_email_idx on link_email_claims (email_hash, claimed_at);
create index if not exists link_email_claims_account_idx
    on link_email_claims (account_key, claimed_at);
create index if not exists link_email_claims_time_idx on link_email_claims (claimed_at);

do $$
begin
    if exists (select from pg_roles where rolname = 'anon') then
        revoke all on link_email_claims from anon, authenticated;
    end if;
end
$$;

alter table link_email_claims enable row level security;

-- The per-address counts of migration 003, which these claims replace.
drop table if exists link_email_sends;
