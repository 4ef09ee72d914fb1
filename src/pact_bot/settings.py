"""Every environment variable pact-bot reads, validated once at start-up.

A bad value stops start-up with one line naming the variable (`ConfigError`),
never a traceback: operators read it in a container log.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODELS = {
    "sonnet": "claude-sonnet-5-5",
    "opus": "claude-opus-5-5",
    "haiku": "claude-haiku-5-5",
}

# Dollars per million tokens: input, output, cache write (5 min), cache read.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "claude-sonnet-5-5": {"input": 2.0, "output": 10.0, "cache_write": 2.5, "cache_read": 0.2},
    "claude-opus-5-5": {"input": 4.0, "output": 20.0, "cache_write": 5.0, "cache_read": 0.2},
    "claude-haiku-5-5": {"input": 1.0, "output": 5.0, "cache_write": 1.25, "cache_read": 0.1},
}

APP_VARS = ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET")


class ConfigError(Exception):
    """A configuration problem, worded for the operator as one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    github_app_id: int | None = None
    github_private_key: SecretStr | None = None
    github_private_key_path: Path | None = None
    github_webhook_secret: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    github_web_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None

    pact_model: str | None = None
    pact_model_sonnet: str = DEFAULT_MODELS["sonnet"]
    pact_model_opus: str = DEFAULT_MODELS["opus"]
    pact_model_haiku: str = DEFAULT_MODELS["haiku"]
    pact_prices: Annotated[dict[str, dict[str, float]], NoDecode] = Field(default_factory=dict)

    pact_database_url: str = "sqlite:///./pact-bot.db"
    pact_workers: int = Field(default=2, ge=0, le=64)
    pact_data_dir: Path = Path("./pact-data")
    pact_public_url: str | None = None
    pact_host: str = "127.0.0.1"
    pact_port: int = Field(default=3000, ge=0, le=65535)

    pact_max_turns: int = Field(default=60, ge=1)
    pact_max_cost_usd: float = Field(default=5.0, gt=0)
    pact_max_minutes: float = Field(default=30.0, gt=0)
    pact_max_body_bytes: int = 25 * 1024 * 1024
    pact_lease_seconds: float = Field(default=60.0, gt=0)
    pact_max_attempts: int = Field(default=3, ge=1)

    @field_validator("github_api_url", "anthropic_base_url", "pact_public_url", "github_web_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v else v

    @field_validator("pact_database_url")
    @classmethod
    def _db_scheme(cls, v: str) -> str:
        if not v.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError(
                "unknown scheme: use sqlite:///path/to.db or postgresql://user@host/db"
            )
        return v

    @field_validator("pact_prices", mode="before")
    @classmethod
    def _prices(cls, v: object) -> object:
        if isinstance(v, str):
            try:
                return json.loads(v) if v.strip() else {}
            except json.JSONDecodeError as e:
                raise ValueError(f"not JSON ({e.msg})") from None
        return v

    @model_validator(mode="after")
    def _private_key(self) -> Settings:
        if self.github_private_key is None and self.github_private_key_path is not None:
            try:
                pem = self.github_private_key_path.read_text()
            except OSError as e:
                raise ValueError(f"GITHUB_PRIVATE_KEY_PATH: cannot read ({e.strerror})") from None
            self.github_private_key = SecretStr(pem)
        if self.github_private_key is not None:
            pem = self.github_private_key.get_secret_value().replace("\\n", "\n").strip() + "\n"
            _check_pem(pem)
            self.github_private_key = SecretStr(pem)
        return self

    @property
    def app_configured(self) -> bool:
        return not self.missing_app_vars()

    def missing_app_vars(self) -> list[str]:
        have = {
            "GITHUB_APP_ID": self.github_app_id is not None,
            "GITHUB_PRIVATE_KEY": self.github_private_key is not None,
            "GITHUB_WEBHOOK_SECRET": self.github_webhook_secret is not None,
        }
        return [name for name in APP_VARS if not have[name]]

    @property
    def is_postgres(self) -> bool:
        return self.pact_database_url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        return Path(self.pact_database_url.removeprefix("sqlite:///"))

    @property
    def web_url(self) -> str:
        """github.com for api.github.com; the host itself for Enterprise Server."""
        if self.github_web_url:
            return self.github_web_url
        if self.github_api_url == "https://api.github.com":
            return "https://github.com"
        return self.github_api_url.removesuffix("/api/v3")

    @cached_property
    def prices(self) -> dict[str, dict[str, float]]:
        merged = {k: dict(v) for k, v in DEFAULT_PRICES.items()}
        for model, table in self.pact_prices.items():
            merged.setdefault(model, {}).update(table)
        return merged

    def resolve_model(self, requested: str | None) -> str:
        """PACT_MODEL wins; aliases map to the latest ids; a full id is used as is."""
        name = self.pact_model or requested or "sonnet"
        aliases = {
            "sonnet": self.pact_model_sonnet,
            "opus": self.pact_model_opus,
            "haiku": self.pact_model_haiku,
        }
        return aliases.get(name, name)

    def secrets(self) -> list[str]:
        """Secret values that must never appear in logs, transcripts or diffs."""
        out = []
        for s in (self.github_private_key, self.github_webhook_secret, self.anthropic_api_key):
            if s is not None and s.get_secret_value():
                out.append(s.get_secret_value())
        return out


def _check_pem(pem: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("GITHUB_PRIVATE_KEY: not a PEM private key that parses") from None


def load_settings(**overrides: object) -> Settings:
    """Build settings or raise ConfigError with one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        err = e.errors()[0]
        loc = "_".join(str(p) for p in err["loc"]).upper()
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:
            raise ConfigError(msg) from None
        raise ConfigError(f"{loc}: {msg}") from None
