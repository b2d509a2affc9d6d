"""One frozen settings object, read once from the environment and an optional ``.env`` file.

Tests build :class:`Settings` directly; the entry point calls :func:`load_settings`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.errors import ConfigError

__all__ = ["Settings", "load_settings"]


def _env(name: str, *aliases: str) -> Any:
    """The field is read from environment variable ``name`` (or one of ``aliases``)."""
    return Field(validation_alias=AliasChoices(name, *aliases))


def _default_data_dir() -> Path:
    return platformdirs.user_data_path("membot")

# An http(s) URL: a host, and a path or none; no query or fragment.
_HTTP_URL = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"


class Settings(BaseModel):
    """Everything membot can be configured with. Secrets are ``SecretStr`` and never printed."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # The model API (any OpenAI-compatible server).
    openai_api_key: Annotated[SecretStr | None, _env("OPENAI_API_KEY")] = None
    openai_base_url: Annotated[str | None, _env("OPENAI_BASE_URL")] = None
    chat_model: Annotated[str, _env("CHAT_MODEL")] = "gpt-5-mini"
    extraction_model: Annotated[str | None, _env("EXTRACTION_MODEL")] = None
    embedding_model: Annotated[str, _env("EMBEDDING_MODEL")] = "text-embedding-3-small"
    # Many chat providers serve no embeddings: these point the embedder elsewhere (OpenAI's API,
    # a local server) and default to the chat API's.
    embedding_base_url: Annotated[str | None, _env("EMBEDDING_BASE_URL")] = None
    embedding_api_key: Annotated[SecretStr | None, _env("EMBEDDING_API_KEY")] = None
    embedding_dims: Annotated[int, _env("EMBEDDING_DIMS"), Field(gt=0, le=16000)] = 1536
    send_embedding_dims: Annotated[bool, _env("EMBEDDING_SEND_DIMS")] = True
    # Models trained with instructions want them before the text (e5: "query: " / "passage: ",
    # nomic-embed-text: "search_query: " / "search_document: "); OpenAI's models want none.
    embedding_query_prefix: Annotated[str, _env("EMBEDDING_QUERY_PREFIX")] = ""
    embedding_document_prefix: Annotated[str, _env("EMBEDDING_DOCUMENT_PREFIX")] = ""
    model_timeout: Annotated[float, _env("MODEL_TIMEOUT"), Field(gt=0)] = 60.0
    extraction_timeout: Annotated[float, _env("EXTRACTION_TIMEOUT"), Field(gt=0)] = 300.0
    model_max_retries: Annotated[int, _env("MODEL_MAX_RETRIES"), Field(ge=0, le=10)] = 2

    # Storage.
    database_url: Annotated[SecretStr | None, _env("DATABASE_URL")] = None
    data_dir: Annotated[Path, _env("MEMBOT_DATA_DIR")] = Field(default_factory=_default_data_dir)
    memory_table: Annotated[
        str, _env("MEMORY_TABLE"), Field(pattern=r"^[a-z_][a-z0-9_]{0,40}$")
    ] = "memories"

    # The turn.
    memory_top_k: Annotated[int, _env("MEMORY_TOP_K"), Field(ge=0, le=100)] = 5
    context_turns: Annotated[int, _env("CONTEXT_TURNS"), Field(ge=0, le=100)] = 6
    max_message_chars: Annotated[int, _env("MAX_MESSAGE_CHARS"), Field(ge=100)] = 4000
    max_answer_tokens: Annotated[int, _env("MAX_ANSWER_TOKENS"), Field(ge=16)] = 2000
    max_answer_chars: Annotated[int, _env("MAX_ANSWER_CHARS"), Field(ge=100)] = 8000
    context_chars: Annotated[int, _env("CONTEXT_CHARS"), Field(ge=0)] = 12000
    memory_search_timeout: Annotated[float, _env("MEMORY_SEARCH_TIMEOUT"), Field(gt=0)] = 2.0

    # Capacity.
    db_pool_size: Annotated[int, _env("DB_POOL_SIZE"), Field(ge=1, le=200)] = 10
    memory_write_threads: Annotated[int, _env("MEMORY_WRITE_THREADS"), Field(ge=1, le=256)] = 8
    shutdown_grace: Annotated[float, _env("SHUTDOWN_GRACE"), Field(ge=0)] = 15.0

    # Memory writes: the durable queue and its batching.
    in_process_worker: Annotated[bool, _env("IN_PROCESS_WORKER")] = True
    worker_metrics_port: Annotated[
        int, _env("WORKER_METRICS_PORT"), Field(ge=0, le=65535)
    ] = 9100
    memory_batch_size: Annotated[int, _env("MEMORY_BATCH_SIZE"), Field(ge=1, le=50)] = 5
    memory_batch_idle: Annotated[float, _env("MEMORY_BATCH_IDLE"), Field(ge=0)] = 20.0
    memory_batch_max_wait: Annotated[float, _env("MEMORY_BATCH_MAX_WAIT"), Field(ge=0)] = 120.0
    memory_write_attempts: Annotated[int, _env("MEMORY_WRITE_ATTEMPTS"), Field(ge=1, le=30)] = 8
    memory_retry_backoff: Annotated[int, _env("MEMORY_RETRY_BACKOFF"), Field(ge=1, le=60)] = 2
    worker_stalled_after: Annotated[float, _env("WORKER_STALLED_AFTER"), Field(gt=0)] = 30.0
    worker_poll_interval: Annotated[float, _env("WORKER_POLL_INTERVAL"), Field(gt=0)] = 5.0

    log_level: Annotated[str, _env("LOG_LEVEL")] = "INFO"
    log_format: Annotated[Literal["text", "json"], _env("LOG_FORMAT")] = "text"

    # Discord.
    discord_token: Annotated[SecretStr | None, _env("DISCORD_TOKEN")] = None
    discord_dev_guild: Annotated[int | None, _env("DISCORD_DEV_GUILD")] = None
    discord_shard_count: Annotated[int | None, _env("DISCORD_SHARD_COUNT"), Field(ge=1)] = None
    discord_shard_ids: Annotated[tuple[int, ...] | None, _env("DISCORD_SHARD_IDS")] = None
    discord_follow_threads: Annotated[bool, _env("DISCORD_FOLLOW_THREADS")] = False

    # Slack.
    slack_bot_token: Annotated[SecretStr | None, _env("SLACK_BOT_TOKEN")] = None
    slack_app_token: Annotated[SecretStr | None, _env("SLACK_APP_TOKEN")] = None
    slack_signing_secret: Annotated[SecretStr | None, _env("SLACK_SIGNING_SECRET")] = None
    web_host: Annotated[str, _env("WEB_HOST")] = "0.0.0.0"
    web_port: Annotated[int, _env("PORT"), Field(ge=0, le=65535)] = 8000
    public_url_setting: Annotated[str | None, _env("PUBLIC_URL"), Field(pattern=_HTTP_URL)] = None

    # Account linking (Supabase Auth).
    supabase_url: Annotated[
        str | None, _env("SUPABASE_URL"), Field(pattern=r"^https?://[^\s?#]+$")
    ] = None
    supabase_key: Annotated[
        SecretStr | None, _env("SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY")
    ] = None
    link_ttl: Annotated[float, _env("LINK_TTL"), Field(ge=60, le=86400)] = 600.0
    link_create_users: Annotated[bool, _env("LINK_CREATE_USERS")] = False
    link_emails_per_account: Annotated[int, _env("LINK_EMAILS_PER_ACCOUNT"), Field(ge=1)] = 5
    link_emails_per_hour: Annotated[int, _env("LINK_EMAILS_PER_HOUR"), Field(ge=1)] = 30

    @field_validator("openai_base_url", "embedding_base_url")
    @classmethod
    def _model_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not re.match(_HTTP_URL, value):
            raise ValueError(
                f"{_env_name(str(info.field_name))}={value!r} is not an http:// or https:// URL"
                " (for a server on this machine, for example: http://localhost:11434/v1)")
        return value

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _shard_list(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            return _shard_ids(value, info.data.get("discord_shard_count"))
        return value

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        ids, count = self.discord_shard_ids, self.discord_shard_count
        if ids is not None:
            if count is None:
                raise ValueError(_NEEDS_COUNT)
            if not ids:
                raise ValueError("DISCORD_SHARD_IDS names no shard")
            if stray := [i for i in ids if not 0 <= i < count]:
                raise ValueError(_outside(stray[0], count))
        return self

    @model_validator(mode="after")
    def _supabase_complete(self) -> Settings:
        if (self.supabase_url is None) != (self.supabase_key is None):
            raise ValueError(
                "account linking needs both SUPABASE_URL and SUPABASE_SECRET_KEY (or "
                "SUPABASE_SERVICE_ROLE_KEY)"
            )
        return self

    @property
    def public_url(self) -> str:
        """Where people reach the web server (``PUBLIC_URL``): links in chat point here."""
        return (self.public_url_setting or f"http://localhost:{self.web_port}").rstrip("/")

    @property
    def extraction_model_name(self) -> str:
        """The model that extracts memories: ``EXTRACTION_MODEL``, else the chat model."""
        return self.extraction_model or self.chat_model


_NEEDS_COUNT = "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT, the total number of shards"


def _outside(shard: int, count: int) -> str:
    return (f"DISCORD_SHARD_IDS names shard {shard}, but with DISCORD_SHARD_COUNT={count} the "
            f"shards are numbered 0-{count - 1}")


def _shard_ids(text: str, count: int | None) -> tuple[int, ...]:
    """``DISCORD_SHARD_IDS``: shard numbers and ranges (``"0-3"``, ``"0,2"``, ``"0-1,4"``) of
    ``count`` shards, sorted and without repeats. Raises ValueError in one sentence."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", part)
        if match is None:
            raise ValueError(f"DISCORD_SHARD_IDS must be shard numbers or ranges such as 0-3 or "
                             f"0,2, not {text.strip()!r}")
        ranges.append((int(match[1]), int(match[2] or match[1])))
    if count is None:
        raise ValueError(_NEEDS_COUNT)
    ids: set[int] = set()
    for first, last in ranges:
        if first > last:
            raise ValueError(f"DISCORD_SHARD_IDS has the range {first}-{last}, which runs "
                             f"backwards; write {last}-{first}")
        if last >= count:
            raise ValueError(_outside(last, count))
        ids.update(range(first, last + 1))
    return tuple(sorted(ids))


def _env_name(field_name: str) -> str:
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return field_name.upper()


def load_settings(
    environ: Mapping[str, str], env_file: Path | None = Path(".env"), **overrides: Any
) -> Settings:
    """Read settings from ``environ``, falling back to ``env_file`` where it exists.

    Variables set in ``environ`` win over the file; ``overrides`` (by field name) win over both.
    Empty values count as unset. Raises :class:`ConfigError` naming the first bad setting.
    """
    names = {_env_name(name): name for name in Settings.model_fields}
    values: dict[str, Any] = {}
    sources: list[Mapping[str, str | None]] = []
    if env_file is not None and env_file.is_file():
        sources.append(dotenv_values(env_file))
    sources.append(environ)
    for source in sources:
        for env_name, field_name in names.items():
            raw = source.get(env_name)
            if raw is not None and raw.strip() != "":
                values[field_name] = raw.strip()
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across settings; its message names them
            raise ConfigError(f"{str(first['msg']).removeprefix('Value error, ')}.") from None
        field_name = str(first["loc"][0])
        env_name = _env_name(field_name) if field_name in Settings.model_fields else field_name
        said = str(first["msg"]).removeprefix("Value error, ")
        if said.startswith(env_name):  # a validator's own sentence, naming the setting
            raise ConfigError(f"{said}.") from None
        raise ConfigError(f"{env_name} is not valid: {first['msg']}.") from None
