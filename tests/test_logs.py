"""Structured logs: the per-turn line, what never appears in any line, and ``LOG_FORMAT=json``
in a real ``membot web`` process."""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.console import to_event
from bot.app import services
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.logs import configure_logging, owner_tag
from tests.conftest import answer
from tests.fakes.openai_server import ScriptedOpenAI
from tests.test_cli import MEMBOT, clean_env

MakeSettings = Callable[..., Settings]
SECRET = "sk-proj-7Qx9SECRETvalue42 and my PIN is 90817"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Logging as ``membot`` sets it up at INFO with ``LOG_FORMAT=json``, into a buffer; the
    logging set-up of the test run is restored afterwards."""
    root = logging.getLogger()
    levels = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
              if isinstance(logger, logging.Logger)}
    root_level = root.level
    stream = io.StringIO()
    handler = configure_logging(logging.INFO, "json", stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_one_json_line_per_turn_with_its_fields_and_never_the_text(
    make_settings: MakeSettings, openai_server: ScriptedOpenAI, json_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with services(make_settings(model_max_retries=0)) as app:
        await answer(app.core, to_event("alice", "I keep bees on my roof", session="s"))
        await app.jobs.wait_idle()
        told = to_event("alice", f"remember my key {SECRET}", session="s")
        reply = await answer(app.core, told)
        assert SECRET in reply.text  # the scripted model echoes it: it is in the answer too
        await app.jobs.wait_idle()
        await app.core.handle(told)  # redelivered
        openai_server.fail_always("chat", 500)
        await answer(app.core, to_event("alice", f"again {SECRET}", session="s"))
        openai_server.clear_failures()
        key = await app.database.pool.fetchval("select key from site_keys where name = 'log-owner'")

    records = lines(json_logs)
    assert records, "nothing was logged"
    turns = [r for r in records if r["logger"] == "bot.turns"]
    assert [t["outcome"] for t in turns] == ["answered", "answered", "duplicate", "error"]
    first, second, duplicate, error = turns
    assert first["level"] == "INFO" and first["platform"] == "console"
    assert first["event"].startswith("console:")
    assert first["owner"] == owner_tag(key, "console:alice")
    assert len(first["owner"]) == 12 and "alice" not in json.dumps(first)
    assert second["owner"] == first["owner"]  # stable, so one person's turns can be followed
    assert second["memories"] == 1  # the bees
    for turn in (first, second):
        assert turn["search_ms"] >= 0 and turn["model_ms"] > 0
        assert turn["total_ms"] >= turn["model_ms"]
    assert duplicate["owner"] is None and duplicate["model_ms"] is None
    assert error["model_ms"] > 0
    assert all(set(t) >= {"time", "message", "event", "platform", "owner", "outcome",
                          "memories", "search_ms", "model_ms", "total_ms"} for t in turns)

    # Not in any line, nor in any record at INFO or above (messages and their arguments).
    assert SECRET not in json_logs.getvalue()
    assert "bees" not in json_logs.getvalue()
    assert "90817" not in json_logs.getvalue()
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            assert "90817" not in record.getMessage(), record.getMessage()


def test_owner_tags_depend_on_the_key_and_the_owner() -> None:
    key, other_key = b"k" * 32, b"j" * 32
    assert owner_tag(key, "discord:1") == owner_tag(key, "discord:1")
    assert owner_tag(key, "discord:1") != owner_tag(key, "discord:2")
    assert owner_tag(key, "discord:1") != owner_tag(other_key, "discord:1")
    assert len(owner_tag(key, "discord:1")) == 12


def test_log_format_is_text_by_default_and_names_itself_when_wrong() -> None:
    assert load_settings({"OPENAI_API_KEY": "k"}, None).log_format == "text"
    assert load_settings({"OPENAI_API_KEY": "k", "LOG_FORMAT": "json"}, None).log_format == "json"
    with pytest.raises(ConfigError, match=r"^LOG_FORMAT is not valid"):
        load_settings({"OPENAI_API_KEY": "k", "LOG_FORMAT": "xml"}, None)


def test_membot_web_logs_json_and_serves_readiness_and_metrics(
    openai_server: ScriptedOpenAI, database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = clean_env({
        "OPENAI_API_KEY": "sk-never-logged", "OPENAI_BASE_URL": openai_server.base_url,
        "EMBEDDING_DIMS": "64", "DATABASE_URL": database_url, "LOG_FORMAT": "json",
        "PORT": str(port), "WEB_HOST": "127.0.0.1", "MEMBOT_DATA_DIR": str(tmp_path / "data"),
    })
    web = subprocess.Popen([MEMBOT, "web"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as ready:
                    body = json.loads(ready.read())
                    break
            except OSError:
                assert web.poll() is None and time.monotonic() < deadline, web.stderr
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as scraped:
            names = {f.name for f in text_string_to_metric_families(scraped.read().decode())}
    finally:
        web.send_signal(signal.SIGTERM)
        _, stderr = web.communicate(timeout=60)
    assert web.returncode == 0, stderr
    assert body["status"] == "ready"
    assert {"membot_turns", "membot_reply_seconds", "membot_memory_write_queue_depth"} <= names
    records = [json.loads(line) for line in stderr.splitlines()]
    assert any(r["message"].startswith("serving the web pages") for r in records)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert "sk-never-logged" not in stderr and database_url not in stderr
