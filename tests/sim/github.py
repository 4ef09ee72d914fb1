"""A GitHub simulator on loopback: REST API, App auth, git smart HTTP and webhooks.

pact-bot's production code (githubkit, the git CLI) runs against it unchanged. It is one
real HTTP server (uvicorn in a background thread, 127.0.0.1, free port) laid out like
GitHub Enterprise Server: the REST API at ``{web_url}/api/v3`` (``base_url``, use it as
``GITHUB_API_URL``), html and git at ``web_url``.

Public API (fixture ``github_sim`` from ``tests/sim/fixtures.py``, or
``with GitHubSim(tmp_path) as sim:``)

Identity and configuration
    ``base_url``, ``web_url``, ``app_id``, ``private_key_pem``, ``webhook_secret``,
    ``slug`` ("pact-bot"), ``bot_login`` ("pact-bot[bot]"), ``installation_id``,
    ``org`` (the installation's account, an Organization, default "acme"),
    ``env()`` -> the GITHUB_* env vars for a pact-bot process,
    ``set_webhook_url(url)``, ``add_user(login, permission="write")`` (admin, maintain,
    write, triage, read, none), ``create_token(repositories=None, permissions=None) -> str``
    (an installation token without the JWT dance), ``rate_limit(after=0, retry_after=1,
    status=403, count=1)`` (secondary rate limit: after ``after`` more API calls the next
    ``count`` are refused with ``retry-after``), ``fail(status, method=None, path=None,
    count=1, message="Server Error")`` (the next matching API calls answer ``status``; ``path``
    is a regex), ``revoke_tokens()``.
    One installation (``installation_id``, account ``org``) covers every simulated repo;
    ids are fresh per simulator because githubkit caches tokens per app/installation id.

Repositories (real bare git repos; clone_url = ``{web_url}/{owner}/{name}.git``, auth
basic ``x-access-token:<token>``; the default branch refuses pushes like a protected branch)
    ``add_repo(owner, name, files={path: text}, default_branch="main") -> Repo`` (``Repo``
    has ``full_name``, ``clone_url``, ``path``, ``default_branch``, ``read_file(ref, path)``,
    ``branches()``), ``read_file(repo, ref, path) -> str | None``, ``branches(repo) ->
    {name: sha}``, ``commits(repo, ref) -> [Commit(sha, message, author_name, ...)]``,
    ``commit(repo, branch, files, message, user=None) -> sha`` (no webhook),
    ``push(repo, branch, files, message, user=None) -> sha`` (a person's push, the default
    branch included: ``push``, then ``synchronize`` of open PRs on it). Protection is
    a proc-receive hook; ``{repo.path}/hooks/pre-receive`` is an executable no-op a test may
    overwrite with extra push rules.

Helpers that change state and deliver the webhook GitHub would (``repo`` is a ``Repo`` or
"owner/name"; ``user`` a login, created on first use with write permission, default
"octocat"; nothing is delivered or logged while no webhook URL is set)
    ``open_issue(repo, title, body="", user=...) -> number`` (issues.opened),
    ``label_issue(repo, number, label, user)`` (issues.labeled),
    ``comment(repo, number, body, user) -> comment id`` (issue_comment.created),
    ``open_pr(repo, head_branch, files, title, body="", user=..., base=None) -> number``
    (commit on a new branch, then pull_request.opened),
    ``push_to_pr(repo, number, files, message="...", user=...) -> sha`` (synchronize),
    ``submit_review(repo, pr, user, state="COMMENTED", body="", comments=[{path, line, body,
    start_line?}]) -> review id`` (pull_request_review.submitted, then
    pull_request_review_comment.created per comment),
    ``press_check_run_action(repo, check_run_id, identifier, user)``
    (check_run.requested_action).
    API calls GitHub would announce are announced too, with the bot as sender: comments,
    comment edits, labels, pull requests opened/edited/closed/reopened, check runs
    created/completed, review comment replies, and git pushes to a PR's head branch
    (pull_request.synchronize). Every body parses with githubkit's webhook models.

Queries
    ``requests`` (list of ``Recorded(method, path, query, token, body, status)``, git calls
    included), ``issue(repo, n)``, ``issue_comments(repo, n) -> [Comment]``,
    ``pulls(repo) -> [dict]`` (rendered pull requests), ``pull(repo, n) -> dict``,
    ``check_runs(repo) -> [CheckRun]``, ``reactions(repo, number=None, comment_id=None,
    review_comment_id=None) -> [Reaction]``, ``review_comments(repo, pr)``,
    ``review_replies(repo, pr)`` (alias ``review_comment_replies``) -> replies only,
    ``reviews(repo, pr)``, ``errors`` (simulator bugs answered 500; should stay empty).

Webhooks
    ``deliveries`` (log of ``Delivery(id, event, action, status, duration, error, body,
    headers, redelivery)``, ``.payload`` the parsed body), ``wait_for_deliveries(timeout=10)``
    (sync; waits for every delivery queued so far and returns the log),
    ``await wait_for_deliveries_async(timeout=10)``, ``redeliver(delivery_id) -> Delivery``.

Setup flow (stands in for github.com in a browser): ``GET|POST /settings/apps/new`` and
``/organizations/{org}/settings/apps/new`` take the manifest form (field ``manifest``,
``state`` in the query) and redirect to its ``redirect_url?code=...&state=...``;
``POST {base_url}/app-manifests/{code}/conversions`` registers a new App and returns its
credentials (``sim.registered_apps``), which the simulator accepts from then on.

OAuth web flow (an App's user sign-in, ``sim/oauth.py``): ``set_oauth_callback(url)``,
``GET {web_url}/login/oauth/authorize?client_id&redirect_uri&state[&login]`` shows an
"Authorize" form (field ``login``: who signs in, an existing simulated user),
``POST {web_url}/login/oauth/access_token`` trades the code (single use, ten minutes by
``sim.clock``, bound to the client id and redirect URI) for a ``ghu_`` user token when the
client id and secret are right; the REST API takes that token as the user: ``GET /user``,
``GET /repos/{o}/{r}`` with the user's ``permissions``, repositories the user cannot see
answer 404 and writes need the user's write role. ``set_permission(repo, login, role)`` gives
one user a role on one repository.

Web page: a pull request's ``html_url`` (``{web_url}/{owner}/{repo}/pull/{n}``) is a
read-only GitHub-like page of it (title, state, body, conversation, checks; ``sim/html.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ci, shapes
from .auth import (
    App,
    AuthError,
    Authority,
    Installation,
    Token,
    random_token,
    shared_private_key_pem,
)
from .git_http import GitCall
from .gitrepo import BareRepo, Commit
from .oauth import OAuthCode
from .server import BackgroundServer
from .state import (
    ROLE_PERMISSION,
    CheckRun,
    Comment,
    Issue,
    Pull,
    Reaction,
    Repo,
    Review,
    ReviewComment,
    World,
)
from .webhooks import Delivery, WebhookSender, payload

HOOK_ID = 9191919
# githubkit caches JWTs and installation tokens per process, keyed by app and installation
# id: every simulator gets fresh ids so no test is handed another simulator's token.
_SIM_SERIAL = itertools.count(random.randrange(1000, 9000) * 100)


@dataclass
class Recorded:
    """One request the simulator answered."""

    method: str
    path: str
    query: str
    token: str | None
    body: Any
    status: int


@dataclass
class Fault:
    status: int
    method: str | None
    path: str | None
    count: int
    message: str


@dataclass
class RateLimit:
    after: int
    retry_after: int
    status: int
    count: int


class SimError(Exception):
    """An error answer of the REST API (404, 422, ...) in GitHub's JSON shape."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


RepoRef = Repo | str


class GitHubSim:
    def __init__(self, root: Path | None = None, org: str = "acme") -> None:
        from .rest import build_app

        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="github-sim-")) if root is None else root
        self.repos_root = self.root / "repos"
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.requests: list[Recorded] = []
        self.errors: list[str] = []  # simulator bugs answered as 500 (should stay empty)
        self.registered_apps: list[App] = []
        self.manifest_codes: dict[str, dict[str, Any]] = {}
        self.oauth_codes: dict[str, OAuthCode] = {}
        self.clock: Callable[[], float] = time.time  # OAuth code expiry; tests may replace it
        self._rate_limit: RateLimit | None = None
        self._faults: list[Fault] = []
        self._api_calls = 0
        self._server = BackgroundServer(build_app(self))
        self.web_url = self._server.url
        self.base_url = f"{self.web_url}/api/v3"
        self.urls = shapes.Urls(api=self.base_url, web=self.web_url)
        self.world = World(self.urls)
        self.auth = Authority()
        self.org = org
        self.world.user(org, "Organization", "admin")
        self.slug = "pact-bot"
        self.bot_login = f"{self.slug}[bot]"
        serial = next(_SIM_SERIAL)
        self.app = App(
            id=100_000 + serial,
            slug=self.slug,
            name="pact-bot",
            owner_login=org,
            private_key_pem=shared_private_key_pem(),
            webhook_secret=random_token("whsec_", 24),
            client_id=random_token("Iv1.", 16),
            client_secret=random_token("", 40),
        )
        self.installation_id = 10_000_000 + serial
        self._register(self.app, self.installation_id)
        self.app_id = self.app.id
        self.private_key_pem = self.app.private_key_pem
        self.webhook_secret = self.app.webhook_secret
        self.sender = WebhookSender(self.webhook_secret, HOOK_ID, self.app_id)
        # "CI" (sim/ci.py): a test's hook deciding check results for each new PR head
        self.ci: Callable[[str, str], list[ci.CiResult]] | None = None
        self.job_logs: dict[int, str] = {}
        self.log_downloads: dict[str, int] = {}
        self.graphql_calls: list[tuple[str, int]] = []  # (mutation, PR number)
        ci.install(self)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> GitHubSim:
        self._server.start()
        return self

    def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            self.sender.wait(timeout=2)
        self.sender.close()
        self._server.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> GitHubSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def env(self) -> dict[str, str]:
        """Environment for a pact-bot process that should talk to this simulator."""
        return {
            "GITHUB_APP_ID": str(self.app_id),
            "GITHUB_PRIVATE_KEY": self.private_key_pem,
            "GITHUB_WEBHOOK_SECRET": self.webhook_secret,
            "GITHUB_API_URL": self.base_url,
            "GITHUB_WEB_URL": self.web_url,
        }

    # --- configuration -------------------------------------------------------------------

    def _register(self, app: App, installation_id: int) -> None:
        self.world.user(app.bot_login, "Bot")
        self.auth.add_app(app, installation_id)
        self.world.app_json[app.id] = shapes.app(
            self.urls,
            app_id=app.id,
            slug=app.slug,
            name=app.name,
            owner=self.world.render_user(app.owner_login),
            permissions=app.permissions,
            events=app.events,
            client_id=app.client_id,
            created_at=shapes.now_iso(),
        )

    @staticmethod
    def next_serial() -> int:
        """A number no simulator of this process has used for an App or installation id."""
        return next(_SIM_SERIAL)

    def set_webhook_url(self, url: str | None) -> None:
        self.app.webhook_url = url
        self.sender.url = url

    def add_user(self, login: str, permission: str = "write") -> None:
        if permission not in ROLE_PERMISSION:
            raise ValueError(f"unknown permission {permission!r}")
        self.world.user(login).role = permission

    def set_permission(self, repo: RepoRef, login: str, permission: str) -> None:
        """``login``'s role on this one repository (over the role ``add_user`` gave)."""
        if permission not in ROLE_PERMISSION:
            raise ValueError(f"unknown permission {permission!r}")
        self.world.user(login, role="none")
        self.world.repo(repo).collaborators[login] = permission

    def set_oauth_callback(self, *urls: str) -> None:
        """The App's callback URLs for the OAuth web flow (the App settings' field)."""
        self.app.callback_urls = list(urls)

    def _actor(self, login: str | None) -> str:
        login = login or "octocat"
        if login not in self.world.users:
            self.add_user(login, "write")
        return login

    def create_token(
        self, repositories: list[str] | None = None, permissions: dict[str, str] | None = None
    ) -> str:
        inst = self.auth.installations[self.installation_id]
        names = [r.split("/", 1)[-1] for r in repositories] if repositories else None
        return self.issue_token(inst, names, permissions).value

    def issue_token(
        self, inst: Installation, names: list[str] | None, permissions: dict[str, str] | None
    ) -> Token:
        full = None
        if names:
            full = []
            for name in names:
                # the installation covers every simulated repository; names are matched
                # first under the installation's account
                matches = sorted(
                    (r for r in self.world.repos.values() if r.name.lower() == name.lower()),
                    key=lambda r: r.owner.lower() != inst.account_login.lower(),
                )
                if not matches:
                    raise SimError(
                        422,
                        "There is at least one repository that does not exist "
                        "or is not accessible to the parent installation.",
                    )
                full.append(matches[0].full_name)
        app = self.auth.apps[inst.app_id]
        return self.auth.issue_token(inst, app.bot_login, full, permissions)

    def fail(
        self,
        status: int,
        method: str | None = None,
        path: str | None = None,
        count: int = 1,
        message: str = "Server Error",
    ) -> None:
        """Answer the next ``count`` API calls matching ``method`` and the regex ``path``
        (searched in the path under ``base_url``) with ``status`` and GitHub's error body."""
        with self.world.lock:
            self._faults.append(Fault(status, method, path, count, message))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.world.lock:
            for fault in self._faults:
                if (fault.method is None or fault.method == method) and (
                    fault.path is None or re.search(fault.path, path)
                ):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def revoke_tokens(self) -> None:
        """Invalidate every installation token issued so far (as expiry would)."""
        for value in list(self.auth.tokens):
            self.auth.revoke(value)

    def rate_limit(
        self, after: int = 0, retry_after: int = 1, status: int = 403, count: int = 1
    ) -> None:
        """Refuse ``count`` API calls, starting after ``after`` more, with GitHub's secondary
        rate limit answer."""
        self._rate_limit = RateLimit(after, retry_after, status, count)

    def take_rate_limit(self) -> RateLimit | None:
        """Called per API request: the limit to apply now, if any."""
        with self.world.lock:
            self._api_calls += 1
            limit = self._rate_limit
            if limit is None:
                return None
            if limit.after > 0:
                limit.after -= 1
                return None
            limit.count -= 1
            if limit.count <= 0:
                self._rate_limit = None
            return limit

    @property
    def api_calls(self) -> int:
        return self._api_calls

    # --- repositories --------------------------------------------------------------------

    def add_repo(
        self,
        owner: str,
        name: str,
        files: dict[str, str] | None = None,
        default_branch: str = "main",
    ) -> Repo:
        with self.world.lock:
            if owner not in self.world.users:
                self.world.user(owner, "Organization" if owner == self.org else "User", "admin")
            git = BareRepo(self.repos_root / owner / f"{name}.git", default_branch)
            git.commit(
                default_branch, dict(files or {"README.md": f"# {name}\n"}), "Initial commit"
            )
            repo = Repo(
                id=self.world.next_id(),
                owner=owner,
                name=name,
                git=git,
                clone_url=f"{self.web_url}/{owner}/{name}.git",
                created_at=shapes.now_iso(),
            )
            self.world.repos[repo.full_name.lower()] = repo
            return repo

    def repo(self, ref: RepoRef) -> Repo:
        return self.world.repo(ref)

    def read_file(self, repo: RepoRef, ref: str, path: str) -> str | None:
        return self.repo(repo).read_file(ref, path)

    def branches(self, repo: RepoRef) -> dict[str, str]:
        return self.repo(repo).branches()

    def commits(self, repo: RepoRef, ref: str) -> list[Commit]:
        return self.repo(repo).git.log(ref)

    def commit(
        self,
        repo: RepoRef,
        branch: str,
        files: dict[str, str | bytes | None],
        message: str = "Update files",
        user: str | None = None,
    ) -> str:
        author = _noreply(self._actor(user))
        return self.repo(repo).git.commit(branch, files, message, author=author)

    # --- webhooks ------------------------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        return list(self.sender.deliveries)

    def wait_for_deliveries(self, timeout: float = 10.0) -> list[Delivery]:
        return self.sender.wait(timeout)

    async def wait_for_deliveries_async(self, timeout: float = 10.0) -> list[Delivery]:
        return await asyncio.to_thread(self.sender.wait, timeout)

    def redeliver(self, delivery_id: str) -> Delivery:
        return self.sender.redeliver(delivery_id)

    def announce(self, event: str, action: str, repo: Repo, sender: str, **objects: Any) -> None:
        """Deliver ``event.action`` for ``repo`` with ``sender``; objects fill the payload."""
        if self.app.webhook_url is None:
            return
        with self.world.lock:
            body = {
                "repository": self.world.render_repo(repo),
                **self._sent_by(sender),
                **objects,
                **self._organization(repo),
            }
            data = payload(event, action, body)
        self.sender.send(event, data)

    def _sent_by(self, sender: str) -> dict[str, Any]:
        """What every delivery names besides its objects: who acted, and the installation."""
        return {
            "sender": self.world.render_user(sender),
            "installation": {
                "id": self.installation_id,
                "node_id": shapes.node_id("Installation", self.installation_id),
            },
        }

    def _organization(self, repo: Repo) -> dict[str, Any]:
        """The `organization` of a delivery about an organization's repository."""
        owner = self.world.users[repo.owner]
        if owner.type != "Organization":
            return {}
        return {"organization": _org_json(self.urls, owner.login, owner.id)}

    # --- issues and comments -------------------------------------------------------------

    def _new_issue(self, repo: Repo, title: str, body: str | None, author: str) -> Issue:
        now = shapes.now_iso()
        number = max(repo.issues, default=0) + 1
        issue = Issue(self.world.next_id(), number, title, body, author, now, now)
        repo.issues[number] = issue
        return issue

    def issue(self, repo: RepoRef, number: int) -> Issue:
        r = self.repo(repo)
        if number not in r.issues:
            raise SimError(404, "Not Found")
        return r.issues[number]

    def create_issue(self, repo: Repo, title: str, body: str | None, sender: str) -> Issue:
        """An issue opened through the API (``issues.opened`` with the caller as sender)."""
        with self.world.lock:
            issue = self._new_issue(repo, title, body, sender)
            rendered = self.world.render_issue(repo, issue)
        self.announce("issues", "opened", repo, sender, issue=rendered)
        return issue

    def open_issue(self, repo: RepoRef, title: str, body: str = "", user: str | None = None) -> int:
        r, login = self.repo(repo), self._actor(user)
        with self.world.lock:
            issue = self._new_issue(r, title, body, login)
            rendered = self.world.render_issue(r, issue)
        self.announce("issues", "opened", r, login, issue=rendered)
        return issue.number

    def label_issue(self, repo: RepoRef, number: int, label: str, user: str | None = None) -> None:
        self.add_labels(self.repo(repo), number, [label], self._actor(user))

    def add_labels(self, repo: Repo, number: int, labels: list[str], sender: str) -> list[str]:
        issue = self.issue(repo, number)
        added = []
        with self.world.lock:
            for name in labels:
                repo.labels.setdefault(name, self.world.next_id())
                if name not in issue.labels:
                    issue.labels.append(name)
                    added.append(name)
            issue.updated_at = shapes.now_iso()
        for name in added:
            with self.world.lock:
                label = self.world.render_labels(repo, [name])[0]
                objects: dict[str, Any] = {"label": label}
                if issue.pull:
                    objects["pull_request"] = self.world.render_pull(repo, issue)
                    objects["number"] = number
                else:
                    objects["issue"] = self.world.render_issue(repo, issue)
            self.announce(
                "pull_request" if issue.pull else "issues", "labeled", repo, sender, **objects
            )
        return list(issue.labels)

    def comment(self, repo: RepoRef, number: int, body: str, user: str | None = None) -> int:
        return self.create_comment(self.repo(repo), number, body, self._actor(user)).id

    def create_comment(
        self, repo: Repo, number: int, body: str, author: str, app_id: int | None = None
    ) -> Comment:
        issue = self.issue(repo, number)
        now = shapes.now_iso()
        with self.world.lock:
            comment = Comment(
                self.world.next_id(), repo.full_name, number, author, body, now, now, app_id
            )
            self.world.comments[comment.id] = comment
            issue.comments.append(comment.id)
            rendered = self.world.render_comment(comment)
            issue_json = self.world.render_issue(repo, issue)
        self.announce("issue_comment", "created", repo, author, issue=issue_json, comment=rendered)
        return comment

    def edit_comment(self, comment_id: int, body: str, sender: str) -> Comment:
        comment = self.world.comments.get(comment_id)
        if comment is None:
            raise SimError(404, "Not Found")
        repo = self.repo(comment.repo)
        with self.world.lock:
            before = comment.body
            comment.body = body
            comment.updated_at = shapes.now_iso()
            rendered = self.world.render_comment(comment)
            issue_json = self.world.render_issue(repo, repo.issues[comment.number])
        self.announce(
            "issue_comment",
            "edited",
            repo,
            sender,
            issue=issue_json,
            comment=rendered,
            changes={"body": {"from": before}},
        )
        return comment

    def issue_comments(self, repo: RepoRef, number: int) -> list[Comment]:
        issue = self.issue(repo, number)
        return [self.world.comments[c] for c in issue.comments]

    def add_reaction(
        self, target: list[Reaction], user: str, content: str
    ) -> tuple[Reaction, bool]:
        """(reaction, created): GitHub answers 200 with the existing one on a repeat."""
        if content not in shapes.REACTION_CONTENTS:
            raise SimError(
                422,
                "Validation Failed",
                errors=[{"resource": "Reaction", "field": "content", "code": "invalid"}],
            )
        with self.world.lock:
            for existing in target:
                if existing.user == user and existing.content == content:
                    return existing, False
            reaction = Reaction(self.world.next_id(), user, content, shapes.now_iso())
            target.append(reaction)
            return reaction, True

    def reactions(
        self,
        repo: RepoRef,
        number: int | None = None,
        comment_id: int | None = None,
        review_comment_id: int | None = None,
    ) -> list[Reaction]:
        if comment_id is not None:
            return list(self.world.comments[comment_id].reactions)
        if review_comment_id is not None:
            return list(self.world.review_comments[review_comment_id].reactions)
        assert number is not None, "give number, comment_id or review_comment_id"
        return list(self.issue(repo, number).reactions)

    # --- pull requests -------------------------------------------------------------------

    def open_pr(
        self,
        repo: RepoRef,
        head_branch: str,
        files: dict[str, str | bytes | None],
        title: str,
        body: str = "",
        user: str | None = None,
        base: str | None = None,
    ) -> int:
        r, login = self.repo(repo), self._actor(user)
        base = base or r.default_branch
        r.git.commit(head_branch, files, title, author=_noreply(login), start=f"refs/heads/{base}")
        issue = self.create_pull(r, head_branch, base, title, body, login)
        return issue.number

    def create_pull(
        self,
        repo: Repo,
        head: str,
        base: str,
        title: str,
        body: str | None,
        author: str,
        draft: bool = False,
    ) -> Issue:
        head = head.split(":", 1)[-1]
        head_sha = repo.git.rev(f"refs/heads/{head}")
        base_sha = repo.git.rev(f"refs/heads/{base}")
        errors = []
        if head_sha is None:
            errors.append({"resource": "PullRequest", "field": "head", "code": "invalid"})
        if base_sha is None:
            errors.append({"resource": "PullRequest", "field": "base", "code": "invalid"})
        if errors:
            raise SimError(422, "Validation Failed", errors=errors)
        assert head_sha and base_sha
        with self.world.lock:
            for other in repo.issues.values():
                if (
                    other.pull
                    and other.state == "open"
                    and other.pull.head_ref == head
                    and (other.pull.base_ref == base)
                ):
                    raise _pull_refused(f"A pull request already exists for {repo.owner}:{head}.")
            if repo.git.count_commits(base_sha, head_sha) == 0:
                raise _pull_refused(f"No commits between {base} and {head}")
            issue = self._new_issue(repo, title, body, author)
            issue.pull = Pull(self.world.next_id(), head, base, head_sha, base_sha, draft)
            rendered = self.world.render_pull(repo, issue)
        self.announce(
            "pull_request", "opened", repo, author, number=issue.number, pull_request=rendered
        )
        return issue

    def pull_issue(self, repo: RepoRef, number: int) -> Issue:
        issue = self.issue(repo, number)
        if issue.pull is None:
            raise SimError(404, "Not Found")
        return issue

    def pull(self, repo: RepoRef, number: int) -> dict[str, Any]:
        r = self.repo(repo)
        with self.world.lock:
            return self.world.render_pull(r, self.pull_issue(r, number))

    def pulls(self, repo: RepoRef) -> list[dict[str, Any]]:
        r = self.repo(repo)
        with self.world.lock:
            return [self.world.render_pull(r, i) for i in r.issues.values() if i.pull]

    def push_to_pr(
        self,
        repo: RepoRef,
        number: int,
        files: dict[str, str | bytes | None],
        message: str = "Update files",
        user: str | None = None,
    ) -> str:
        r, login = self.repo(repo), self._actor(user)
        issue = self.pull_issue(r, number)
        assert issue.pull is not None
        before = issue.pull.head_sha
        sha = self.commit(r, issue.pull.head_ref, files, message, login)
        self.branch_moved(r, issue.pull.head_ref, before, sha, login)
        return sha

    def push(
        self,
        repo: RepoRef,
        branch: str,
        files: dict[str, str | bytes | None],
        message: str = "Update files",
        user: str | None = None,
    ) -> str:
        """A commit on ``branch`` pushed by ``user`` (from their machine, so the default
        branch takes it too): ``push``, then ``synchronize`` for open PRs with that head."""
        r, login = self.repo(repo), self._actor(user)
        before = r.git.rev(branch) or "0" * 40
        sha = self.commit(r, branch, files, message, login)
        self.announce_push(r, branch, before, sha, login)
        self.branch_moved(r, branch, before, sha, login)
        return sha

    def announce_push(self, repo: Repo, branch: str, before: str, after: str, sender: str) -> None:
        """The ``push`` webhook (it has no action) for ``before..after`` of ``branch``."""
        if self.app.webhook_url is None:
            return
        items = []
        known = before.strip("0") and repo.git.rev(before) is not None  # not a force push's old tip
        for c in reversed(repo.git.log(f"{before}..{after}" if known else after, limit=20)):
            tree, date = repo.git.commit_details(c.sha)
            changes = repo.git.diff(c.parents[0], c.sha) if c.parents else []
            by = {s: [f.filename for f in changes if f.status == s] for s in ("added", "removed")}
            items.append(
                shapes.push_commit(
                    self.urls,
                    repo.full_name,
                    sha=c.sha,
                    tree=tree,
                    message=c.message,
                    author=(c.author_name, c.author_email),
                    date=date,
                    added=by["added"],
                    removed=by["removed"],
                    modified=[f.filename for f in changes if f.status == "modified"],
                )
            )
        with self.world.lock:
            event = shapes.push_event(
                self.urls,
                repository=self.world.render_repo(repo),
                ref=f"refs/heads/{branch}",
                before=before,
                after=after,
                head=items[-1] if items else None,
                pusher=_noreply(sender),
                commits=items,
            )
            body = {**event, **self._sent_by(sender), **self._organization(repo)}
        self.sender.send("push", body)

    def render_commit(self, repo: Repo, sha: str) -> dict[str, Any]:
        c = repo.git.log(sha, limit=1)[0]
        tree, date = repo.git.commit_details(sha)
        return shapes.git_commit(
            self.urls,
            repo.full_name,
            sha=c.sha,
            tree=tree,
            message=c.message,
            author=(c.author_name, c.author_email),
            date=date,
            parents=c.parents,
        )

    def render_comparison(self, repo: Repo, base: str, head: str) -> dict[str, Any]:
        """GitHub's three-dot comparison: ``head``'s commits and files since the merge base."""
        b, h = repo.git.rev(base), repo.git.rev(head)
        if b is None or h is None:
            raise SimError(404, "Not Found")
        start = repo.git.merge_base(b, h) or b
        commits = [self.render_commit(repo, c.sha) for c in reversed(repo.git.log(f"{start}..{h}"))]
        return shapes.comparison(
            self.urls,
            repo.full_name,
            base=base,
            head=head,
            base_commit=self.render_commit(repo, b),
            merge_base_commit=self.render_commit(repo, start),
            commits=commits,
            behind_by=repo.git.count_commits(h, b),
            files=self.world.render_diff(repo, b, h),
        )

    def branch_moved(self, repo: Repo, branch: str, before: str, after: str, sender: str) -> None:
        """A branch got new commits: PRs with it as head announce ``synchronize``."""
        repo.pushed_at = shapes.now_iso()
        for issue in list(repo.issues.values()):
            pull = issue.pull
            if pull is None or issue.state != "open" or pull.head_ref != branch:
                continue
            with self.world.lock:
                pull.head_sha = after
                issue.updated_at = shapes.now_iso()
                rendered = self.world.render_pull(repo, issue)
            self.announce(
                "pull_request",
                "synchronize",
                repo,
                sender,
                number=issue.number,
                pull_request=rendered,
                before=before,
                after=after,
            )
            ci.on_branch_moved(self, repo, after)

    def update_pull(self, repo: Repo, number: int, changes: dict[str, Any], sender: str) -> Issue:
        """PATCH a pull request; GitHub announces edits, closing and reopening."""
        issue = self.pull_issue(repo, number)
        with self.world.lock:
            before = {"title": issue.title, "body": issue.body, "state": issue.state}
            if isinstance(changes.get("title"), str):
                issue.title = changes["title"]
            if "body" in changes:
                issue.body = changes["body"]
            if changes.get("state") in ("open", "closed"):
                issue.state = changes["state"]
            issue.updated_at = shapes.now_iso()
            rendered = self.world.render_pull(repo, issue)
        edits = {
            key: {"from": before[key]}
            for key in ("title", "body")
            if before[key] != getattr(issue, key)
        }
        if edits:
            self.announce(
                "pull_request",
                "edited",
                repo,
                sender,
                number=number,
                pull_request=rendered,
                changes=edits,
            )
        if before["state"] != issue.state:
            action = "closed" if issue.state == "closed" else "reopened"
            self.announce(
                "pull_request", action, repo, sender, number=number, pull_request=rendered
            )
        return issue

    def request_reviewers(self, repo: Repo, number: int, reviewers: list[str]) -> Issue:
        issue = self.pull_issue(repo, number)
        assert issue.pull is not None
        for login in reviewers:
            if login == issue.author:
                raise SimError(422, "Review cannot be requested from pull request author.")
            if self.world.role(repo, login) == "none":
                raise SimError(
                    422,
                    "Reviews may only be requested from collaborators. One or "
                    "more of the users or teams you specified is not a collaborator "
                    f"of the {repo.full_name} repository.",
                )
        with self.world.lock:
            for login in reviewers:
                if login not in issue.pull.requested_reviewers:
                    issue.pull.requested_reviewers.append(login)
        return issue

    # --- reviews -------------------------------------------------------------------------

    def submit_review(
        self,
        repo: RepoRef,
        pr: int,
        user: str | None,
        state: str = "COMMENTED",
        body: str = "",
        comments: list[dict[str, Any]] | None = None,
    ) -> int:
        r, login = self.repo(repo), self._actor(user)
        issue = self.pull_issue(r, pr)
        pull = issue.pull
        assert pull is not None
        state = {
            "COMMENT": "COMMENTED",
            "REQUEST_CHANGES": "CHANGES_REQUESTED",
            "APPROVE": "APPROVED",
        }.get(state.upper(), state.upper())
        now = shapes.now_iso()
        with self.world.lock:
            review = Review(
                self.world.next_id(),
                r.full_name,
                pr,
                login,
                state,
                body or None,
                pull.head_sha,
                now,
            )
            self.world.reviews[review.id] = review
            pull.reviews.append(review.id)
            for spec in comments or []:
                hunk, position = self.world.hunk_for(r, pull, spec["path"], int(spec["line"]))
                if position is None:
                    raise ValueError(
                        f"line {spec['line']} of {spec['path']} is not part of the diff of #{pr}"
                    )
                rc = ReviewComment(
                    id=self.world.next_id(),
                    repo=r.full_name,
                    number=pr,
                    review_id=review.id,
                    author=login,
                    body=spec["body"],
                    path=spec["path"],
                    line=int(spec["line"]),
                    start_line=spec.get("start_line"),
                    diff_hunk=hunk,
                    position=position,
                    commit_id=pull.head_sha,
                    created_at=now,
                )
                self.world.review_comments[rc.id] = rc
                review.comment_ids.append(rc.id)
                pull.review_comments.append(rc.id)
            pr_json = self.world.render_pull(r, issue)
            review_json = self.world.render_review(review)
            rc_json = [
                self.world.render_review_comment(self.world.review_comments[c])
                for c in review.comment_ids
            ]
        self.announce(
            "pull_request_review", "submitted", r, login, review=review_json, pull_request=pr_json
        )
        for item in rc_json:
            self.announce(
                "pull_request_review_comment",
                "created",
                r,
                login,
                comment=item,
                pull_request=pr_json,
            )
        return review.id

    def reply_to_review_comment(
        self, repo: Repo, number: int, comment_id: int, body: str, author: str
    ) -> ReviewComment:
        issue = self.pull_issue(repo, number)
        parent = self.world.review_comments.get(comment_id)
        if parent is None or parent.number != number or parent.repo != repo.full_name:
            raise SimError(404, "Not Found")
        assert issue.pull is not None
        root = parent.in_reply_to or parent.id
        with self.world.lock:
            reply = ReviewComment(
                id=self.world.next_id(),
                repo=repo.full_name,
                number=number,
                review_id=self.world.next_id(),
                author=author,
                body=body,
                path=parent.path,
                line=parent.line,
                start_line=parent.start_line,
                diff_hunk=parent.diff_hunk,
                position=parent.position,
                commit_id=issue.pull.head_sha,
                created_at=shapes.now_iso(),
                in_reply_to=root,
            )
            self.world.review_comments[reply.id] = reply
            issue.pull.review_comments.append(reply.id)
            rendered = self.world.render_review_comment(reply)
            pr_json = self.world.render_pull(repo, issue)
        self.announce(
            "pull_request_review_comment",
            "created",
            repo,
            author,
            comment=rendered,
            pull_request=pr_json,
        )
        return reply

    def reviews(self, repo: RepoRef, pr: int) -> list[Review]:
        pull = self.pull_issue(repo, pr).pull
        assert pull is not None
        return [self.world.reviews[i] for i in pull.reviews]

    def review_comments(self, repo: RepoRef, pr: int) -> list[ReviewComment]:
        pull = self.pull_issue(repo, pr).pull
        assert pull is not None
        return [self.world.review_comments[i] for i in pull.review_comments]

    def review_replies(self, repo: RepoRef, pr: int) -> list[ReviewComment]:
        return [c for c in self.review_comments(repo, pr) if c.in_reply_to is not None]

    review_comment_replies = review_replies

    # --- check runs ----------------------------------------------------------------------

    def create_check_run(self, repo: Repo, app_id: int, data: dict[str, Any]) -> CheckRun:
        if not data.get("name") or not data.get("head_sha"):
            raise SimError(422, 'Invalid request.\n\n"name", "head_sha" wasn\'t supplied.')
        head_sha = repo.git.rev(data["head_sha"])
        if head_sha is None:
            raise SimError(422, "No commit found for SHA: " + str(data["head_sha"]))
        now = shapes.now_iso()
        status = data.get("status", "queued")
        conclusion = data.get("conclusion")
        if conclusion:
            status = "completed"
        with self.world.lock:
            run = CheckRun(
                id=self.world.next_id(),
                suite_id=self.world.next_id(),
                repo=repo.full_name,
                app_id=app_id,
                name=data["name"],
                head_sha=head_sha,
                status=status,
                conclusion=conclusion,
                started_at=data.get("started_at") or now,
                completed_at=data.get("completed_at") or (now if status == "completed" else None),
                output=dict(data.get("output") or {}),
                actions=list(data.get("actions") or []),
                external_id=data.get("external_id") or "",
                details_url=data.get("details_url"),
            )
            _check_actions(run.actions)
            self.world.check_runs[run.id] = run
            rendered = self.world.render_check_run(run)
        self.announce(
            "check_run", "created", repo, self.auth.apps[app_id].bot_login, check_run=rendered
        )
        if run.status == "completed":
            self.announce(
                "check_run", "completed", repo, self.auth.apps[app_id].bot_login, check_run=rendered
            )
        return run

    def update_check_run(self, repo: Repo, run_id: int, data: dict[str, Any]) -> CheckRun:
        run = self.world.check_runs.get(run_id)
        if run is None or run.repo != repo.full_name:
            raise SimError(404, "Not Found")
        with self.world.lock:
            was_completed = run.status == "completed"
            for key in ("name", "details_url", "external_id", "started_at", "completed_at"):
                if key in data:
                    setattr(run, key, data[key])
            if "status" in data:
                run.status = data["status"]
            if data.get("conclusion"):
                run.conclusion = data["conclusion"]
                run.status = "completed"
            if run.status == "completed" and not run.completed_at:
                run.completed_at = shapes.now_iso()
            if "output" in data:
                run.output = {**run.output, **(data["output"] or {})}
            if "actions" in data:
                run.actions = list(data["actions"] or [])
                _check_actions(run.actions)
            rendered = self.world.render_check_run(run)
        if run.status == "completed" and not was_completed:
            self.announce(
                "check_run",
                "completed",
                repo,
                self.auth.apps[run.app_id].bot_login,
                check_run=rendered,
            )
        return run

    def run_check(self, repo: RepoRef, sha: str, result: ci.CiResult) -> CheckRun:
        """A completed GitHub Actions check run on ``sha`` (see sim/ci.py)."""
        return ci.run_check(self, self.repo(repo), sha, result)

    def check_runs(self, repo: RepoRef) -> list[CheckRun]:
        name = self.repo(repo).full_name
        return [c for c in self.world.check_runs.values() if c.repo == name]

    def press_check_run_action(
        self, repo: RepoRef, check_run_id: int, identifier: str, user: str | None = None
    ) -> None:
        r, login = self.repo(repo), self._actor(user)
        run = self.world.check_runs[check_run_id]
        if not any(a.get("identifier") == identifier for a in run.actions):
            raise ValueError(f"check run {check_run_id} offers no action {identifier!r}")
        with self.world.lock:
            rendered = self.world.render_check_run(run)
        self.announce(
            "check_run",
            "requested_action",
            r,
            login,
            check_run=rendered,
            requested_action={"identifier": identifier},
        )

    # --- request log ---------------------------------------------------------------------

    def record(self, entry: Recorded) -> None:
        with self.world.lock:
            self.requests.append(entry)

    # git host protocol (see git_http.GitHost)

    def git_repo_path(self, owner: str, name: str) -> Path | None:
        repo = self.world.find_repo(owner, name)
        return repo.path if repo else None

    def git_token(self, value: str | None) -> Token | None:
        return self.auth.lookup(value) if value else None

    def git_authorize(self, token: Token, full_name: str, write: bool) -> str | None:
        if not token.covers_repo(full_name) or not token.allows(
            "contents", "write" if write else "read"
        ):
            return f"remote: Permission to {full_name}.git denied to {token.actor}."
        return None

    def git_pushed(
        self, full_name: str, token: Token, before: dict[str, str], after: dict[str, str]
    ) -> None:
        repo = self.repo(full_name)
        for ref, sha in after.items():
            if ref.startswith("refs/heads/") and before.get(ref) != sha:
                self.branch_moved(
                    repo,
                    ref.removeprefix("refs/heads/"),
                    before.get(ref, "0" * 40),
                    sha,
                    token.actor,
                )

    def git_record(self, call: GitCall) -> None:
        self.record(Recorded(call.method, call.path, call.query, call.token, None, call.status))


def _pull_refused(message: str) -> SimError:
    """GitHub's 422 for a pull request it will not open, with the reason it gives."""
    error = {"resource": "PullRequest", "code": "custom", "message": message}
    return SimError(422, "Validation Failed", errors=[error])


def _noreply(login: str) -> tuple[str, str]:
    """The name and email GitHub gives a user's web commits and pushes."""
    return login, f"{login}@users.noreply.github.local"


def _check_actions(actions: list[dict[str, Any]]) -> None:
    if len(actions) > 3:
        raise SimError(422, "Only 3 actions may be specified.")
    for action in actions:
        for key, limit in (("label", 20), ("description", 40), ("identifier", 20)):
            value = action.get(key)
            if not isinstance(value, str) or not value:
                raise SimError(422, f'Invalid request.\n\n"{key}" wasn\'t supplied.')
            if len(value) > limit:
                raise SimError(
                    422, f"Invalid request.\n\n{key} is too long (maximum is {limit} characters)."
                )


def _org_json(urls: shapes.Urls, login: str, oid: int) -> dict[str, Any]:
    api = f"{urls.api}/orgs/{login}"
    return {
        "login": login,
        "id": oid,
        "node_id": shapes.node_id("Organization", oid),
        "url": api,
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events",
        "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues",
        "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": f"{urls.web}/avatars/u/{oid}?v=4",
        "description": None,
    }


__all__ = ["AuthError", "GitHubSim", "Recorded", "SimError"]
