"""The Slack adapter end to end: the real bolt app and slack-sdk clients against the local fake
Slack, in HTTP mode through the bot's own web server (signed requests over a socket) and over
Socket Mode, with the real core on PostgreSQL and mem0 and the scripted model server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from adapters.slack import build_app, check_token, run_socket_mode, web_client
from adapters.web import build_web_app
from bot.app import Services, services
from bot.commands.registry import Command, Commands, default_commands
from bot.config import Settings
from bot.errors import ConfigError, StartupError
from bot.events import ChatEvent, Reply
from tests.conftest import serve_web
from tests.fakes.openai_server import ScriptedOpenAI
from tests.fakes.slack import FakeSlack, form_body
from tests.fakes.slack.payloads import Json

MakeSettings = Callable[..., Settings]
TIMEOUT = 5.0


@dataclass
class HttpRig:
    app: Services
    fake: FakeSlack
    model: ScriptedOpenAI
    url: str
    session: aiohttp.ClientSession

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with self.session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.text()

    async def event(self, payload: Json, **extra_headers: str) -> int:
        body = json.dumps(payload).encode()
        status, _ = await self.post(body, {**self.fake.signed_headers(body), **extra_headers})
        return status

    async def settle(self) -> None:
        await asyncio.sleep(0.3)
        await self.app.jobs.wait_idle()

    async def answered(self, payload: Json,
                       timeout: float = TIMEOUT) -> list[Json]:  # noqa: ASYNC109
        """Once a message event has been answered (its 👀 removed), the bot's messages that
        answer it, as Slack shows them now."""
        await answered(self.fake, payload, timeout)
        return self.fake.replies_to(payload["event"])


async def answered(fake: FakeSlack, payload: Json,
                   timeout: float = TIMEOUT) -> None:  # noqa: ASYNC109
    """Wait until the bot took its working 👀 off the message: the answer has ended."""
    ts = payload["event"]["ts"]
    await fake.wait_for_async(
        lambda r: r.kind == "reactions.remove" and r.body.get("timestamp") == ts, timeout)


@pytest.fixture
def fake(slack_fake: FakeSlack) -> FakeSlack:
    return slack_fake



@pytest.fixture
async def http(make_settings: MakeSettings, openai_server: ScriptedOpenAI,
               fake: FakeSlack) -> AsyncIterator[HttpRig]:
    async with http_rig(make_settings(), openai_server, fake) as rig:
        yield rig


@contextlib.asynccontextmanager
async def http_rig(settings: Settings, model: ScriptedOpenAI,
                   fake: FakeSlack) -> AsyncIterator[HttpRig]:
    """The bot in HTTP mode on its own web server, its Web API client on ``fake``."""
    async with services(settings) as app:
        slack = build_app(client=web_client(fake.bot_token, fake.api_url),
                          handle=app.core.handle, commands=app.commands,
                          signing_secret=fake.signing_secret)
        runner, port = await serve_web(build_web_app(slack=slack))
        try:
            async with aiohttp.ClientSession() as session:
                yield HttpRig(app, fake, model, f"http://127.0.0.1:{port}/slack/events",
                              session)
        finally:
            await runner.cleanup()


def prompts(model: ScriptedOpenAI) -> list[list[dict[str, Any]]]:
    return [list(c.body["messages"]) for c in model.calls("chat")]


async def test_url_verification_is_answered(http: HttpRig) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123",
                       "token": "x"}).encode()
    status, text = await http.post(body, http.fake.signed_headers(body))
    assert status == 200 and "c-123" in text


async def test_bad_signature_and_stale_timestamp_get_401_and_no_reply(http: HttpRig) -> None:
    body = json.dumps(http.fake.app_mention("hello")).encode()
    forged = {**http.fake.signed_headers(body), "X-Slack-Signature": "v0=" + "0" * 64}
    stale = http.fake.signed_headers(body, timestamp=int(time.time()) - 600)
    assert (await http.post(body, forged))[0] == 401
    assert (await http.post(body, stale))[0] == 401
    await asyncio.sleep(0.3)
    assert http.fake.posted_messages() == []
    assert http.model.calls("chat") == []


async def test_a_mention_is_answered_in_its_thread_with_a_working_reaction(
    http: HttpRig,
) -> None:
    top = http.fake.app_mention("what is the capital of France?")
    assert await http.event(top) == 200
    [posted] = await http.answered(top)
    assert posted["thread_ts"] == top["event"]["ts"]
    assert "what is the capital of France?" in posted["text"]
    assert prompts(http.model)[-1][-1]["content"] == "what is the capital of France?"

    inside = http.fake.app_mention("and Spain?", thread_ts="1690000000.000100")
    await http.event(inside)
    [second] = await http.answered(inside)
    assert second["thread_ts"] == "1690000000.000100"
    await http.settle()
    for message in (top, inside):
        ts = message["event"]["ts"]
        thread = message["event"].get("thread_ts") or ts
        order = [r.kind for r in http.fake.requests
                 if (r.kind.startswith("reactions.") and r.body.get("timestamp") == ts)
                 or (r.kind == "chat.startStream" and r.body.get("thread_ts") == thread)]
        assert order == ["reactions.add", "chat.startStream", "reactions.remove"]


async def test_a_direct_message_is_answered_in_the_conversation(http: HttpRig) -> None:
    dm = http.fake.message_im("hello there")
    await http.event(dm)
    posted = await http.fake.wait_for_async("chat.postMessage")
    assert posted.body["channel"] == dm["event"]["channel"]
    assert not posted.body.get("thread_ts")
    [shown] = await http.answered(dm)
    assert shown["text"] == "(scripted) You said: hello there"


async def test_a_retried_event_is_answered_once(http: HttpRig) -> None:
    dm = http.fake.message_im("remember that I like tea")
    await http.event(dm)
    await http.event(dm, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    await http.fake.wait_for_async("chat.postMessage")
    await http.settle()
    assert len(http.fake.posted_messages()) == 1
    assert len(http.model.calls("chat")) == 1


async def test_bots_and_edits_are_ignored(http: HttpRig) -> None:
    await http.event(http.fake.bot_message("beep"))
    await http.event(http.fake.message_changed("edited", previous_text="orig",
                                               ts="1700000000.000100"))
    await http.settle()
    assert http.fake.posted_messages() == []


async def test_a_long_answer_is_split_under_3000_characters_with_code_intact(
    http: HttpRig,
) -> None:
    code = "\n".join(f"    value_{n:03d} = compute({n:03d}) * 2" for n in range(150))
    http.model.chat_reply = lambda body: f"Here:\n\n```python\n{code}\n```\n\n@everyone <!channel>"
    http.model.stream_chunk_words = 7
    dm = http.fake.message_im("show me code")
    await http.event(dm)
    pieces = [m["text"] for m in await http.answered(dm)]
    assert len(pieces) >= 2 and all(len(p) <= 3000 for p in pieces)
    assert all(p.count("```") % 2 == 0 for p in pieces)
    assert "value_149 = compute(149) * 2" in "".join(pieces)
    assert "<!channel>" not in pieces[-1] and "&lt;!channel&gt;" in pieces[-1]
    every = [r.body["text"] for r in http.fake.requests
             if r.kind in ("chat.postMessage", "chat.update")]  # each version, as sent
    assert all("<!channel>" not in text and len(text) <= 3000 for text in every)


async def test_markdown_links_in_an_answer_cannot_ping_anyone(http: HttpRig) -> None:
    # Anyone in a channel can get the model to repeat these; none may reach Slack as markup.
    http.model.chat_reply = lambda body: (
        "[look](!channel) ![x](!here) [boss](@U0BOSS) [grp](!subteam^S0ADMINS) "
        "[x](javascript:alert(1)) and [docs](https://example.com)")
    mention = http.fake.app_mention("repeat after me")
    await http.event(mention)
    [posted] = await http.answered(mention)
    text = posted["text"]  # Markdown: what Slack's streaming methods take
    sent = [str(r.body.get("markdown_text") or "") for r in http.fake.requests
            if r.kind.startswith("chat.") and r.kind.endswith("Stream")]
    for markup in ("<!channel", "<!here", "<@U0BOSS", "<!subteam", "<javascript:", "](!",
                   "](@", "](javascript"):
        assert markup not in text and all(markup not in piece for piece in sent)
    assert "[docs](https://example.com)" in text
    assert "[look]\\(!channel)" in text


async def test_rate_limits_are_waited_out_not_surfaced(http: HttpRig) -> None:
    http.fake.fail_next("chat.postMessage", retry_after=0)
    dm = http.fake.message_im("hello")
    await http.event(dm)
    [posted] = await http.answered(dm)
    assert "hello" in posted["text"]
    assert [r.status for r in http.fake.calls("chat.postMessage")][:2] == [429, 200]


async def test_a_memory_told_in_slack_is_used_later_for_that_person_only(
    http: HttpRig,
) -> None:
    bob = "U0BOB"
    told = http.fake.message_im("my locker code is 4711")
    await http.event(told)
    await http.answered(told)
    await http.settle()
    asked = http.fake.app_mention("what is my locker code?", user=bob)
    await http.event(asked)
    await http.answered(asked)
    assert "4711" not in str(prompts(http.model)[-1])
    await http.event(http.fake.app_mention("what is my locker code?"))
    assert await asyncio.to_thread(http.model.wait_for, "chat", 3)
    assert "4711" in prompts(http.model)[-1][0]["content"]


async def test_the_slash_command_is_acknowledged_before_the_slow_work(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, fake: FakeSlack
) -> None:
    release = asyncio.Event()

    async def slow(event: ChatEvent, arguments: str) -> Reply:
        await release.wait()
        return Reply(text=f"done for {event.author_id}")

    commands = Commands([*default_commands().all,
                         Command(name="slow", summary="takes its time", handler=slow)])
    async with services(make_settings()) as app:
        slack = build_app(client=web_client(fake.bot_token, fake.api_url),
                          handle=app.core.handle, commands=commands,
                          signing_secret=fake.signing_secret)
        runner, port = await serve_web(build_web_app(slack=slack))
        try:
            body = form_body(fake.slash_command(text="slow"))
            async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{port}/slack/events", data=body,
                headers=fake.signed_headers(body, content_type="application/x-www-form-urlencoded"),
            ) as response:
                assert response.status == 200  # acknowledged while the command still waits
            assert fake.response_url_posts() == []
            release.set()
            answer = await fake.wait_for_async("response_url")
            assert answer.body["response_type"] == "ephemeral"
            assert answer.body["text"] == f"done for {fake.user.id}"

            help_body = form_body(fake.slash_command(text="help"))
            async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{port}/slack/events", data=help_body,
                headers=fake.signed_headers(help_body,
                                            content_type="application/x-www-form-urlencoded"),
            ):
                pass
            helped = await fake.wait_for_async("response_url", count=2)
            assert helped.body["response_type"] == "ephemeral" and "remember" in helped.body["text"]
        finally:
            await runner.cleanup()


async def test_socket_mode_acks_an_envelope_and_answers(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, fake: FakeSlack
) -> None:
    async with services(make_settings()) as app:
        slack = build_app(client=web_client(fake.bot_token, fake.api_url),
                          handle=app.core.handle, commands=app.commands, signing_secret=None)
        runner = asyncio.create_task(run_socket_mode(slack, fake.app_token))
        try:
            dm = fake.message_im("hello over a socket")
            envelope = await asyncio.to_thread(fake.send_envelope, "events_api", dm,
                                               timeout=TIMEOUT)
            await fake.wait_for_ack_async(envelope, timeout=TIMEOUT)
            await answered(fake, dm)
            [posted] = fake.replies_to(dm["event"])
            assert "hello over a socket" in posted["text"]
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


async def test_a_wrong_bot_token_or_unreachable_slack_is_one_sentence(fake: FakeSlack) -> None:
    with pytest.raises(ConfigError, match=r"^Slack rejected SLACK_BOT_TOKEN \(invalid_auth\)"):
        await check_token(web_client("xoxb-wrong", fake.api_url))
    assert await check_token(web_client(fake.bot_token, fake.api_url)) == fake.team_id
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}/api/"
    with pytest.raises(StartupError, match=r"^Cannot reach Slack"):
        await check_token(web_client(fake.bot_token, nowhere))


async def test_a_wrong_app_token_stops_socket_mode_with_one_sentence(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, fake: FakeSlack
) -> None:
    async with services(make_settings()) as app:
        slack = build_app(client=web_client(fake.bot_token, fake.api_url),
                          handle=app.core.handle, commands=app.commands, signing_secret=None)
        with pytest.raises(ConfigError, match="Slack rejected SLACK_APP_TOKEN"):
            async with asyncio.timeout(TIMEOUT):
                await run_socket_mode(slack, "xapp-wrong")
