"""What each ``membot`` command runs: the terminal chat, the Discord and Slack clients, the web
server, everything in one process, a memory worker, the queue's report and the migrations. Each
builds its parts from ``bot.app``'s services and serves until cancelled (``until_terminated``:
SIGTERM cancels, so clean-up still runs). ``adapters.cli`` reads the command line and calls one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.app import Services, services
from bot.config import Settings
from bot.database import Database
from bot.errors import ConfigError, MembotError
from bot.learning.pipeline import Leftover
from bot.wording import plural

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

__all__ = [
    "chat",
    "chat_log",
    "discord",
    "log_level",
    "migrate",
    "queue",
    "run",
    "slack",
    "slack_mode",
    "until_terminated",
    "web",
    "worker",
]

log = logging.getLogger("membot")


def log_level(settings: Settings) -> int:
    return logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)


def chat_log(settings: Settings) -> tuple[Path, TextIO]:
    """The file ``membot chat`` logs to, so that the conversation stays readable:
    ``MEMBOT_DATA_DIR/logs/chat.log``, readable by its owner only, started afresh (the old one
    kept as ``chat.log.1``) once it passes 5 MB."""
    folder = settings.data_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "chat.log"
    if path.exists() and path.stat().st_size > 5_000_000:
        path.replace(path.with_name("chat.log.1"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return path, os.fdopen(fd, "a", encoding="utf-8", buffering=1)


def _left_line(left: Leftover) -> str | None:
    """What the person leaving ``membot chat`` is told about writes still queued, if any."""
    if not left.messages:
        return None
    them = "it" if left.messages == 1 else "them"
    waiting = plural(left.messages, "message")
    if left.other_workers:
        return (f"{waiting} still to learn: another membot process on this database (a "
                f"membot worker, web or run) will learn {them}.")
    return (f"{waiting} still to learn: membot learns {them} the next time it runs here (or a "
            "membot worker does).")


async def chat(settings: Settings, user: str, log_note: str | None) -> None:
    from adapters.console import ConsoleAdapter

    async with services(settings) as app:
        console = ConsoleAdapter(app.core.handle, app.commands, user=user,
                                 receipts=app.receipts, log_note=log_note)
        await console.run()
        if line := _left_line(await app.jobs.stop(settings.shutdown_grace)):
            console.say_aside(line)


def _discord_token(settings: Settings) -> str:
    if settings.discord_token is None:
        raise ConfigError(
            "DISCORD_TOKEN is not set: create a bot in Discord's developer portal and set its "
            "token (see the README), or talk to membot in the terminal with 'membot chat'."
        )
    return settings.discord_token.get_secret_value()


async def discord(settings: Settings) -> None:
    _discord_token(settings)
    async with services(settings) as app:
        await _serve_discord(settings, app)


def slack_mode(settings: Settings) -> str:
    """'socket' or 'http', or ConfigError naming what is missing."""
    if settings.slack_bot_token is None:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set: install the app from deploy/slack/manifest.yaml and set "
            "its bot token (see the README)."
        )
    if settings.slack_app_token is not None:
        return "socket"
    if settings.slack_signing_secret is not None:
        return "http"
    raise ConfigError(
        "Set SLACK_APP_TOKEN for Socket Mode (no public URL needed), or SLACK_SIGNING_SECRET for "
        "HTTP mode (events at /slack/events on the bot's web server)."
    )


async def _slack_app(settings: Settings, app: Services) -> tuple[str, AsyncApp]:
    """The Slack app and its mode, after checking the bot token with Slack."""
    from adapters.slack import build_app, check_token, web_client

    mode = slack_mode(settings)
    assert settings.slack_bot_token is not None
    client = web_client(settings.slack_bot_token.get_secret_value())
    await check_token(client)
    secret = settings.slack_signing_secret
    slack = build_app(
        client=client,
        handle=app.core.handle,
        commands=app.commands,
        signing_secret=secret.get_secret_value() if mode == "http" and secret else None,
        receipts=app.receipts,
    )
    return mode, slack


async def _serve_slack_socket(settings: Settings, slack: AsyncApp) -> None:
    from adapters.slack import run_socket_mode

    assert settings.slack_app_token is not None
    log.info("connecting to Slack over Socket Mode")
    await run_socket_mode(slack, settings.slack_app_token.get_secret_value())


async def _serve_web(settings: Settings, app: Services, slack: AsyncApp | None = None) -> None:
    """The web server: link pages, /healthz, /readyz, /metrics, and Slack's events in HTTP
    mode."""
    from adapters.web import build_web_app, serve

    if app.linking.configured and settings.public_url_setting is None:
        log.warning("PUBLIC_URL is not set: link pages are announced at %s, which only this "
                    "machine can open", settings.public_url)
    web_app = build_web_app(linking=app.linking, slack=slack,
                            secure_cookies=settings.public_url.startswith("https://"),
                            readiness=app.readiness, metrics=app.metrics)
    slack_note = ", Slack events at /slack/events" if slack is not None else ""
    await serve(web_app, settings.web_host, settings.web_port,
                announce=f"serving the web pages at http://{settings.web_host}:"
                         f"{settings.web_port} (public address {settings.public_url}){slack_note}")


async def slack(settings: Settings) -> None:
    slack_mode(settings)
    async with services(settings) as app:
        mode, slack = await _slack_app(settings, app)
        if mode == "socket":
            await _serve_slack_socket(settings, slack)
        else:
            await _serve_web(settings, app, slack)


async def web(settings: Settings) -> None:
    async with services(settings) as app:
        slack = None
        if settings.slack_bot_token is not None and slack_mode(settings) == "http":
            _, slack = await _slack_app(settings, app)
        await _serve_web(settings, app, slack)


async def _serve_discord(settings: Settings, app: Services) -> None:
    from adapters.discord import DiscordAdapter, MembotDiscordClient

    token = _discord_token(settings)
    shard_ids = settings.discord_shard_ids
    client = MembotDiscordClient(
        handle=app.core.handle,
        commands=app.commands,
        follow_threads=settings.discord_follow_threads,
        dev_guild=settings.discord_dev_guild,
        shard_count=settings.discord_shard_count,
        shard_ids=list(shard_ids) if shard_ids is not None else None,
        receipts=app.receipts,
    )
    log.info("connecting to Discord")
    await DiscordAdapter(client, token, grace=settings.shutdown_grace).run()


async def run(settings: Settings) -> None:
    """Every configured platform and the web server, in one process, on one set of services."""
    if settings.discord_token is None and settings.slack_bot_token is None:
        raise ConfigError(
            "Nothing to run: set DISCORD_TOKEN and/or SLACK_BOT_TOKEN (see the README), or talk "
            "to membot in the terminal with 'membot chat'."
        )
    if settings.slack_bot_token is not None:
        slack_mode(settings)
    async with services(settings) as app:
        slack_http = None
        try:
            async with asyncio.TaskGroup() as group:
                if settings.discord_token is not None:
                    group.create_task(_serve_discord(settings, app))
                if settings.slack_bot_token is not None:
                    mode, slack = await _slack_app(settings, app)
                    if mode == "socket":
                        group.create_task(_serve_slack_socket(settings, slack))
                    else:
                        slack_http = slack
                group.create_task(_serve_web(settings, app, slack_http))
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first membot error in a task group's failure (what one sentence can say), else the
    first error of any kind."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    return next((e for e in leaves if isinstance(e, MembotError)), leaves[0])


async def worker(settings: Settings) -> None:
    """Learn queued memory writes until stopped; any number of these can run side by side.
    ``/healthz``, ``/readyz`` and ``/metrics`` are served on ``WORKER_METRICS_PORT``."""
    from adapters.web import build_web_app, serve

    async with (services(settings, start_worker=False, answering=False) as app,
                AsyncExitStack() as stack):
        await _receipts_over_rest(settings, app, stack)
        log.info("learning memory writes, %d at a time; health and metrics on port %d",
                 settings.memory_write_threads, settings.worker_metrics_port)
        web_app = build_web_app(readiness=app.readiness, metrics=app.metrics)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(app.jobs.work(settings.memory_write_threads))
                group.create_task(serve(web_app, settings.web_host,
                                        settings.worker_metrics_port,
                                        setting="WORKER_METRICS_PORT"))
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None


async def _receipts_over_rest(settings: Settings, app: Services, stack: AsyncExitStack) -> None:
    """Let a worker put the learned receipt on Discord and Slack messages through their REST
    APIs, since it serves neither platform."""
    if settings.discord_token is not None:
        from adapters.discord import rest_reactions

        react = await stack.enter_async_context(rest_reactions(_discord_token(settings)))
        app.receipts.register("discord", react)
    if settings.slack_bot_token is not None:
        from adapters.slack.app import reaction_adder, web_client

        client = web_client(settings.slack_bot_token.get_secret_value())
        app.receipts.register("slack", reaction_adder(client))


async def queue(settings: Settings, retry_failed: bool) -> None:
    """Print what the memory-write queue holds; with ``retry_failed``, run failed writes again."""
    from bot.app import learning_admin

    async with learning_admin(settings) as learning:
        if retry_failed:
            again = plural(await learning.retry_failed(), "failed message")
            print(f"membot: {again} queued again.")
        counts = await learning.counts()
        jobs = ", ".join(f"{n} {status}" for status, n in sorted(counts.jobs.items())) or "none"
        print(f"membot: {plural(counts.messages, 'message')} waiting to be learned, "
              f"{counts.failed_messages} failed; jobs: {jobs}.")


async def migrate(settings: Settings) -> None:
    database = await Database.open(settings)
    try:
        print(f"membot: {database.where} is up to date.")
    finally:
        await database.close()


async def until_terminated(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; SIGTERM cancels it, so its clean-up (finishing memory writes) still runs."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopped by a signal; finishing up")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
