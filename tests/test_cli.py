"""The real entry point, as a person runs it: the installed ``membot`` command in a new process
each time, on the embedded PostgreSQL it starts by itself, against the scripted model server."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.conftest import MIGRATIONS
from tests.fakes.openai_server import ScriptedOpenAI
from tests.fakes.supabase import FakeSupabaseAuth

SETTINGS = ("OPENAI_", "DATABASE_URL", "EMBEDDING_", "CHAT_MODEL", "MEMBOT_", "MEMORY_",
            "OPENROUTER_", "LOG_LEVEL", "LOG_FORMAT", "SUPABASE_", "PUBLIC_URL", "PORT", "WEB_HOST",
            "DISCORD_", "SLACK_")


def clean_env(env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
    clean.update(env)
    return clean


MEMBOT = str(Path(sys.executable).with_name("membot"))


def membot(args: list[str], *, stdin: str, env: dict[str, str], cwd: Path,
           ) -> subprocess.CompletedProcess[str]:
    clean = clean_env(env)
    return subprocess.run(
        [MEMBOT, *args],
        input=stdin, env=clean, cwd=cwd, capture_output=True, text=True, timeout=120,
        check=False,
    )


@pytest.fixture
def env(openai_server: ScriptedOpenAI, tmp_path: Path) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": openai_server.base_url,
        "EMBEDDING_DIMS": "64",
        "MEMBOT_DATA_DIR": str(tmp_path / "data"),
    }


def test_a_conversation_is_remembered_across_restarts_and_kept_from_others(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = membot(["chat", "--user", "alice"], stdin="I build my apps with FastAPI and Postgres\n",
                   env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "membot> " in first.stdout

    again = membot(["chat", "--user", "alice"], stdin="what stack do I use?\n:quit\n",
                   env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "I build my apps with FastAPI and Postgres" in again.stdout

    bob = membot(["chat", "--user", "bob"], stdin="what stack do I use?\n", env=env, cwd=tmp_path)
    assert bob.returncode == 0, bob.stderr
    assert "FastAPI" not in bob.stdout
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").is_file()
    assert (tmp_path / "data" / "mem0").is_dir()


def test_empty_lines_get_a_hint(env: dict[str, str], tmp_path: Path) -> None:
    result = membot(["chat", "--user", "alice"], stdin="   \n", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "membot [hint]> I didn't get any text there." in result.stdout


def one_sentence_failure(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_api_key_names_the_setting(env: dict[str, str], tmp_path: Path) -> None:
    del env["OPENAI_API_KEY"]
    line = one_sentence_failure(membot(["chat"], stdin="", env=env, cwd=tmp_path), 2)
    assert line.startswith("membot: OPENAI_API_KEY is not set")


def test_unreachable_model_api_names_the_setting(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    env["MODEL_MAX_RETRIES"] = "0"
    line = one_sentence_failure(membot(["chat"], stdin="", env=env, cwd=tmp_path), 3)
    assert "Cannot reach the model API" in line and "OPENAI_BASE_URL" in line


def test_rejected_api_key_names_the_setting(env: dict[str, str], tmp_path: Path) -> None:
    with ScriptedOpenAI(dims=64, api_key="the-right-key") as strict:
        env["OPENAI_BASE_URL"] = strict.base_url
        line = one_sentence_failure(membot(["chat"], stdin="", env=env, cwd=tmp_path), 2)
    assert "rejected OPENAI_API_KEY" in line
    assert "test-key" not in line


def test_bad_setting_value_names_the_setting(env: dict[str, str], tmp_path: Path) -> None:
    env["EMBEDDING_DIMS"] = "many"
    line = one_sentence_failure(membot(["chat"], stdin="", env=env, cwd=tmp_path), 2)
    assert line.startswith("membot: EMBEDDING_DIMS is not valid")


def test_settings_are_read_from_a_dotenv_file(env: dict[str, str], tmp_path: Path) -> None:
    key = env.pop("OPENAI_API_KEY")
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={key}\n")
    result = membot(["chat", "--user", "carol"], stdin="hello\n", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(scripted) You said: hello" in result.stdout


def test_migrate_creates_the_tables_in_the_given_database(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    env["DATABASE_URL"] = database_url
    result = membot(["migrate"], stdin="", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout
    assert "postgres:@" not in result.stdout + result.stderr
    with psycopg.connect(database_url) as conn:
        versions = [row[0] for row in conn.execute("select version from membot_migrations")]
        turns = conn.execute("select to_regclass('conversation_turns')").fetchone()
    assert sorted(versions) == MIGRATIONS
    assert turns is not None and turns[0] == "conversation_turns"


def test_link_in_the_terminal_says_when_linking_is_not_configured(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = membot(["chat", "--user", "alice"], stdin=":link\nhello\n", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "linking is not configured" in result.stdout
    assert "(scripted) You said: hello" in result.stdout


def test_a_link_made_in_chat_opens_on_the_web_server_process(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    with FakeSupabaseAuth(database_url=database_url) as auth, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        env.update(DATABASE_URL=database_url, SUPABASE_URL=auth.url,
                   SUPABASE_SECRET_KEY=auth.service_key, PUBLIC_URL=f"http://127.0.0.1:{port}",
                   PORT=str(port), WEB_HOST="127.0.0.1")
        chat = membot(["chat", "--user", "alice"], stdin=":link\n", env=env, cwd=tmp_path)
        assert chat.returncode == 0, chat.stderr
        [url] = re.findall(r"http://127\.0\.0\.1:\d+/link/\S+", chat.stdout)
        assert auth.service_key not in chat.stdout + chat.stderr

        web = subprocess.Popen([MEMBOT, "web"], env=clean_env(env), cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as health:
                        assert health.status == 200
                        break
                except OSError:
                    assert web.poll() is None and time.monotonic() < deadline, web.stderr
                    time.sleep(0.2)
            with urllib.request.urlopen(url) as page:
                html = page.read().decode()
            assert "terminal account <strong>alice</strong>" in html
            with pytest.raises(urllib.error.HTTPError) as unknown:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/link/not-a-token")
            assert unknown.value.code == 404
        finally:
            web.send_signal(signal.SIGTERM)
            _, stderr = web.communicate(timeout=60)
        assert web.returncode == 0, stderr
        assert auth.service_key not in stderr


def test_queue_shows_what_waits_and_a_worker_process_learns_it(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    env.update(DATABASE_URL=database_url, IN_PROCESS_WORKER="false", MEMORY_BATCH_IDLE="0",
               WORKER_POLL_INTERVAL="0.2", WORKER_METRICS_PORT="0")
    told = membot(["chat", "--user", "alice"], stdin="I keep bees in my garden\n", env=env,
                  cwd=tmp_path)
    assert told.returncode == 0, told.stderr
    waiting = membot(["queue"], stdin="", env=env, cwd=tmp_path)
    assert waiting.returncode == 0, waiting.stderr
    assert "1 message waiting to be learned, 0 failed; jobs: 1 todo." in waiting.stdout

    worker = subprocess.Popen([MEMBOT, "worker"], env=clean_env(env), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        shown = ""
        while "0 messages waiting" not in shown:  # the worker learns it
            assert worker.poll() is None, worker.communicate()[0]
            shown = membot(["queue"], stdin="", env=env, cwd=tmp_path).stdout
    finally:
        worker.terminate()
        assert worker.wait(60) == 0
    listed = membot(["chat", "--user", "alice"], stdin=":memory list\n", env=env, cwd=tmp_path)
    assert "I keep bees in my garden" in listed.stdout
