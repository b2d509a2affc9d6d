-- membot's erasure support for a Supabase project, for `supabase db push` (see the README). The
-- same change as bot/migrations/006_erasure.sql, which membot also applies by itself at start;
-- both are idempotent.
--
-- mem0_history.owner_id: whose memory a history row is about, so forgetting everything finds a
-- history row written after the memory it describes was deleted.

alter table mem0_history add column if not exists owner_id text;
create index if not exists mem0_history_owner_idx on mem0_history (owner_id);
