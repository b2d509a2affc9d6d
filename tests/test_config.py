"""Settings: where they come from, what wins, and how a bad one is reported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from bot.config import Settings, load_settings
from bot.errors import ConfigError


def test_environment_wins_over_the_dotenv_file_and_empty_means_unset(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CHAT_MODEL=from-file\nMEMORY_TOP_K=7\nEMBEDDING_DIMS=384\n")
    settings = load_settings({"CHAT_MODEL": "from-env", "EMBEDDING_DIMS": ""}, env_file)
    assert settings.chat_model == "from-env"
    assert settings.memory_top_k == 7
    assert settings.embedding_dims == 384


def test_defaults_need_no_environment_at_all() -> None:
    settings = load_settings({}, None)
    assert settings.chat_model and settings.embedding_model == "text-embedding-3-small"
    assert settings.embedding_dims == 1536
    assert settings.memory_top_k == 5
    assert settings.database_url is None
    assert settings.extraction_model_name == settings.chat_model


def test_secrets_never_show_in_text() -> None:
    settings = load_settings(
        {"OPENAI_API_KEY": "sk-very-secret", "DATABASE_URL": "postgresql://u:hunter2@db/x"}, None
    )
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "sk-very-secret" not in shown and "hunter2" not in shown


@pytest.mark.parametrize(
    ("name", "value"),
    [("MEMORY_TOP_K", "-1"), ("EMBEDDING_DIMS", "many"), ("MEMORY_TABLE", "x; drop table y"),
     ("MODEL_TIMEOUT", "0")],
)
def test_a_bad_value_is_reported_by_its_setting_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} is not valid"):
        load_settings({name: value}, None)


@pytest.mark.parametrize(("name", "value"), [("OPENAI_BASE_URL", "localhost:11434/v1"),
                                           ("EMBEDDING_BASE_URL", "ftp://models/v1"),
                                           ("OPENAI_BASE_URL", "http://model server/v1")])
def test_a_model_url_that_is_not_http_is_one_sentence_that_names_it(name: str,
                                                                    value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value}, None)
    assert str(caught.value) == (f"{name}={value!r} is not an http:// or https:// URL (for a "
                                 "server on this machine, for example: "
                                 "http://localhost:11434/v1).")


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.memory_top_k = 3


@pytest.mark.parametrize(
    ("ids", "expected"),
    [("0-3", (0, 1, 2, 3)), ("0,2", (0, 2)), (" 4 , 0-1,1 ", (0, 1, 4)), ("7", (7,))],
)
def test_shard_ids_take_numbers_and_ranges(ids: str, expected: tuple[int, ...]) -> None:
    settings = load_settings({"DISCORD_SHARD_COUNT": "8", "DISCORD_SHARD_IDS": ids}, None)
    assert settings.discord_shard_ids == expected
    assert settings.discord_shard_count == 8


def test_without_shard_settings_discord_decides() -> None:
    settings = load_settings({}, None)
    assert settings.discord_shard_count is None and settings.discord_shard_ids is None
    every = load_settings({"DISCORD_SHARD_COUNT": "4"}, None)  # this process runs all four
    assert every.discord_shard_count == 4 and every.discord_shard_ids is None


@pytest.mark.parametrize(
    ("environ", "sentence"),
    [({"DISCORD_SHARD_IDS": "0"},
      "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT, the total number of shards."),
     ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "2"},
      "DISCORD_SHARD_IDS names shard 2, but with DISCORD_SHARD_COUNT=2 the shards are "
      "numbered 0-1."),
     ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "0-99999999999"},
      "DISCORD_SHARD_IDS names shard 99999999999, but with DISCORD_SHARD_COUNT=4 the shards "
      "are numbered 0-3."),
     ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "3-1"},
      "DISCORD_SHARD_IDS has the range 3-1, which runs backwards; write 1-3."),
     ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "first"},
      "DISCORD_SHARD_IDS must be shard numbers or ranges such as 0-3 or 0,2, not 'first'."),
     ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "0,,1"},
      "DISCORD_SHARD_IDS must be shard numbers or ranges such as 0-3 or 0,2, not '0,,1'."),
     ({"DISCORD_SHARD_COUNT": "0", "DISCORD_SHARD_IDS": "0"},
      "DISCORD_SHARD_COUNT is not valid: Input should be greater than or equal to 1.")],
)
def test_a_bad_shard_setting_is_one_sentence_that_names_it(
    environ: dict[str, str], sentence: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ, None)
    assert str(caught.value) == sentence


def test_the_root_env_example_names_only_settings_and_loads() -> None:
    root = Path(__file__).resolve().parent.parent
    example = root / ".env.example"
    names = {choice for field in Settings.model_fields.values()
             if isinstance(field.validation_alias, AliasChoices)
             for choice in field.validation_alias.choices if isinstance(choice, str)}
    named = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", example.read_text(), re.MULTILINE))
    assert named - names == set()
    assert {"OPENAI_API_KEY", "EMBEDDING_BASE_URL", "DATABASE_URL", "DISCORD_TOKEN"} <= named
    settings = load_settings({}, example)
    assert settings.openai_api_key is not None and settings.database_url is None
