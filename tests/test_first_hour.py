"""What a newcomer meets in the terminal, on the real ``membot`` command in its own process: a
model that goes away mid-chat, a port already taken, ``:quit`` beside a worker, ``--version``
and each subcommand's ``--help``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import ScriptedOpenAI
from tests.test_cli import MEMBOT, clean_env, membot, one_sentence_failure


@pytest.fixture
def env(openai_server: ScriptedOpenAI, tmp_path: Path) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": openai_server.base_url,
        "EMBEDDING_DIMS": "64",
        "MEMBOT_DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_the_model_going_away_mid_chat_is_one_line_with_its_real_cause(
    env: dict[str, str], tmp_path: Path
) -> None:
    model = ScriptedOpenAI(dims=64).start()
    env.update(OPENAI_BASE_URL=model.base_url, MODEL_MAX_RETRIES="0", SHUTDOWN_GRACE="1")
    chat = subprocess.Popen([MEMBOT, "chat", "--user", "alice"], env=clean_env(env),
                            cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert chat.stdout is not None and chat.stdin is not None
        greeting = "".join(chat.stdout.readline() for _ in range(4))
        assert "You are talking to membot as alice" in greeting, greeting
        model.stop()  # the model server goes away: connections are refused from now on
        stdout, stderr = chat.communicate("are you there?\n", timeout=120)
    finally:
        model.stop()
        if chat.poll() is None:
            chat.kill()
    log_path = tmp_path / "data" / "logs" / "chat.log"
    assert f"Details of any fault go to {log_path}" in greeting
    assert chat.returncode == 0, stderr
    said = [line for line in stdout.splitlines() if line.startswith("membot")]
    assert said == ["membot [error]> I can't reach my language model right now. Please try "
                    f"again in a moment. (connection refused at {model.base_url})"]
    assert "Traceback" not in stdout + stderr and "Timeout" not in stdout
    assert stderr == ""
    logged = log_path.read_text()
    assert "answering without memories (connection refused)" in logged
    assert oct(log_path.stat().st_mode & 0o777) == "0o600"


def test_verbose_prints_the_log_in_the_terminal(env: dict[str, str], tmp_path: Path) -> None:
    result = membot(["chat", "--user", "alice", "--verbose"], stdin="hello\n", env=env,
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Details of any fault" not in result.stdout
    assert " INFO " in result.stderr and "bot.turns" in result.stderr


def test_a_busy_port_is_one_sentence_and_exit_3(
    env: dict[str, str], tmp_path: Path, database_url: str, busy_port: int
) -> None:
    env.update(DATABASE_URL=database_url, WEB_HOST="127.0.0.1", PORT=str(busy_port),
               WORKER_METRICS_PORT=str(busy_port), LOG_LEVEL="WARNING")
    web = one_sentence_failure(membot(["web"], stdin="", env=env, cwd=tmp_path), 3)
    assert web == (f"membot: Port {busy_port} on 127.0.0.1 is already in use (PORT): another "
                   "membot process or another program listens there; stop it or set PORT to a "
                   "free port.")
    worker = one_sentence_failure(membot(["worker"], stdin="", env=env, cwd=tmp_path), 3)
    assert f"Port {busy_port} on 127.0.0.1 is already in use (WORKER_METRICS_PORT)" in worker


def test_quit_beside_a_worker_is_prompt_and_says_who_learns_the_rest(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    # The write waits for a pause in the conversation; without another worker, quitting would
    # spend up to SHUTDOWN_GRACE learning it here.
    env.update(DATABASE_URL=database_url, MEMORY_BATCH_IDLE="3", SHUTDOWN_GRACE="90",
               WORKER_POLL_INTERVAL="0.2", WORKER_METRICS_PORT="0")
    worker = subprocess.Popen([MEMBOT, "worker"], env=clean_env(env), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert worker.stdout is not None
        for line in worker.stdout:  # up once it says it is learning
            if "learning memory writes" in line:
                break
        started = time.monotonic()
        chat = membot(["chat", "--user", "alice"], stdin="I keep bees in my garden\n:quit\n",
                      env=env, cwd=tmp_path)
        took = time.monotonic() - started
        assert chat.returncode == 0, chat.stderr
        assert chat.stdout.rstrip().endswith(
            "1 message still to learn: another membot process on this database (a membot "
            "worker, web or run) will learn it.")
        assert took < 90, took
        shown = ""
        while "0 messages waiting" not in shown:  # and the worker does learn it
            assert worker.poll() is None
            shown = membot(["queue"], stdin="", env=env, cwd=tmp_path).stdout
    finally:
        worker.terminate()
        worker.wait(60)
    listed = membot(["chat", "--user", "alice"], stdin=":memory list\n", env=env, cwd=tmp_path)
    assert "I keep bees in my garden" in listed.stdout


def test_version_and_each_subcommands_help_say_what_it_does_and_reads(tmp_path: Path) -> None:
    version = subprocess.run([MEMBOT, "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and version.stdout.startswith("membot 0.")
    expected = {"chat": "OPENAI_API_KEY", "discord": "DISCORD_TOKEN", "slack": "SLACK_BOT_TOKEN",
                "web": "PORT", "run": "DISCORD_*", "worker": "WORKER_METRICS_PORT",
                "queue": "DATABASE_URL", "migrate": "DATABASE_URL"}
    for command, setting in expected.items():
        shown = subprocess.run([MEMBOT, command, "--help"], capture_output=True, text=True,
                               check=False, env={**os.environ, "COLUMNS": "100"})
        assert shown.returncode == 0, shown.stderr
        description = shown.stdout.split("\n\n")[1]
        assert len(description) > 40, (command, shown.stdout)
        assert "Reads:" in shown.stdout and setting in shown.stdout, (command, shown.stdout)


def test_with_no_key_and_no_network_the_scripted_server_runs_membot_from_the_checkout(
    tmp_path: Path,
) -> None:
    """The README's no-key command, as a newcomer types it at the checkout's root."""
    root = Path(__file__).resolve().parent.parent
    env = clean_env({"MEMBOT_DATA_DIR": str(tmp_path / "data")})
    assert "OPENAI_API_KEY" not in env
    runs = [subprocess.run(
        [sys.executable, "-m", "tests.fakes.openai_server", "--", MEMBOT, "chat", "--user",
         "alice"], input=said, env=env, cwd=root, capture_output=True, text=True, timeout=180,
        check=False) for said in ("I grow basil on my windowsill\n:quit\n",
                                  "what do I grow?\n:quit\n")]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert "membot> (scripted) You said: I grow basil" in runs[0].stdout
    assert "I grow basil on my windowsill" in runs[1].stdout.split("You said: what do I grow?")[1]
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").is_file()
