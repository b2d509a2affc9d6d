-- What erasing a person needs beyond the earlier tables.
--
-- mem0_history.owner_id: whose memory a history row is about, written with the row (Mem0 itself
-- records no owner). Forgetting everything deletes history by owner, so a history row written
-- after the memory it describes was deleted (a forget landing in the middle of a write) is found
-- too. Rows from before this migration have no owner and are found by their memory id, as then.
--
-- owner_settings.forgotten_at is the tombstone of both "forget everything" and the purge of a
-- deleted Supabase user: the purge no longer deletes the row, it resets the person's choices and
-- keeps the time, so a write or a turn still running under that owner sees it after storing.

alter table mem0_history add column if not exists owner_id text;
create index if not exists mem0_history_owner_idx on mem0_history (owner_id);
