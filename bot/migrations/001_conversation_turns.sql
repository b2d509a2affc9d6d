-- Recent turns of each conversation: the short-term context that covers the gap between a
-- reply and the moment its memory write lands. Only the newest few per conversation are kept.
create table conversation_turns (
    id bigint generated always as identity primary key,
    conversation_id text not null,
    owner_id text not null,
    role text not null check (role in ('user', 'assistant')),
    content text not null,
    at timestamptz not null
);

create index conversation_turns_recent_idx on conversation_turns (conversation_id, id desc);
create index conversation_turns_owner_idx on conversation_turns (owner_id);
