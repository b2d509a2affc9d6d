"""The ``membot`` command: picks an entry point and runs it on the services of ``bot.app``."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Coroutine, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.app import Services, services

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
from bot.config import Settings, load_settings
from bot.database import Database
from bot.errors import ConfigError, MembotError, StartupError
from bot.learning.pipeline import Leftover
from bot.logs import configure_logging
from bot.wording import plural

__all__ = ["main"]

log = logging.getLogger("membot")


def _level(settings: Settings) -> int:
    return logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)


def _chat_log(settings: Settings) -> tuple[Path, TextIO]:
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


async def _chat(settings: Settings, user: str, log_note: str | None) -> None:
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


async def _discord(settings: Settings) -> None:
    _discord_token(settings)
    async with services(settings) as app:
        await _serve_discord(settings, app)


def _slack_mode(settings: Settings) -> str:
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

    mode = _slack_mode(settings)
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


async def _slack(settings: Settings) -> None:
    _slack_mode(settings)
    async with services(settings) as app:
        mode, slack = await _slack_app(settings, app)
        if mode == "socket":
            await _serve_slack_socket(settings, slack)
        else:
            await _serve_web(settings, app, slack)


async def _web(settings: Settings) -> None:
    async with services(settings) as app:
        slack = None
        if settings.slack_bot_token is not None and _slack_mode(settings) == "http":
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


async def _run(settings: Settings) -> None:
    """Every configured platform and the web server, in one process, on one set of services."""
    if settings.discord_token is None and settings.slack_bot_token is None:
        raise ConfigError(
            "Nothing to run: set DISCORD_TOKEN and/or SLACK_BOT_TOKEN (see the README), or talk "
            "to membot in the terminal with 'membot chat'."
        )
    if settings.slack_bot_token is not None:
        _slack_mode(settings)
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


async def _worker(settings: Settings) -> None:
    """Learn queued memory writes until stopped; any number of these can run side by side.
    ``/healthz``, ``/readyz`` and ``/metrics`` are served on ``WORKER_METRICS_PORT``."""
    from adapters.web import build_web_app, serve

    async with services(settings, start_worker=False) as app, AsyncExitStack() as stack:
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


async def _queue(settings: Settings, retry_failed: bool) -> None:
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


async def _migrate(settings: Settings) -> None:
    database = await Database.open(settings)
    try:
        print(f"membot: {database.where} is up to date.")
    finally:
        await database.close()


async def _until_terminated(work: Coroutine[Any, Any, None]) -> None:
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


_SETTINGS_NOTE = ("Settings come from the environment, then from the --env-file; each is "
                  "described under Configuration in the README.")
_MODEL = "OPENAI_API_KEY, OPENAI_BASE_URL, CHAT_MODEL, EMBEDDING_* (the model API)"
_STORE = "DATABASE_URL or MEMBOT_DATA_DIR (the database)"


def _subcommand(commands: Any, name: str, summary: str, description: str,
                reads: Sequence[str]) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` says what it does and which settings it reads."""
    epilog = "\n".join(textwrap.fill(text, 79)
                       for text in ("Reads: " + "; ".join(reads) + ".", _SETTINGS_NOTE))
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=textwrap.fill(description, 79), epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="membot", description="A chat bot that remembers each person.",
        epilog="'membot <command> --help' says what a command does and which settings it "
               "reads. " + _SETTINGS_NOTE)
    parser.add_argument("--version", action="version",
                        version=f"membot {importlib.metadata.version('membot')}")
    parser.add_argument("--env-file", type=Path, default=Path(".env"),
                        help="settings file read after the environment (default: ./.env)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    chat = _subcommand(
        commands, "chat", "talk to membot in this terminal",
        "Talk to membot in this terminal as one person: what you tell it is remembered across "
        "restarts. Commands start with a colon (:help lists them); :quit or Ctrl-D leaves. "
        "Faults are one line in the conversation; their details go to "
        "MEMBOT_DATA_DIR/logs/chat.log (or, with --verbose, here).",
        [_MODEL, _STORE, "SUPABASE_URL and SUPABASE_SECRET_KEY (for :link)", "LOG_LEVEL"])
    chat.add_argument("--user", default=os.environ.get("USER") or "me",
                      help="who you are to membot (default: your login name)")
    chat.add_argument("--verbose", action="store_true",
                      help="print the log here, at LOG_LEVEL, instead of to the log file")
    _subcommand(commands, "discord", "serve Discord (needs DISCORD_TOKEN)",
                "Answer on Discord: DMs, mentions and replies, and the slash commands.",
                ["DISCORD_TOKEN", "DISCORD_SHARD_COUNT, DISCORD_SHARD_IDS",
                 "DISCORD_DEV_GUILD, DISCORD_FOLLOW_THREADS", _MODEL, _STORE])
    _subcommand(commands, "slack", "serve Slack (needs SLACK_BOT_TOKEN and an app token or "
                                   "signing secret)",
                "Answer on Slack: DMs, mentions and /membot, over Socket Mode (SLACK_APP_TOKEN) "
                "or HTTP (SLACK_SIGNING_SECRET, events at /slack/events on WEB_HOST:PORT).",
                ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN or SLACK_SIGNING_SECRET",
                 "WEB_HOST, PORT (HTTP mode)", _MODEL, _STORE])
    _subcommand(commands, "web", "serve the web pages (account linking, /healthz) and Slack "
                                 "events in HTTP mode",
                "Serve the account-linking pages, /healthz, /readyz and /metrics, and Slack's "
                "events in HTTP mode, on WEB_HOST:PORT. Run any number behind a load balancer.",
                ["WEB_HOST, PORT, PUBLIC_URL", "SUPABASE_URL, SUPABASE_SECRET_KEY",
                 "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET (HTTP mode)", "IN_PROCESS_WORKER",
                 _MODEL, _STORE])
    _subcommand(commands, "run", "serve every configured platform and the web pages in one "
                                 "process",
                "Serve Discord and Slack (whichever has a token), the web pages and a memory "
                "worker in one process: the usual way on one machine.",
                ["DISCORD_*", "SLACK_*", "WEB_HOST, PORT, PUBLIC_URL", "SUPABASE_*",
                 _MODEL, _STORE])
    _subcommand(commands, "worker", "learn queued memory writes (run any number of these)",
                "Learn the memory writes queued in the database by the processes that answer. "
                "Serves /healthz, /readyz and /metrics on WORKER_METRICS_PORT.",
                ["WORKER_METRICS_PORT", "MEMORY_WRITE_THREADS, MEMORY_BATCH_*",
                 "WORKER_POLL_INTERVAL, WORKER_STALLED_AFTER", _MODEL, _STORE])
    queue = _subcommand(commands, "queue", "show the memory-write queue",
                        "Show how many messages wait to be learned, how many failed, and the "
                        "queue's jobs.", [_STORE])
    queue.add_argument("--retry-failed", action="store_true",
                       help="run the writes that failed for good again (after a fix)")
    _subcommand(commands, "migrate", "create or update membot's database tables",
                "Create or update membot's tables and the job queue's, then exit. Every "
                "process also does this at start.", [_STORE])
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``membot`` console script."""
    args = _parser().parse_args(argv)
    log_file: TextIO | None = None
    log_path: Path | None = None
    try:
        settings = load_settings(os.environ, args.env_file)
        if args.command == "chat":
            user = args.user.strip()
            if not user or any(ch.isspace() or ch == ":" for ch in user):
                raise ConfigError("--user must be one word without spaces or colons.")
            note = None
            if args.verbose:
                configure_logging(_level(settings), settings.log_format, sys.stderr)
            else:
                log_path, log_file = _chat_log(settings)
                configure_logging(_level(settings), settings.log_format, log_file)
                note = f"Details of any fault go to {log_path} (--verbose shows them here)."
            logging.captureWarnings(True)
            asyncio.run(_until_terminated(_chat(settings, user, note)))
            return
        configure_logging(_level(settings), settings.log_format, sys.stderr)
        if args.command == "discord":
            asyncio.run(_until_terminated(_discord(settings)))
        elif args.command == "slack":
            asyncio.run(_until_terminated(_slack(settings)))
        elif args.command == "web":
            asyncio.run(_until_terminated(_web(settings)))
        elif args.command == "run":
            asyncio.run(_until_terminated(_run(settings)))
        elif args.command == "worker":
            asyncio.run(_until_terminated(_worker(settings)))
        elif args.command == "queue":
            asyncio.run(_queue(settings, args.retry_failed))
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
    except ConfigError as exc:
        print(f"membot: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except StartupError as exc:
        print(f"membot: {exc}", file=sys.stderr)
        raise SystemExit(3) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if log_file is None:
            raise
        # In the terminal a fault is one line; its traceback goes where the log goes.
        log.exception("membot chat stopped on an unexpected error")
        print(f"membot: stopped on an unexpected error ({exc.__class__.__name__}); details in "
              f"{log_path}.", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        if log_file is not None:
            logging.shutdown()
            log_file.close()


if __name__ == "__main__":
    main()
