"""githubkit clients: the App (JWT) and one installation token per repository and job.

A job never holds a token that reaches further than the repository it works on: each
`RepoClient` mints its own installation token narrowed to that one repository and to
the permissions the pipeline uses, so a confused or compromised job cannot touch the
installation's other repositories.

Both clients retry rate limits (primary and secondary: waits `retry-after`, or until
`x-ratelimit-reset`, or a minute, up to `max_wait`) and server errors, count calls in
`pact_bot.metrics.github_calls` and record `x-ratelimit-remaining`.
Errors: githubkit's `RequestFailed` for API answers; `NotInstalled` when the App cannot
reach a repository.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Generator
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
from githubkit import GitHub
from githubkit.auth import AppAuthStrategy, BaseAuthStrategy, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.exception import GitHubException, RateLimitExceeded, RequestFailed
from githubkit.retry import RetryServerError
from githubkit.typing import RetryOption

from pact_bot import metrics
from pact_bot.logs import register_token
from pact_bot.settings import Settings

if TYPE_CHECKING:
    from githubkit_schemas.latest.types import AppPermissionsType  # githubkit.versions.latest

log = logging.getLogger(__name__)

# What a job's token may do: push the branch, open the PR, comment, report a check run.
REPO_PERMISSIONS: AppPermissionsType = {
    "contents": "write",
    "pull_requests": "write",
    "issues": "write",
    "checks": "write",
    "metadata": "read",
}
REFRESH_MARGIN = timedelta(minutes=10)
USER_AGENT = "pact-bot"


class GitHubAppError(Exception):
    """The App cannot act on a repository; the message is meant for operators."""


class NotInstalled(GitHubAppError):
    """The App is not installed on the repository (or the installation lost access)."""


class RateLimitRetry:
    """githubkit retry decision: rate limits (waiting as GitHub asks) and 5xx.

    githubkit's default retries a rate limit once, and only when it recognises it; a 429,
    or a 403 whose message names a secondary rate limit, without headers would not be
    retried. GitHub asks clients to wait `retry-after`, else until `x-ratelimit-reset`,
    else at least a minute. A wait beyond `max_wait` is not worth holding a job for.
    """

    def __init__(
        self,
        max_rate_limit_retries: int = 3,
        max_wait: timedelta = timedelta(minutes=5),
        server_error_retries: int = 3,
    ) -> None:
        self.max_rate_limit_retries = max_rate_limit_retries
        self.max_wait = max_wait
        self._server = RetryServerError(server_error_retries)

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        wait = _rate_limit_wait(exc)
        if wait is not None:
            if retry_count >= self.max_rate_limit_retries or wait > self.max_wait:
                return RetryOption(False)
            wait = max(wait, timedelta(seconds=1))
            log.warning(
                "github rate limited; waiting",
                extra={"wait_s": wait.total_seconds(), "attempt": retry_count + 1},
            )
            return RetryOption(True, wait)
        return self._server(exc, retry_count)


def _rate_limit_wait(exc: GitHubException) -> timedelta | None:
    if isinstance(exc, RateLimitExceeded):
        return exc.retry_after
    if not isinstance(exc, RequestFailed):
        return None
    status = exc.response.status_code
    if status == 429:
        return timedelta(seconds=60)
    if status == 403:
        try:
            message = str(exc.response.json().get("message", ""))
        except Exception:
            return None
        if "rate limit" in message.lower():
            return timedelta(seconds=60)
    return None


async def _on_response(response: httpx.Response) -> None:
    metrics.github_calls.labels(status=str(response.status_code)).inc()
    remaining = response.headers.get("x-ratelimit-remaining")
    if remaining is not None and remaining.isdigit():
        metrics.github_rate_remaining.set(int(remaining))


def _client_options(settings: Settings, retry: RateLimitRetry | None) -> dict[str, Any]:
    """What both clients share: `GITHUB_API_URL` as base URL (GitHub Enterprise), the retries,
    the call metrics."""
    return {
        "base_url": settings.github_api_url.rstrip("/") + "/",
        "user_agent": USER_AGENT,
        "auto_retry": retry or RateLimitRetry(),
        "http_cache": False,
        "async_event_hooks": {"response": [_on_response]},
        # Per client, so JWTs of different Apps in one process never share a cache.
        "cache_strategy": MemCacheStrategy(),
        "timeout": httpx.Timeout(30.0),
    }


def _split(repo: str) -> tuple[str, str]:
    owner, sep, name = repo.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ValueError(f"repository must be owner/name, got {repo!r}")
    return owner, name


def _expiry(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC) + timedelta(hours=1)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class GitHubApp:
    """The App itself: JWT-authenticated calls and the factory of per-repo clients."""

    def __init__(self, settings: Settings, *, retry: RateLimitRetry | None = None) -> None:
        if settings.github_app_id is None or settings.github_private_key is None:
            raise GitHubAppError("GITHUB_APP_ID and GITHUB_PRIVATE_KEY are required")
        self.settings = settings
        self._retry = retry
        self.gh: GitHub[AppAuthStrategy] = GitHub(
            AppAuthStrategy(settings.github_app_id, settings.github_private_key.get_secret_value()),
            **_client_options(settings, retry),
        )
        self._identity: tuple[str, str] | None = None

    async def identity(self) -> tuple[str, str]:
        """(slug, bot login), e.g. ("pact-bot", "pact-bot[bot]"); asked once."""
        if self._identity is None:
            data = (await self.gh.rest.apps.async_get_authenticated()).json()
            if data is None:
                raise GitHubAppError("GitHub answered GET /app with no App")
            slug = data["slug"]
            self._identity = (slug, f"{slug}[bot]")
        return self._identity

    async def installation_id(self, repo: str) -> int:
        """The installation covering `repo`, for payloads that lack `installation.id`."""
        owner, name = _split(repo)
        try:
            resp = await self.gh.rest.apps.async_get_repo_installation(owner, name)
        except RequestFailed as e:
            if e.response.status_code == 404:
                raise NotInstalled(f"the App is not installed on {repo}") from None
            raise
        return int(resp.json()["id"])

    async def repo_client(self, repo: str, installation_id: int | None = None) -> RepoClient:
        """A client whose token reaches `repo` only, with the pipeline's permissions."""
        if installation_id is None:
            installation_id = await self.installation_id(repo)
        client = RepoClient(self, repo, installation_id)
        await client.token()
        return client

    async def actions_reader(self, repo: str, installation_id: int) -> GitHub[Any] | None:
        """A client that may read `repo`'s Actions logs (`actions: read`) and nothing else;
        None when the installation has not accepted that permission yet. Separate from
        the job's token so an installation without it keeps working."""
        _, name = _split(repo)
        try:
            resp = await self.gh.rest.apps.async_create_installation_access_token(
                installation_id, repositories=[name], permissions={"actions": "read"}
            )
        except RequestFailed as e:
            if e.response.status_code in (403, 404, 422):
                return None
            raise
        data = resp.json()
        token = str(data["token"])
        register_token(token, _expiry(data.get("expires_at")).timestamp())
        return GitHub(TokenAuthStrategy(token), **_client_options(self.settings, self._retry))

    async def _mint(self, repo: str, installation_id: int) -> tuple[str, datetime]:
        _, name = _split(repo)
        try:
            resp = await self.gh.rest.apps.async_create_installation_access_token(
                installation_id, repositories=[name], permissions=REPO_PERMISSIONS
            )
        except RequestFailed as e:
            if e.response.status_code in (404, 422):
                raise NotInstalled(
                    f"installation {installation_id} cannot issue a token for {repo} "
                    f"(HTTP {e.response.status_code})"
                ) from None
            raise
        data = resp.json()
        token, expires = str(data["token"]), _expiry(data.get("expires_at"))
        register_token(token, expires.timestamp())
        log.info("installation token minted", extra={"repo": repo})
        return token, expires


class _RepoTokenAuth(httpx.Auth):
    """Sends the RepoClient's current token; the async flow refreshes it first."""

    def __init__(self, client: RepoClient) -> None:
        self.client = client

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        if self.client._token is None:
            raise GitHubAppError("no installation token yet: await RepoClient.token() first")
        request.headers["Authorization"] = f"token {self.client._token}"
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, Any]:
        request.headers["Authorization"] = f"token {await self.client.token()}"
        yield request


class _RepoTokenStrategy(BaseAuthStrategy):
    def __init__(self, client: RepoClient) -> None:
        self.client = client

    def get_auth_flow(self, github: Any) -> httpx.Auth:
        return _RepoTokenAuth(self.client)


class RepoClient:
    """githubkit client (`.gh`) with an installation token scoped to one repository.

    `async with` it (optional) to share one connection pool among a job's calls."""

    def __init__(self, app: GitHubApp, repo: str, installation_id: int) -> None:
        self.app = app
        self.repo = repo
        self.owner, self.name = _split(repo)
        self.installation_id = installation_id
        self._token: str | None = None
        self._expires_at = datetime.min.replace(tzinfo=UTC)
        self._lock = asyncio.Lock()
        self._repository: dict[str, Any] | None = None
        self.gh: GitHub[Any] = GitHub(
            _RepoTokenStrategy(self), **_client_options(app.settings, app._retry)
        )

    @property
    def expires_at(self) -> datetime:
        return self._expires_at

    async def token(self) -> str:
        """The installation token (for git's environment); minted again when less than
        `REFRESH_MARGIN` is left."""
        if self._token is not None and self._expires_at - datetime.now(UTC) > REFRESH_MARGIN:
            return self._token
        async with self._lock:
            if self._token is None or self._expires_at - datetime.now(UTC) <= REFRESH_MARGIN:
                self._token, self._expires_at = await self.app._mint(
                    self.repo, self.installation_id
                )
            return self._token

    async def repository(self) -> dict[str, Any]:
        """GET /repos/{owner}/{name} as JSON (clone_url, default_branch, ...), cached."""
        if self._repository is None:
            resp = await self.gh.rest.repos.async_get(self.owner, self.name)
            self._repository = dict(resp.json())
        return self._repository

    async def __aenter__(self) -> RepoClient:
        await self.gh.__aenter__()  # type: ignore[no-untyped-call]  # githubkit leaves it unannotated
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.gh.__aexit__(exc_type, exc, tb)
