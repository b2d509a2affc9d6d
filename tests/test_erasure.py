"""Erasing a person while their writes run, and what linking carries over, on the real stack:
embedded PostgreSQL, Mem0, the procrastinate queue, the Supabase Auth stand-in and the OpenAI
SDK against the scripted server. Each test holds a model call at the moment that matters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from bot.config import Settings
from tests.conftest import answer
from tests.fakes.openai_server import ScriptedOpenAI
from tests.linkrig import LinkRig
from tests.traces import everything_about

MakeSettings = Callable[..., Settings]
EMAIL = "alice@example.com"



async def _held_until_asked(server: ScriptedOpenAI, kind: str) -> None:
    """Wait until one more request of ``kind`` than now has reached the (holding) server."""
    seen = len(server.calls(kind))  # type: ignore[arg-type]
    assert await asyncio.to_thread(server.wait_for, kind, seen + 1)  # type: ignore[arg-type]


def _purges_waiting(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("select count(*) from owner_purges").fetchone()
    assert row is not None
    return int(row[0])


async def test_a_user_deleted_while_a_write_and_a_turn_run_leaves_nothing_under_their_id(
    rig: LinkRig, openai_server: ScriptedOpenAI, database_url: str
) -> None:
    await rig.linked("alice", EMAIL)
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None

    # A memory write in flight: its extraction call is held.
    openai_server.hold("extraction")
    seen = len(openai_server.calls("extraction"))
    await answer(rig.app.core, rig.event("alice", "My bank PIN is 4321"))
    assert await asyncio.to_thread(openai_server.wait_for, "extraction", seen + 1)
    # A turn being answered: its chat call is held.
    openai_server.hold("chat")
    seen_chat = len(openai_server.calls("chat"))
    turn = asyncio.create_task(
        answer(rig.app.core, rig.event("alice", "My safe opens with 1789")))
    assert await asyncio.to_thread(openai_server.wait_for, "chat", seen_chat + 1)

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from auth.users where id = %s", (user.id,))
    assert await rig.app.purger.sweep() == 1
    # A job of the owner is still running: the purge stays queued until it is not.
    assert _purges_waiting(database_url) == 1

    openai_server.release("chat")
    await turn
    openai_server.release("extraction")
    await rig.app.jobs.wait_idle()
    await rig.app.purger.sweep()
    assert _purges_waiting(database_url) == 0

    for needle in ("4321", "1789"):
        left = await everything_about(database_url, rig.app.settings.data_dir, user.id, needle)
        assert set(left.values()) == {0}, (needle, left)


async def test_forget_all_right_after_linking_is_not_undone_by_a_write_still_running(
    rig: LinkRig, openai_server: ScriptedOpenAI, database_url: str
) -> None:
    openai_server.hold("extraction")
    seen = len(openai_server.calls("extraction"))
    await answer(rig.app.core, rig.event("alice", "My locker code is 4711"))
    assert await asyncio.to_thread(openai_server.wait_for, "extraction", seen + 1)

    await rig.linked("alice", EMAIL)
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None
    done = await rig.command("alice", "memory", "forget-all confirm")
    assert "I forgot 0 memories" in done.text
    openai_server.release("extraction")
    await rig.app.jobs.wait_idle()

    listed = await rig.command("alice", "memory", "list")
    assert "4711" not in listed.text
    for owner in (user.id, "console:alice"):
        left = await everything_about(database_url, rig.app.settings.data_dir, owner, "4711")
        assert left["memories"] == 0 and left["mem0_history"] == 0, (owner, left)


async def test_a_pause_and_receipts_off_survive_linking_and_the_link_reply_says_so(
    rig: LinkRig, openai_server: ScriptedOpenAI
) -> None:
    assert "paused" in (await rig.command("alice", "memory", "pause")).text.lower()
    await rig.command("alice", "memory", "receipts off")
    reply = await rig.linked("alice", EMAIL)
    assert reply.text.startswith("Linked") and "paused" in reply.text, reply.text
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None

    seen = len(openai_server.calls("extraction"))
    await answer(rig.app.core, rig.event("alice", "I play the oboe in a band"))
    await rig.app.jobs.wait_idle()
    assert len(openai_server.calls("extraction")) == seen
    assert await rig.app.memory.records(user.id) == []
    person = await rig.app.choices.person(user.id)
    assert person.paused and not person.receipts


async def test_a_login_that_forgot_everything_keeps_its_forget_time_when_another_account_links(
    rig: LinkRig, openai_server: ScriptedOpenAI
) -> None:
    await rig.linked("alice", EMAIL)
    user = rig.auth.user_by_email(EMAIL)
    assert user is not None
    await rig.command("alice", "memory", "forget-all confirm")
    forgotten = (await rig.app.choices.person(user.id)).forgotten_at
    assert forgotten is not None
    await rig.linked("bob", EMAIL)  # another account of the same person, never forgotten
    after = await rig.app.choices.person(user.id)
    assert after.forgotten_at == forgotten and not after.paused


@contextmanager
def _history_writes_blocked(database_url: str) -> Iterator[Callable[[], None]]:
    """Make Mem0's history inserts wait (a trigger waits on an advisory lock this test holds)
    until the returned function is called."""
    holder = psycopg.connect(database_url, autocommit=True)
    holder.execute("select pg_advisory_lock(4242)")
    holder.execute(
        "create or replace function test_wait_for_history() returns trigger language plpgsql"
        " as $$ begin perform pg_advisory_lock_shared(4242);"
        " perform pg_advisory_unlock_shared(4242); return new; end $$")
    holder.execute("create trigger test_wait before insert on mem0_history"
                   " for each row execute function test_wait_for_history()")
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            holder.execute("select pg_advisory_unlock(4242)")
            released = True

    try:
        yield release
    finally:
        release()
        holder.execute("drop trigger test_wait on mem0_history")
        holder.close()


async def _history_insert_waiting(database_url: str) -> None:
    """Until a session waits on the test's advisory lock (Mem0 is inside its history insert)."""
    for _ in range(200):
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "select count(*) from pg_locks where locktype = 'advisory' and not granted"
            ).fetchone()
        if row and row[0]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("Mem0 never reached its history insert")


async def test_forget_all_between_mems0_insert_and_its_history_leaves_no_history(
    rig: LinkRig, database_url: str
) -> None:
    with _history_writes_blocked(database_url) as release:
        await answer(rig.app.core, rig.event("alice", "My passport number is X99771"))
        await _history_insert_waiting(database_url)
        done = await rig.command("alice", "memory", "forget-all confirm")
        assert "I forgot 1 memory" in done.text
        release()
        await rig.app.jobs.wait_idle()
    left = await everything_about(database_url, rig.app.settings.data_dir, "console:alice",
                                  "X99771")
    assert set(left.values()) == {0}, left
