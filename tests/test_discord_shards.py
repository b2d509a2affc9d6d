"""One Discord bot served by several processes: each a real ``membot discord`` in a process of
its own, owning the shards its settings name, against the fake gateway (which routes events as
Discord does), on one PostgreSQL and the scripted model server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg
import pytest

from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser, Json, snowflake
from tests.fakes.openai_server import ScriptedOpenAI
from tests.processes import GUARD, BotProcess, bot_env, membots, until


@dataclass
class Shards:
    """The fake Discord with a guild on each of two shards, and the processes serving it."""

    fake: FakeDiscord
    model: ScriptedOpenAI
    processes: list[BotProcess]
    database_url: str

    def identified(self) -> bool:
        """Every process has identified its shard (and so gets its events from now on)."""
        return len(self.fake.identifies()) >= len(self.processes)

    def mention(self, guild: FakeGuild, text: str) -> Json:
        author = FakeUser(snowflake(), f"member-{text.split()[0]}")
        return self.fake.message_create(f"{self.fake.bot_mention} {text}", author=author,
                                        guild_id=guild.id, mentions=[self.fake.bot_user])

    def dm(self, text: str) -> Json:
        return self.fake.message_create(text, dm=True,
                                        author=FakeUser(snowflake(), "dm-writer"))

    def answers(self, message: Json) -> list[str]:
        """What the bot sent in reply to ``message``."""
        return [str(self.fake.message(r.message_id or 0)["content"])
                for r in self.fake.sent_messages()
                if str((r.body.get("message_reference") or {}).get("message_id"))
                == message["id"]]

    def taken_twice(self, message: Json) -> bool:
        """Both processes are done with ``message``: each answered it, or one answered and the
        other logged that the event ledger had it already."""
        refused = f"event discord:{message['id']} was already handled"
        answers = len(self.answers(message))
        return answers > 1 or (answers == 1 and any(refused in p.log for p in self.processes))

    def memories_of(self, message: Json) -> list[str]:
        """The memories stored from ``message`` (by the event id in their metadata)."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute("select payload->>'data' from memories"
                                " where %s = any(string_to_array(payload->>'event_ids', ' '))",
                                (f"discord:{message['id']}",)).fetchall()
        return [str(row[0]) for row in rows]


@pytest.fixture
def guilds() -> list[FakeGuild]:
    return [FakeGuild.on_shard(0, 2, "zero"), FakeGuild.on_shard(1, 2, "one")]


@contextlib.contextmanager
def start(tmp_path: Path, database_url: str, model: ScriptedOpenAI, fake: FakeDiscord,
          shard_ids: list[str]) -> Iterator[Shards]:
    """A ``membot discord`` process per entry of ``shard_ids``, all with two shards in total;
    the process serving ids "0" is named (and its chat model called) "shards-0"."""
    runs = [
        (f"shards-{ids}-{n}", ["discord"], bot_env(
            database_url=database_url, model_url=model.base_url,
            data_dir=tmp_path / f"data-{n}", CHAT_MODEL=f"shards-{ids}",
            DISCORD_TOKEN=fake.token, DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS=ids,
            FAKE_DISCORD_REST=fake.rest_base, FAKE_DISCORD_GATEWAY=fake.gateway_url))
        for n, ids in enumerate(shard_ids)
    ]
    with membots(tmp_path / "processes", *runs) as processes:
        yield Shards(fake, model, processes, database_url)


async def test_two_processes_split_the_shards_and_each_message_is_answered_once_by_its_owner(
    tmp_path: Path, database_url: str, model: ScriptedOpenAI, guilds: list[FakeGuild]
) -> None:
    with FakeDiscord(guilds=guilds, shard_count=2) as fake:
        with start(tmp_path, database_url, model, fake, ["0", "1"]) as shards:
            await until(shards.identified, shards.processes, "both processes to identify")
            assert sorted(i["shard"] for i in fake.identifies()) == [[0, 2], [1, 2]]
            assert len(fake.calls("commands")) == 1  # slash commands synced by shard 0's only

            on_zero = shards.mention(guilds[0], "zero: I grow tomatoes")
            on_one = shards.mention(guilds[1], "one: I play the cello")
            direct = shards.dm("dm: I live in Lisbon")
            for message in (on_zero, on_one, direct):
                assert fake.dispatch("MESSAGE_CREATE", message) == 1  # one session got it
            await until(lambda: all(shards.answers(m) for m in (on_zero, on_one, direct)),
                        shards.processes, "the three answers")
            await until(lambda: all(shards.memories_of(m) for m in (on_zero, on_one, direct)),
                        shards.processes, "the three memory writes")
            assert [p.stop() for p in shards.processes] == [0, 0]

        # Answered once each, by the process owning the message's shard; DMs by shard 0's.
        assert shards.answers(on_zero) == ["[shards-0] zero: I grow tomatoes"]
        assert shards.answers(on_one) == ["[shards-1] one: I play the cello"]
        assert shards.answers(direct) == ["[shards-0] dm: I live in Lisbon"]
        assert len(fake.sent_messages()) == 3
        # Each message's memory written once, by whichever process's worker took it.
        assert len([c for c in model.calls("extraction") if "I play the cello" in str(c.body)
                    ]) == 1
        for message, fact in ((on_zero, "I grow tomatoes"), (on_one, "I play the cello"),
                              (direct, "I live in Lisbon")):
            [memory] = shards.memories_of(message)
            assert fact in memory


async def test_two_processes_both_holding_shard_0_answer_each_message_once(
    tmp_path: Path, database_url: str, model: ScriptedOpenAI, guilds: list[FakeGuild]
) -> None:
    with FakeDiscord(guilds=guilds, shard_count=2) as fake:
        with start(tmp_path, database_url, model, fake, ["0", "0"]) as shards:
            await until(shards.identified, shards.processes, "both processes to identify")
            assert [i["shard"] for i in fake.identifies()] == [[0, 2], [0, 2]]

            mention = shards.mention(guilds[0], "twice: my dog is called Rex")
            direct = shards.dm("dm-twice: my cat is called Tom")
            for message in (mention, direct):
                assert fake.dispatch("MESSAGE_CREATE", message) == 2  # both sessions got it
            # The process that claims a message second in the event ledger lets it be.
            for message in (mention, direct):
                await until(partial(shards.taken_twice, message), shards.processes,
                            f"both processes to take message {message['id']}")
            await until(lambda: all(shards.memories_of(m) for m in (mention, direct)),
                        shards.processes, "the memory writes")
            assert [p.stop() for p in shards.processes] == [0, 0]

        assert [a.split("] ")[1] for a in shards.answers(mention)] == [
            "twice: my dog is called Rex"]
        assert [a.split("] ")[1] for a in shards.answers(direct)] == [
            "dm-twice: my cat is called Tom"]
        assert len(fake.sent_messages()) == 2
        assert len(model.calls("chat")) == 2
        assert len(model.calls("extraction")) == 2
        assert len(shards.memories_of(mention)) == len(shards.memories_of(direct)) == 1


def test_a_shard_outside_the_count_stops_membot_with_one_sentence(
    tmp_path: Path, database_url: str, model: ScriptedOpenAI
) -> None:
    env = bot_env(database_url=database_url, model_url=model.base_url, data_dir=tmp_path,
                  DISCORD_TOKEN="some-token", DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS="1-2")
    with membots(tmp_path, ("bad-shards", ["discord"], env)) as [process]:
        assert process.popen.wait(timeout=GUARD) == 2
    assert process.log.strip() == ("membot: DISCORD_SHARD_IDS names shard 2, but with "
                                   "DISCORD_SHARD_COUNT=2 the shards are numbered 0-1.")


async def test_a_separate_worker_learns_what_the_discord_process_queued_and_puts_the_receipt(
    tmp_path: Path, database_url: str, model: ScriptedOpenAI, guilds: list[FakeGuild]
) -> None:
    with FakeDiscord(guilds=guilds, shard_count=1) as fake:
        common = {"DISCORD_TOKEN": fake.token, "FAKE_DISCORD_REST": fake.rest_base,
                  "FAKE_DISCORD_GATEWAY": fake.gateway_url}
        runs = [
            ("platform", ["discord"], bot_env(
                database_url=database_url, model_url=model.base_url, data_dir=tmp_path / "p",
                CHAT_MODEL="platform", IN_PROCESS_WORKER="false", **common)),
            ("worker", ["worker"], bot_env(
                database_url=database_url, model_url=model.base_url, data_dir=tmp_path / "w",
                CHAT_MODEL="worker", WORKER_METRICS_PORT="0", **common)),
        ]
        with membots(tmp_path / "processes", *runs) as processes:
            shards = Shards(fake, model, processes, database_url)
            await until(lambda: len(fake.identifies()) == 1, processes, "the bot to identify")
            direct = shards.dm("my bike is a red Brompton")
            fake.dispatch("MESSAGE_CREATE", direct)
            await until(lambda: bool(shards.memories_of(direct)), processes, "the memory write")
            await until(lambda: bool(fake.reactions()), processes, "the learned receipt")
            assert [p.stop() for p in processes] == [0, 0]

        assert shards.answers(direct) == ["[platform] my bike is a red Brompton"]
        [reaction] = fake.reactions()
        assert (reaction.message_id, reaction.emoji, reaction.status) == (int(direct["id"]),
                                                                          "🧠", 204)
        # The worker, not the platform process, asked the model to extract.
        assert [c.body["model"] for c in model.calls("extraction")] == ["worker"]
