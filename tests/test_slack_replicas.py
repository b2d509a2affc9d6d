"""Slack in HTTP mode on several replicas: two real ``membot web`` processes (each its own
composition root, web server and bolt app, slack-sdk pointed at the fake Slack by
:mod:`tests.fakes.entrypoint`) on one PostgreSQL, taking signed event deliveries as a load
balancer would hand them out, Slack's retries landing on the other replica."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import pytest

from tests.fakes.openai_server import ScriptedOpenAI
from tests.fakes.slack import FakeSlack
from tests.fakes.slack.payloads import Json
from tests.linkrig import free_port
from tests.processes import BotProcess, bot_env, membots, until

RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


@dataclass
class Replica:
    """One ``membot web`` process and where it takes Slack's events."""

    process: BotProcess
    url: str
    name: str


@dataclass
class Replicas:
    fake: FakeSlack
    model: ScriptedOpenAI
    database_url: str
    session: aiohttp.ClientSession
    a: Replica
    b: Replica

    @property
    def processes(self) -> list[BotProcess]:
        return [self.a.process, self.b.process]

    async def deliver(self, replica: Replica, payload: Json, headers: dict[str, str] | None = None
                      ) -> None:
        """POST the event to ``replica`` signed, as Slack does; bolt acknowledges it at once."""
        body = json.dumps(payload).encode()
        signed = {**self.fake.signed_headers(body), **(headers or {})}
        async with self.session.post(replica.url, data=body, headers=signed) as response:
            assert response.status == 200, await response.text()

    async def healthy(self) -> bool:
        for replica in (self.a, self.b):
            try:
                async with self.session.get(replica.url.replace("/slack/events", "/healthz")
                                            ) as response:
                    if response.status != 200:
                        return False
            except aiohttp.ClientConnectionError:
                return False
        return True

    def answers(self, payload: Json) -> list[str]:
        """The bot's answers to ``payload``, as Slack shows them now (streamed or updated)."""
        return [str(m["text"]) for m in self.fake.replies_to(payload["event"])]

    def taken_again(self, replica: Replica, payload: Json, fact: str) -> bool:
        """``replica`` is done with its delivery of ``payload``: it logged that the event ledger
        had the event already, or the model was asked to answer ``fact`` more than once."""
        refused = f"event slack:{payload['event_id']} was already handled"
        return refused in replica.process.log or self.asked(fact) > 1

    def asked(self, fact: str) -> int:
        """How many times the model was asked to answer a message saying ``fact``."""
        return sum(fact in json.dumps(c.body["messages"]) for c in self.model.calls("chat"))

    def memories_of(self, payload: Json) -> list[str]:
        """The memories stored from ``payload`` (by the event id in their metadata)."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute("select payload->>'data' from memories"
                                " where %s = any(string_to_array(payload->>'event_ids', ' '))",
                                (f"slack:{payload['event_id']}",)).fetchall()
        return [str(row[0]) for row in rows]

    def extractions_of(self, fact: str) -> list[str]:
        """The replicas (by model name) whose memory writes read ``fact``."""
        return [str(c.body["model"]) for c in self.model.calls("extraction")
                if fact in json.dumps(c.body["messages"])]


@pytest.fixture
async def replicas(tmp_path: Path, database_url: str, model: ScriptedOpenAI,
                   slack_fake: FakeSlack) -> AsyncIterator[Replicas]:
    ports = {"replica-a": free_port(), "replica-b": free_port()}
    runs = [
        (name, ["web"], bot_env(
            database_url=database_url, model_url=model.base_url, data_dir=tmp_path / name,
            CHAT_MODEL=name, SLACK_BOT_TOKEN=slack_fake.bot_token,
            SLACK_SIGNING_SECRET=slack_fake.signing_secret, WEB_HOST="127.0.0.1",
            PORT=str(port), FAKE_SLACK_API=slack_fake.api_url))
        for name, port in ports.items()
    ]
    with membots(tmp_path / "processes", *runs) as (a, b):
        async with aiohttp.ClientSession() as session:
            rig = Replicas(slack_fake, model, database_url, session, *(
                Replica(process, f"http://127.0.0.1:{ports[process.name]}/slack/events",
                        process.name)
                for process in (a, b)))
            await until(rig.healthy, rig.processes, "both replicas to serve")
            yield rig


async def test_each_event_is_answered_and_learned_once_whichever_replica_slack_retries_on(
    replicas: Replicas,
) -> None:
    fake, a, b = replicas.fake, replicas.a, replicas.b
    people = [f"U0PERSON{n}" for n in range(4)]
    first, second = (fake.message_im(f"I keep {n} bees", user=people[n]) for n in (0, 1))
    third, fourth = (fake.app_mention(f"I sail a boat named Nr{n}", user=people[n],
                                      channel=f"C0ROOM{n}") for n in (2, 3))

    # Deliveries spread over both replicas; Slack's retry of each lands on the other one after
    # the first delivery was answered.
    await replicas.deliver(a, first)
    await replicas.deliver(b, second)
    await until(lambda: bool(replicas.answers(first) and replicas.answers(second)),
                replicas.processes, "the first two answers")
    await replicas.deliver(b, first, RETRY)
    await replicas.deliver(a, second, RETRY)

    # And while the first delivery is still being answered (the model holds its answer).
    replicas.model.hold("chat")
    await asyncio.gather(replicas.deliver(a, third), replicas.deliver(b, fourth))
    await until(lambda: all(replicas.asked(fact) for fact in ("Nr2", "Nr3")),
                replicas.processes, "both answers to be asked of the model")
    await asyncio.gather(replicas.deliver(b, third, RETRY), replicas.deliver(a, fourth, RETRY))
    await until(lambda: all(replicas.taken_again(r, p, f) for r, p, f in (
        (b, first, "0 bees"), (a, second, "1 bees"), (b, third, "Nr2"), (a, fourth, "Nr3"))),
        replicas.processes, "each replica to take the retries it got")
    replicas.model.release("chat")

    everyone = (first, second, third, fourth)
    await until(lambda: all(replicas.answers(p) for p in everyone), replicas.processes,
                "the last two answers")
    await until(lambda: all(replicas.memories_of(p) for p in everyone), replicas.processes,
                "every memory write")
    assert [process.stop() for process in replicas.processes] == [0, 0]

    # Answered once each, by the replica its first delivery went to.
    assert replicas.answers(first) == ["[replica-a] I keep 0 bees"]
    assert replicas.answers(second) == ["[replica-b] I keep 1 bees"]
    assert replicas.answers(third) == ["[replica-a] I sail a boat named Nr2"]
    assert replicas.answers(fourth) == ["[replica-b] I sail a boat named Nr3"]
    assert sum(len(replicas.answers(p)) for p in everyone) == 4
    assert len(replicas.model.calls("chat")) == 4
    # Each memory write done once (one extraction, one memory), by whichever replica's worker
    # took it from the shared queue.
    facts = ("0 bees", "1 bees", "Nr2", "Nr3")
    assert [len(replicas.extractions_of(f)) for f in facts] == [1, 1, 1, 1]
    for payload, fact in zip(everyone, facts, strict=True):
        [memory] = replicas.memories_of(payload)
        assert fact in memory
