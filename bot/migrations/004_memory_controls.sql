-- What people and admins decide about memory, and mem0's history kept where forget reaches it.
--
-- owner_settings: one row per memory owner (an account key, or a linked Supabase user id) once
-- they change something: memory paused (and whether the bot has said so since), the learned
-- receipt, and the time of their last "forget everything", which a memory write for an older
-- message checks before and after it runs so nothing said before the forget comes back.
-- workspace_settings: per Discord server or Slack workspace, set by its admins: memory on or
-- off, the channels it is limited to (empty: every channel), whether memories are used in
-- answers outside DMs, and the receipt.
-- mem0_history, mem0_messages: what mem0 keeps besides the memory rows (old texts of each
-- memory; the owner's last raw messages as extraction context), which mem0 would otherwise keep
-- in a SQLite file on each machine.

create table if not exists owner_settings (
    owner_id text primary key,
    paused boolean not null default false,
    pause_noticed boolean not null default false,
    receipts boolean not null default true,
    forgotten_at timestamptz,
    updated_at timestamptz not null default now()
);

create table if not exists workspace_settings (
    platform text not null,
    workspace_id text not null,
    memory boolean not null default true,
    channels text[] not null default '{}',
    public_recall boolean not null default true,
    receipts boolean not null default true,
    updated_by text,
    updated_at timestamptz not null default now(),
    primary key (platform, workspace_id)
);

create table if not exists mem0_history (
    id text primary key,
    memory_id text not null,
    old_memory text,
    new_memory text,
    event text not null,
    created_at text,
    updated_at text,
    is_deleted integer not null default 0,
    actor_id text,
    role text,
    recorded_at timestamptz not null default clock_timestamp()
);
create index if not exists mem0_history_memory_idx on mem0_history (memory_id);

create table if not exists mem0_messages (
    id text primary key,
    session_scope text not null,
    role text,
    content text,
    name text,
    created_at timestamptz not null default clock_timestamp()
);
create index if not exists mem0_messages_scope_idx on mem0_messages (session_scope, created_at);

do $$
begin
    if exists (select from pg_roles where rolname = 'anon') then
        revoke all on owner_settings, workspace_settings, mem0_history, mem0_messages
            from anon, authenticated;
    end if;
end
$$;

alter table owner_settings enable row level security;
alter table workspace_settings enable row level security;
alter table mem0_history enable row level security;
alter table mem0_messages enable row level security;
