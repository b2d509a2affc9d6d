-- membot's count of login emails for a Supabase project, for `supabase db push` (see the
-- README). The same table as bot/migrations/007_link_email_claims.sql, which membot also applies
-- by itself at start; both are idempotent.
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
