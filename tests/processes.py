"""Several bot processes at once, for tests of membot past one process: each is the real
``membot`` entry point in a process of its own (:mod:`tests.fakes.entrypoint`), on the test's
PostgreSQL and the scripted model server, talking to the local fakes."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GUARD", "BotProcess", "bot_env", "membots", "tagged_reply", "until"]

ROOT = Path(__file__).resolve().parent.parent
# Seconds before a wait gives up: a guard against a hang on a loaded machine, not a timing
# requirement (a process's start alone imports mem0 and opens its pools).
GUARD = 300.0
# The environment of the machine running the tests must not configure the bots.
_SETTINGS = ("OPENAI_", "DATABASE_URL", "EMBEDDING_", "CHAT_MODEL", "EXTRACTION_MODEL",
             "MEMBOT_", "MEMORY_", "LOG_LEVEL", "SUPABASE_", "PUBLIC_URL", "PORT", "WEB_HOST",
             "DISCORD_", "SLACK_", "FAKE_", "DB_POOL_SIZE", "SHUTDOWN_GRACE", "CONTEXT_TURNS")


def bot_env(*, database_url: str, model_url: str, data_dir: Path, **settings: str
            ) -> dict[str, str]:
    """The settings of one bot process on the test's database and model server; ``settings``
    (by variable name) add to them or override them."""
    return {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": model_url,
        "EMBEDDING_DIMS": "64",
        "DATABASE_URL": database_url,
        "MEMBOT_DATA_DIR": str(data_dir),
        "MEMORY_SEARCH_TIMEOUT": "30",  # answers must not hinge on a loaded machine's speed
        "SHUTDOWN_GRACE": "60",
        "DB_POOL_SIZE": "3",
        "MEMORY_WRITE_THREADS": "2",
        "MEMORY_BATCH_SIZE": "1",  # learn each message at once, as it comes
        "MEMORY_BATCH_IDLE": "0",
        "LOG_LEVEL": "INFO",
        **settings,
    }


def tagged_reply(body: dict[str, Any]) -> str:
    """A scripted model answer (``ScriptedOpenAI.chat_reply``) that says which process asked:
    ``[<chat model>] <the last user message>``, when each process has a ``CHAT_MODEL`` of its
    own."""
    said = [m.get("content") for m in body["messages"] if m.get("role") == "user"]
    return f"[{body['model']}] {said[-1] if said else ''}"


@dataclass
class BotProcess:
    """One running ``membot`` command; its stdout and stderr go to ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_running(self) -> None:
        """Fail, with what it logged, if the process has exited."""
        if self.popen.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.popen.returncode}; it logged:\n{self.log}")

    def stop(self) -> int:
        """SIGTERM, as a platform stops a replica: it finishes what it holds (memory writes
        included) and exits. Returns its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=GUARD)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(
                f"{self.name} did not stop on SIGTERM; it logged:\n{self.log}") from None


def _start(name: str, args: list[str], env: dict[str, str], workdir: Path) -> BotProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
    clean.update(env)
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.entrypoint",
             "--env-file", str(workdir / "absent.env"), *args],
            env=clean, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return BotProcess(name, popen, log_path)


@contextlib.contextmanager
def membots(workdir: Path, *runs: tuple[str, list[str], dict[str, str]]
            ) -> Iterator[list[BotProcess]]:
    """Start one ``membot <args>`` process per ``(name, args, env)``, all at once; on the way
    out, any still running is stopped with SIGTERM (and killed if it hangs)."""
    started: list[BotProcess] = []
    try:
        for name, args, env in runs:
            started.append(_start(name, args, env, workdir / name))
        yield started
    finally:
        for process in started:
            if process.popen.poll() is None:
                with contextlib.suppress(AssertionError):
                    process.stop()


async def until(condition: Callable[[], bool | Awaitable[bool]], processes: list[BotProcess],
                what: str) -> None:
    """Wait until ``condition()`` (or what it returns, when awaitable) holds. Fails at once,
    with its log, when one of ``processes`` exits, and after :data:`GUARD` seconds naming
    ``what`` was awaited."""
    deadline = time.monotonic() + GUARD
    while not await _holds(condition):
        for process in processes:
            process.check_running()
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}:\n{p.log}" for p in processes)
            raise AssertionError(f"gave up waiting for {what}; the processes logged:\n{logs}")
        await asyncio.sleep(0.05)


async def _holds(condition: Callable[[], bool | Awaitable[bool]]) -> bool:
    held = condition()
    return await held if inspect.isawaitable(held) else held
