"""A turn is recorded after its reply is sent: a bot process killed in between loses no memory
write. The real ``membot discord`` and ``membot worker`` in processes of their own, on the fake
Discord, PostgreSQL and the scripted model server."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg

from tests.fakes.discord import FakeDiscord, FakeUser, Json, snowflake
from tests.fakes.openai_server import ScriptedOpenAI
from tests.processes import bot_env, membots, until

# Short model and search budgets, so that a claim whose turn was never recorded is old enough
# for the sweep after twice (2 + 2) seconds; the sweep runs every second.
_QUICK = {"MODEL_TIMEOUT": "2", "MODEL_MAX_RETRIES": "0", "MEMORY_SEARCH_TIMEOUT": "2",
          "WORKER_STALLED_AFTER": "2", "WORKER_POLL_INTERVAL": "0.5"}


def answers(fake: FakeDiscord, message: Json) -> list[str]:
    return [str(fake.message(r.message_id or 0)["content"]) for r in fake.sent_messages()
            if str((r.body.get("message_reference") or {}).get("message_id")) == message["id"]]


async def test_a_process_killed_between_sending_the_answer_and_recording_it_loses_no_write(
    tmp_path: Path, database_url: str, model: ScriptedOpenAI,
) -> None:
    fact = "I keep bees in my garden"
    conn = await asyncpg.connect(database_url)
    try:
        with FakeDiscord() as fake:
            env = bot_env(database_url=database_url, model_url=model.base_url,
                          data_dir=tmp_path / "bot-data", DISCORD_TOKEN=fake.token,
                          FAKE_DISCORD_REST=fake.rest_base, FAKE_DISCORD_GATEWAY=fake.gateway_url,
                          CHAT_MODEL="bot", **_QUICK)
            with membots(tmp_path / "processes", ("bot", ["discord"], env)) as [bot]:
                await until(lambda: bool(fake.identifies()), [bot], "the bot to identify")
                # Nothing can write recorded turns until this transaction ends: the bot's record
                # of the turn waits, after its answer went out, and is killed there.
                blocker = conn.transaction()
                await blocker.start()
                await conn.execute("lock table conversation_turns in exclusive mode")
                message = fake.message_create(fact, dm=True,
                                              author=FakeUser(snowflake(), "beekeeper"))
                assert fake.dispatch("MESSAGE_CREATE", message) == 1
                await until(lambda: answers(fake, message) == [f"[bot] {fact}"], [bot],
                            "the answer")

                await until(lambda: lock_waiters(database_url), [bot],
                            "the bot's record to wait for the lock")
                bot.popen.send_signal(signal.SIGKILL)
                bot.popen.wait(30)
                # Its record was not committed, and dies with it (Postgres would see the lost
                # connection only once the statement ended).
                await conn.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity"
                    " where wait_event_type = 'Lock' and datname = current_database()")
                await blocker.rollback()

        event_id = f"discord:{message['id']}"
        pending = await conn.fetchval(
            "select pending->>'text' from processed_events where event_id = $1", event_id)
        assert pending == fact  # the claim kept the message
        assert await conn.fetchval("select count(*) from memory_inbox") == 0
        assert await conn.fetchval("select count(*) from conversation_turns") == 0

        # A worker started afterwards (any process with a worker sweeps) queues and learns it.
        worker_env = bot_env(database_url=database_url, model_url=model.base_url,
                             data_dir=tmp_path / "worker-data", **_QUICK)
        with membots(tmp_path / "processes", ("worker", ["worker"], worker_env)) as [worker]:
            async def learned() -> bool:
                found: int = await conn.fetchval(
                    "select count(*) from memories where payload->>'data' = $1", fact)
                return found > 0

            await until(learned, [worker], "the message to be learned")
            assert worker.stop() == 0
        assert await conn.fetchval(
            "select count(*) from memories where payload->>'data' = $1", fact) == 1
        assert await conn.fetchval(
            "select pending from processed_events where event_id = $1", event_id) is None
        assert "queued from their claims" in worker.log
        said = [call for call in model.calls("extraction") if fact in str(call.body)]
        assert len(said) == 1
    finally:
        await conn.close()


async def lock_waiters(database_url: str) -> bool:
    """Whether a session of the database waits for a lock (the bot's record, behind the
    test's)."""
    conn = await asyncpg.connect(database_url)
    try:
        waiting: bool = await conn.fetchval(
            "select exists (select from pg_locks where not granted and database ="
            " (select oid from pg_database where datname = current_database()))")
        return waiting
    finally:
        await conn.close()
