"""Users mirrored into a Postgres `auth.users`, as Supabase keeps them in the project's database.

Only `(id, email)` are written, so a test's own, wider `auth.users` works as long as its other
columns have defaults. Deletes run in the database before the fake forgets the user, so a
foreign key without `on delete cascade` makes the admin delete fail, as it would on Supabase.
A row a test deletes with SQL deletes the user too (the fake looks before each request);
rows inserted with SQL are not picked up.
"""

from __future__ import annotations

import threading

import psycopg

from tests.fakes.supabase.errors import AuthError

__all__ = ["UsersMirror"]

_SCHEMA = """
create schema if not exists auth;
create table if not exists auth.users (id uuid primary key, email text);
"""


class UsersMirror:
    """One autocommit connection, opened by `open()` and shared under a lock."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            if self._conn is None:
                self._conn = psycopg.connect(self.database_url, autocommit=True)
                self._conn.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def ids(self) -> set[str]:
        """The ids in auth.users now."""
        with self._lock:
            if self._conn is None:
                return set()
            try:
                rows = self._conn.execute("select id::text from auth.users").fetchall()
            except psycopg.Error as error:
                raise AuthError(500, "unexpected_failure", "Database error finding users") \
                    from error
            return {str(row[0]) for row in rows}

    def insert(self, user_id: str, email: str) -> None:
        self._run("insert into auth.users (id, email) values (%s, %s)",
                  (user_id, email or None), "Database error saving new user")

    def delete(self, user_id: str) -> None:
        self._run("delete from auth.users where id = %s", (user_id,),
                  "Database error deleting user")

    def _run(self, sql: str, params: tuple[str | None, ...], failure: str) -> None:
        with self._lock:
            if self._conn is None:
                raise AuthError(500, "unexpected_failure", failure + " (mirror not open)")
            try:
                self._conn.execute(sql, params)
            except psycopg.Error as error:
                raise AuthError(500, "unexpected_failure", failure) from error
