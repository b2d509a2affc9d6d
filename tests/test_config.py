"""Settings: where they come from, what wins, and how a bad one is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.memory_top_k = 3
