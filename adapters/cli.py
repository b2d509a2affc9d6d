"""The ``membot`` command line: its subcommands and their help, settings and exit codes; what
each subcommand runs is in :mod:`adapters.processes`."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from adapters import processes
from bot import eventloop
from bot.config import Settings, load_settings
from bot.errors import ConfigError, StartupError
from bot.logs import configure_logging

__all__ = ["main"]

log = logging.getLogger("membot")


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


# The commands that serve until stopped (SIGTERM lets them finish their clean-up).
_SERVES: dict[str, Callable[[Settings], Coroutine[Any, Any, None]]] = {
    "discord": processes.discord,
    "slack": processes.slack,
    "web": processes.web,
    "run": processes.run,
    "worker": processes.worker,
}


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
                configure_logging(processes.log_level(settings), settings.log_format, sys.stderr)
            else:
                log_path, log_file = processes.chat_log(settings)
                configure_logging(processes.log_level(settings), settings.log_format, log_file)
                note = f"Details of any fault go to {log_path} (--verbose shows them here)."
            logging.captureWarnings(True)
            eventloop.run(processes.until_terminated(processes.chat(settings, user, note)))
            return
        configure_logging(processes.log_level(settings), settings.log_format, sys.stderr)
        if args.command == "queue":
            eventloop.run(processes.queue(settings, args.retry_failed))
        elif args.command == "migrate":
            eventloop.run(processes.migrate(settings))
        else:
            eventloop.run(processes.until_terminated(_SERVES[args.command](settings)))
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
