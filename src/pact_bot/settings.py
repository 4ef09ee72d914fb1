"""Every environment variable pact-bot reads, validated once at start-up.

A bad value stops start-up with one line naming the variable (`ConfigError`),
never a traceback: operators read it in a container log.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pact_bot import netproxy
from pact_bot.model_catalog import (
    CLOUD_SECRET_VARS,
    PROVIDER_MODELS,
    PROVIDER_PRICES,
    Provider,
    alias_description,
)

APP_VARS = ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET")


class ConfigError(Exception):
    """A configuration problem, worded for the operator as one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )
    # Each field's docstring is its entry in docs/configuration.md (`docs_gen.field_docs`).

    github_app_id: int | None = None
    """The GitHub App's id (written to `.env` by the setup flow)."""
    github_private_key: SecretStr | None = None
    """The App's private key, PEM; newlines may be written as `\\n`."""
    github_private_key_path: Path | None = None
    """A file holding the PEM key, instead of GITHUB_PRIVATE_KEY."""
    github_app_slug: str | None = None
    """The App's slug (written by the setup flow); the bot's own login is `<slug>[bot]`, whose
    events start nothing. Default `pact-bot`."""
    github_webhook_secret: SecretStr | None = None
    """Secret GitHub signs each webhook delivery with (HMAC-SHA256)."""
    github_client_id: str | None = None
    """The App's OAuth client id (written by the setup flow): people sign in to the run viewer
    (`/jobs`) with GitHub through it."""
    github_client_secret: SecretStr | None = None
    """The App's OAuth client secret (written by the setup flow); without it and GITHUB_CLIENT_ID
    the run viewer is off."""
    github_api_url: str = "https://api.github.com"
    """REST API root; GitHub Enterprise Server: `https://HOST/api/v3`."""
    github_web_url: str | None = None
    """Web host for App registration and links; derived from GITHUB_API_URL when unset
    (`https://github.com`, or the Enterprise Server host)."""
    pact_github_org: str | None = None
    """Register the App on this organisation instead of your user account (same as `pact-bot setup
    --org`)."""
    anthropic_api_key: SecretStr | None = None
    """Anthropic API key (or the key your gateway expects)."""
    anthropic_base_url: str | None = None
    """Anthropic API root, for a gateway or proxy; SDK default when unset."""
    pact_provider: Provider = "anthropic"
    """Where the model runs: `anthropic` (the Anthropic API), `bedrock` (Amazon Bedrock, with the
    host's AWS credentials) or `vertex` (Google Vertex AI, with Application Default Credentials).
    pact-bot stores no cloud credential."""
    anthropic_bedrock_base_url: str | None = None
    """Bedrock runtime root, for a private (VPC) endpoint; default
    `https://bedrock-runtime.<AWS_REGION>.amazonaws.com`."""
    anthropic_vertex_base_url: str | None = None
    """Vertex AI root, for a private endpoint; default
    `https://<CLOUD_ML_REGION>-aiplatform.googleapis.com/v1`."""
    aws_region: str | None = None
    """Bedrock: the AWS region; else AWS_DEFAULT_REGION or the profile's region. Credentials come
    from the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, AWS_PROFILE, an
    instance or task role)."""
    cloud_ml_region: str | None = None
    """Vertex: the region (`us-east5`, `europe-west1`, or `global`). Credentials come from
    Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, or the attached
    service account)."""
    anthropic_vertex_project_id: str | None = None
    """Vertex: the Google Cloud project; else the credentials' project."""

    pact_model: str | None = None
    """Model for every run, overriding the agent definition's `model:` (an alias sonnet/opus/haiku
    or a full id)."""
    pact_model_sonnet: str | None = Field(None, description=alias_description("sonnet"))
    pact_model_opus: str | None = Field(None, description=alias_description("opus"))
    pact_model_haiku: str | None = Field(None, description=alias_description("haiku"))
    pact_prices: Annotated[dict[str, dict[str, float]], NoDecode] = Field(default_factory=dict)
    """JSON `{model: {input, output, cache_write, cache_read}}` in $/Mtok, merged over the
    provider's built-in price table."""

    pact_database_url: str = "sqlite:///./pact-bot.db"
    """`sqlite:///path.db` (one host) or `postgresql://…` (web and workers on several hosts)."""
    pact_database_schema: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    """Postgres only: the schema that holds pact-bot's and procrastinate's tables (default: the
    connection's search_path, usually `public`)."""
    pact_workers: int = Field(2, ge=0, le=64)
    """Worker tasks inside `serve`; 0 = web only."""
    pact_reply_workers: int = Field(1, ge=0, le=16)
    """Worker tasks, besides PACT_WORKERS in `serve` (none when it is 0) and `--concurrency` in
    `pact-bot worker`, that take only quick jobs (answers to `/pact` commands, 👀, the
    "Implement" button), so these never wait behind agent jobs that run for many minutes;
    0 = none (a free worker still takes them)."""
    pact_web_processes: int = Field(1, ge=1, le=64)
    """Processes of `serve` that answer webhooks, sharing the port (SO_REUSEPORT), to use more
    than one core; worker tasks run in the first only. After the setup flow registers the App,
    restart `serve`."""
    pact_data_dir: Path = Path("./pact-data")
    """Git mirrors, worktrees and transcripts; must be writable."""
    pact_public_url: str | None = None
    """URL GitHub reaches this server at; the App's webhook URL is PACT_PUBLIC_URL/webhook."""
    pact_env_file: Path = Path(".env")
    """File the setup flow writes the new App's credentials to (mode 0600)."""
    pact_host: str = "127.0.0.1"
    """Bind address of `serve`."""
    pact_port: int = Field(3000, ge=0, le=65535)
    """Port of `serve` (0 = any free port)."""

    pact_max_turns: int = Field(60, ge=1)
    """Model calls per job, at most."""
    pact_max_cost_usd: float = Field(5.0, gt=0)
    """Dollars per job, at most (a call that could pass it is never started)."""
    pact_max_minutes: float = Field(30.0, gt=0)
    """Wall-clock minutes per job, at most."""
    pact_monthly_budget_usd: float | None = Field(None, gt=0)
    """Dollars per installation per calendar month (UTC); a code, revise or test job that would
    start past it is refused with a comment. Unset: no cap."""
    pact_sandbox_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hosts setup commands may reach through the sandbox proxy, comma-separated (`host`,
    `*.domain`, `host:port`), added to the package indexes this server itself uses (pip/uv index
    URL, npm registry)."""
    pact_setup_minutes: float = Field(15.0, gt=0)
    """Time for all of a job's `sandbox.setup` commands."""
    pact_test_minutes: float = Field(15.0, gt=0)
    """Time for the bot's own run of the test command."""
    pact_cache_max_gb: float = Field(10.0, ge=0)
    """Package caches kept across jobs (per repository), in all; the least recently used
    repository's cache goes first."""
    pact_data_max_gb: float = Field(50.0, ge=0)
    """Mirrors, parked checkouts and package caches in the data dir, in all; the least recently
    used go first (never what a running job uses), and anything unused for 30 days."""
    pact_max_body_bytes: int = 25 * 1024 * 1024
    """Largest webhook body accepted (413 above)."""
    pact_lease_seconds: float = Field(60.0, gt=0)
    """A running job whose worker stops renewing its lease this long is handed to another worker."""
    pact_max_attempts: int = Field(3, ge=1)
    """Times a job is claimed before it is failed."""
    pact_rate_window_seconds: float = Field(600.0, gt=0)
    """The sliding window of the trigger rate limits below, in seconds."""
    pact_rate_limit_sender: int = Field(20, ge=1)
    """Jobs one person may start on one repository per window; more are answered 200 `rate
    limited` and start nothing. Counted per web process."""
    pact_rate_limit_repo: int = Field(100, ge=1)
    """Jobs all senders together may start on one repository per window. Counted per web process."""
    pact_retention_jobs_days: float = Field(30.0, gt=0)
    """Finished jobs (succeeded, failed, cancelled) older than this are deleted."""
    pact_retention_deliveries_days: float = Field(7.0, gt=0)
    """Delivery ids and body hashes (redelivery and replay dedupe) are forgotten after this long."""

    pact_sandbox_pids: int = Field(512, ge=16)
    """Processes one sandboxed command may run at once (a cgroup's pids.max; without a cgroup
    RLIMIT_NPROC, which counts all processes of the bot's uid)."""
    pact_sandbox_memory_mb: int = Field(4096, ge=64)
    """MiB of memory for one sandboxed command (cgroup memory limit; without a cgroup the address
    space of each process)."""
    pact_sandbox_cpu_seconds: int = Field(600, ge=1)
    """CPU seconds per process of a sandboxed command."""
    pact_sandbox_file_size_mb: int = Field(1024, ge=1)
    """Largest file (MiB) a sandboxed command may write."""
    pact_sandbox_disk_mb: int = Field(2048, ge=1)
    """Size (MiB) the job's worktree may reach; measured after each command, past it the job stops
    and nothing is pushed."""
    pact_sandbox_binds: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    """Extra host paths shown read-only in the sandbox, comma-separated (e.g. a toolchain under
    /opt). `/usr` and the system library dirs are always shown; the data dir, database, env file
    and key must not lie under any of them."""

    @field_validator("pact_sandbox_binds", mode="before")
    @classmethod
    def _binds(cls, v: object) -> object:
        if isinstance(v, str):
            paths = [p.strip() for p in v.split(",") if p.strip()]
            for p in paths:
                if not p.startswith("/"):
                    raise ValueError(f"{p!r} is not an absolute path")
            return paths
        return v

    @field_validator(
        "github_api_url",
        "anthropic_base_url",
        "pact_public_url",
        "github_web_url",
        "anthropic_bedrock_base_url",
        "anthropic_vertex_base_url",
    )
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

    @field_validator("pact_sandbox_allow", mode="before")
    @classmethod
    def _allow(cls, v: object) -> object:
        if isinstance(v, str):
            v = [h.strip() for h in v.split(",") if h.strip()]
        if isinstance(v, list):
            netproxy.parse_rules(str(h) for h in v)  # a bad entry stops start-up, named
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
        merged = {k: dict(v) for k, v in PROVIDER_PRICES[self.pact_provider].items()}
        for model, table in self.pact_prices.items():
            merged.setdefault(model, {}).update(table)
        return merged

    def resolve_model(self, requested: str | None) -> str:
        """PACT_MODEL wins; aliases map to the provider's latest ids; a full id is used as is."""
        name = self.pact_model or requested or "sonnet"
        table = PROVIDER_MODELS[self.pact_provider]
        aliases = {
            "sonnet": self.pact_model_sonnet or table["sonnet"],
            "opus": self.pact_model_opus or table["opus"],
            "haiku": self.pact_model_haiku or table["haiku"],
        }
        return aliases.get(name, name)

    def secrets(self) -> list[str]:
        """Secret values that must never appear in logs, transcripts or diffs."""
        out = []
        for s in (
            self.github_private_key,
            self.github_webhook_secret,
            self.anthropic_api_key,
            self.github_client_secret,
        ):
            if s is not None and s.get_secret_value():
                out.append(s.get_secret_value())
        out += [v for k in CLOUD_SECRET_VARS if (v := os.environ.get(k))]
        return out


def _check_pem(pem: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("GITHUB_PRIVATE_KEY: not a PEM private key that parses") from None


def load_settings(**overrides: object) -> Settings:
    """Build settings or raise ConfigError with one line naming the variable.

    The env file is PACT_ENV_FILE when set (where the setup flow wrote the App), else `.env`.
    """
    overrides.setdefault("_env_file", os.environ.get("PACT_ENV_FILE") or ".env")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        err = e.errors()[0]
        loc = "_".join(str(p) for p in err["loc"]).upper()
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:
            raise ConfigError(msg) from None
        raise ConfigError(f"{loc}: {msg}") from None
