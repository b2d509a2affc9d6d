"""Where a person's data could be left behind: every table and file membot or Mem0 writes."""

from __future__ import annotations

from pathlib import Path

import asyncpg

__all__ = ["everything_about"]


async def everything_about(database_url: str, data_dir: Path, owner: str, needle: str
                            ) -> dict[str, int]:
    """How many rows or files, wherever mem0 or membot keeps user data, hold the owner's id or
    ``needle`` (a text only they said)."""
    conn = await asyncpg.connect(database_url)
    like = f"%{needle}%"
    try:
        found = {
            "memories": await conn.fetchval(
                "select count(*) from memories where payload->>'user_id' = $1"
                " or payload::text ilike $2", owner, like),
            "mem0_history": await conn.fetchval(
                "select count(*) from mem0_history where new_memory ilike $1"
                " or old_memory ilike $1", like),
            "mem0_messages": await conn.fetchval(
                "select count(*) from mem0_messages where session_scope = $1"
                " or content ilike $2", f"user_id={owner}", like),
            "conversation_turns": await conn.fetchval(
                "select count(*) from conversation_turns where owner_id = $1"
                " or content ilike $2", owner, like),
            "memory_inbox": await conn.fetchval(
                "select count(*) from memory_inbox where owner_id = $1 or text ilike $2",
                owner, like),
            "procrastinate_jobs": await conn.fetchval(
                "select count(*) from procrastinate_jobs where args->>'owner_id' = $1", owner),
        }
        if await conn.fetchval("select to_regclass('public.memories_entities') is not null"):
            found["memories_entities"] = await conn.fetchval(
                "select count(*) from memories_entities where payload->>'user_id' = $1", owner)
    finally:
        await conn.close()
    found["files"] = _files_holding(data_dir, needle)
    return found


def _files_holding(folder: Path, needle: str) -> int:
    return sum(1 for path in folder.rglob("*")
               if path.is_file() and needle.encode() in path.read_bytes())
