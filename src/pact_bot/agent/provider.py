"""The model client for PACT_PROVIDER: the Anthropic API, Amazon Bedrock or Google Vertex AI.

All three are the `anthropic` SDK's own clients, so the agent loop is the same for each.
Cloud credentials come from each cloud's standard chain (environment, profile files, instance
or workload identity); pact-bot stores none. What is missing is found here, before a job
spends anything, and named in `MissingModelKey` so the failure comment tells the operator
exactly what to set.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pact_bot.logs import register_secrets
from pact_bot.settings import Settings

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

_ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")  # AWS's documented form
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

NEEDS = {
    "anthropic": "ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL for a compatible gateway)",
    "bedrock": "AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY [+ "
    "AWS_SESSION_TOKEN], AWS_PROFILE, an instance/task role, or AWS_BEARER_TOKEN_BEDROCK) "
    "and AWS_REGION",
    "vertex": "Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth "
    "application-default login` or an attached service account), CLOUD_ML_REGION and "
    "ANTHROPIC_VERTEX_PROJECT_ID",
}


class MissingModelKey(Exception):
    """The chosen provider lacks a credential or setting; the message names it.

    What is needed comes before the underlying cause, which may be long: failure comments
    keep only the start of a message.
    """

    def __init__(self, message: str, *, what: str = "", cause: str = "") -> None:
        super().__init__(message + (f" ({cause})" if cause else ""))
        self.what = what or message
        self.cause = cause


@dataclass(frozen=True)
class BedrockAuth:
    region: str
    source: str  # where the credentials came from: botocore's method name, or "bearer token"
    explicit: dict[str, str]  # static keys handed to the SDK as arguments


@dataclass(frozen=True)
class VertexAuth:
    region: str
    project: str
    credentials: Any  # google.auth.credentials.Credentials
    source: str


def _missing(provider: str, what: str, cause: str = "") -> MissingModelKey:
    return MissingModelKey(
        f"PACT_PROVIDER={provider}: {what}. It needs {NEEDS[provider]}.",
        what=f"PACT_PROVIDER={provider}: {what}",
        cause=cause,
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def bedrock_auth(settings: Settings) -> BedrockAuth:
    """Resolve region and credentials through boto3's chain, without calling Bedrock.

    Static keys from the environment are passed to the SDK explicitly: its own session cache
    would otherwise keep the first keys it saw for the life of the process. Anything that
    refreshes (profiles, roles, SSO) stays with the SDK's chain.
    """
    try:
        import boto3  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        hint = "boto3 is not installed (pip install 'anthropic[bedrock]')"
        raise _missing("bedrock", hint) from None
    try:
        session = boto3.Session(region_name=settings.aws_region or None)
        region = settings.aws_region or session.region_name
        bearer = bool(os.environ.get("AWS_BEARER_TOKEN_BEDROCK"))
        creds = None if bearer else session.get_credentials()
    except Exception as e:  # an unknown AWS_PROFILE, a broken config file or SSO cache
        cause = _first_line(e)
        raise _missing("bedrock", "AWS credentials cannot be loaded", cause) from None
    if not region:
        raise _missing("bedrock", "no AWS region is set")
    if bearer:
        return BedrockAuth(region, "bearer token", {})
    if creds is None:
        raise _missing("bedrock", "no AWS credentials were found")
    frozen = creds.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        raise _missing("bedrock", "the AWS credentials lack an access key or a secret key")
    if not _ACCESS_KEY_ID.fullmatch(frozen.access_key):
        raise _missing("bedrock", "the AWS access key id is not well-formed")
    # a profile's or role's keys are in no setting: keep them out of logs, transcripts, diffs
    _resolved([v for v in (frozen.secret_key, frozen.token) if v])
    explicit: dict[str, str] = {}
    if creds.method == "env":
        explicit = {"aws_access_key": frozen.access_key, "aws_secret_key": frozen.secret_key}
        if frozen.token:
            explicit["aws_session_token"] = frozen.token
    return BedrockAuth(region, str(creds.method), explicit)


def vertex_auth(settings: Settings) -> VertexAuth:
    """Resolve region, project and Application Default Credentials, without a token call."""
    region = settings.cloud_ml_region
    if not region:
        raise _missing("vertex", "CLOUD_ML_REGION is not set")
    try:
        import google.auth  # type: ignore[import-untyped, unused-ignore]
        from google.auth.exceptions import (  # type: ignore[import-untyped, unused-ignore]
            DefaultCredentialsError,
        )
    except ImportError:
        hint = "google-auth is not installed (pip install 'anthropic[vertex]')"
        raise _missing("vertex", hint) from None
    try:
        credentials, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except (DefaultCredentialsError, ValueError) as e:
        cause = _first_line(e)
        raise _missing("vertex", "no usable Application Default Credentials", cause) from None
    project = settings.anthropic_vertex_project_id or project
    if not project:
        raise _missing("vertex", "no Google Cloud project is known")
    _resolved(_google_secrets(credentials))
    source = getattr(credentials, "service_account_email", None) or type(credentials).__name__
    return VertexAuth(region, project, credentials, str(source))


_RESOLVED: list[str] = []


def _resolved(values: list[str]) -> None:
    register_secrets(values)
    _RESOLVED.extend(v for v in values if v not in _RESOLVED)


def resolved_secrets() -> list[str]:
    """Cloud credentials resolved from a chain (profile file, role, key file) rather than a
    setting: `Settings.secrets()` cannot know them, transcripts and diff checks must."""
    return list(_RESOLVED)


def _google_secrets(credentials: Any) -> list[str]:
    """The secret parts of Application Default Credentials: a user's refresh token and
    client secret, a service account's private key (only in its key file)."""
    values = [getattr(credentials, name, None) for name in ("refresh_token", "client_secret")]
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(Path(path).read_text())
            if isinstance(info, dict):
                values += [info.get(k) for k in ("private_key", "refresh_token", "client_secret")]
    return [v for v in values if isinstance(v, str) and v]


def model_client(
    settings: Settings, *, max_retries: int = 0, timeout: float | None = None
) -> AsyncAnthropic:
    """The SDK client for PACT_PROVIDER; raises MissingModelKey naming what is missing.

    Typed as `AsyncAnthropic`: the Bedrock and Vertex clients are siblings, not subclasses,
    with the same `messages` and `with_options` the agent loop uses.
    """
    client: Callable[..., Any]
    # The imports are here, not at the top: the SDK takes ~2 s to import.
    if settings.pact_provider == "bedrock":
        from anthropic import AsyncAnthropicBedrock as client

        bedrock = bedrock_auth(settings)
        kwargs: dict[str, Any] = {
            "aws_region": bedrock.region,
            "base_url": settings.anthropic_bedrock_base_url,
            **bedrock.explicit,
        }
    elif settings.pact_provider == "vertex":
        from anthropic import AsyncAnthropicVertex as client

        vertex = vertex_auth(settings)
        kwargs = {
            "region": vertex.region,
            "project_id": vertex.project,
            "credentials": vertex.credentials,
            "base_url": settings.anthropic_vertex_base_url,
        }
    else:
        from anthropic import AsyncAnthropic as client

        kwargs = {"api_key": _api_key(settings)}
        if settings.anthropic_base_url:
            kwargs["base_url"] = settings.anthropic_base_url
    kwargs["max_retries"] = max_retries
    if timeout is not None:
        kwargs["timeout"] = timeout
    return cast("AsyncAnthropic", client(**kwargs))


def _api_key(settings: Settings) -> str:
    """The API key, or "unused" for a gateway at ANTHROPIC_BASE_URL that needs none."""
    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    if not key and not settings.anthropic_base_url:
        raise MissingModelKey(
            "ANTHROPIC_API_KEY is not set (or set ANTHROPIC_BASE_URL to a compatible endpoint)"
        )
    return key or "unused"
