"""Mem0's history and recent raw messages in Postgres, instead of a SQLite file on each machine.

Mem0 keeps every text a memory ever had (``history``) and each owner's last raw messages, which
it reads back as context for the next extraction (``messages``), in a local SQLite file. There,
"forget me" run on one machine leaves copies on every other, and a new machine starts without
the context. :class:`PostgresHistory` is a drop-in for mem0's ``SQLiteManager`` (the methods
``Memory`` calls, with the same arguments and results) on membot's tables ``mem0_history`` and
``mem0_messages`` (migration 004), in the one database every process shares, where forgetting
reaches them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

__all__ = ["KEPT_MESSAGES", "PostgresHistory", "session_scope"]

KEPT_MESSAGES = 10  # per owner, as mem0 keeps them

_HISTORY_COLUMNS = (
    "id, memory_id, old_memory, new_memory, event, created_at, updated_at, is_deleted,"
    " actor_id, role"
)


def session_scope(owner_id: str) -> str:
    """The key mem0 files an owner's raw messages under (its ``_build_session_scope`` for a
    ``user_id`` alone, with the same escaping)."""
    escaped = owner_id.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
    return f"user_id={escaped}"


class PostgresHistory:
    """Mem0's history manager on Postgres. Thread-safe (each call takes a pooled connection
    and commits before returning), as mem0 calls it from its write threads. Only ``reset``
    differs: it empties the tables rather than dropping them.

    History rows written inside :meth:`writing_for` carry the owner's id (``owner_id``,
    migration 006), so forgetting an owner finds them even when Mem0 writes one after the
    memory it describes was deleted."""

    def __init__(self, pool: ConnectionPool[Connection[Any]]) -> None:
        self._pool = pool
        self._local = threading.local()

    @contextmanager
    def writing_for(self, owner_id: str) -> Iterator[None]:
        """History written by this thread until the block ends is the owner's. Mem0 writes
        history on the thread that called ``add``."""
        self._local.owner = owner_id
        try:
            yield
        finally:
            self._local.owner = None

    def add_history(
        self,
        memory_id: str,
        old_memory: str | None,
        new_memory: str | None,
        event: str,
        *,
        created_at: str | None = None,
        updated_at: str | None = None,
        is_deleted: int = 0,
        actor_id: str | None = None,
        role: str | None = None,
    ) -> None:
        self.batch_add_history([{
            "memory_id": memory_id, "old_memory": old_memory, "new_memory": new_memory,
            "event": event, "created_at": created_at, "updated_at": updated_at,
            "is_deleted": is_deleted, "actor_id": actor_id, "role": role,
        }])

    def batch_add_history(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        owner = getattr(self._local, "owner", None)
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                f"insert into mem0_history ({_HISTORY_COLUMNS}, owner_id)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        str(uuid.uuid4()), r.get("memory_id"), r.get("old_memory"),
                        r.get("new_memory"), r.get("event"), r.get("created_at"),
                        r.get("updated_at"), int(r.get("is_deleted") or 0), r.get("actor_id"),
                        r.get("role"), owner,
                    )
                    for r in records
                ],
            )

    def get_history(self, memory_id: str) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"select {_HISTORY_COLUMNS} from mem0_history where memory_id = %s"
                " order by created_at, updated_at, recorded_at",
                (memory_id,),
            ).fetchall()
        keys = [c.strip() for c in _HISTORY_COLUMNS.split(",")]
        found = [dict(zip(keys, row, strict=True)) for row in rows]
        for entry in found:
            entry["is_deleted"] = bool(entry["is_deleted"])
        return found

    def save_messages(self, messages: Sequence[dict[str, Any]], session_scope: str) -> None:
        if not messages:
            return
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "insert into mem0_messages (id, session_scope, role, content, name)"
                " values (%s, %s, %s, %s, %s)",
                [
                    (str(uuid.uuid4()), session_scope, m.get("role"), m.get("content"),
                     m.get("name"))
                    for m in messages
                ],
            )
            cur.execute(
                "delete from mem0_messages where session_scope = %s and id not in ("
                " select id from mem0_messages where session_scope = %s"
                " order by created_at desc limit %s)",
                (session_scope, session_scope, KEPT_MESSAGES),
            )

    def get_last_messages(self, session_scope: str, limit: int = 10) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "select role, content, name, created_at from ("
                " select role, content, name, created_at from mem0_messages"
                " where session_scope = %s order by created_at desc limit %s"
                ") newest order by created_at",
                (session_scope, limit),
            ).fetchall()
        return [
            {"role": r[0], "content": r[1], "name": r[2], "created_at": r[3].isoformat()}
            for r in rows
        ]

    def reset(self) -> None:
        with self._pool.connection() as conn:
            conn.execute("delete from mem0_history")
            conn.execute("delete from mem0_messages")

    def close(self) -> None:
        """The pool belongs to the caller, who closes it."""
