"""The REST API subset pact-bot calls, plus the ASGI app that also mounts git and setup.

Every API request is recorded, passes the secondary-rate-limit gate, is authenticated
(App JWT, installation token, or nothing) and authorised against the route's permission
(GET needs read, other methods write), then handled in a worker thread under the world
lock. Errors use GitHub's JSON shape (``message``, ``documentation_url``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import shapes
from .auth import App, AuthError, Installation, Token
from .git_http import GitEndpoint
from .html import html_routes
from .manifest import manifest_routes
from .oauth import oauth_routes
from .state import ROLE_PERMISSION

if TYPE_CHECKING:
    from .github import GitHubSim
    from .state import Repo

DOCS = "https://docs.github.com/rest"
log = logging.getLogger(__name__)
SECONDARY = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {rid}."
)
SECONDARY_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)


@dataclass
class Ctx:
    sim: GitHubSim
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    token: Token | None = None
    app: App | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        assert self.token is not None
        return self.token.actor

    def repo(self) -> Repo:
        repo = self.sim.world.find_repo(self.params["owner"], self.params["repo"])
        if repo is None:
            raise _error(404, "Not Found")
        return repo

    def int_param(self, name: str) -> int:
        return int(self.params[name])


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Ctx], Reply]


@dataclass
class RouteSpec:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: str  # jwt | token | none
    permission: str | None = None  # e.g. "issues" or "issues|pull_requests"


ROUTES: list[RouteSpec] = []


def route(
    method: str, path: str, auth: str = "token", permission: str | None = None
) -> Callable[[Handler], Handler]:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    regex = regex.replace("(?P<path>[^/]+)", "(?P<path>.*)")

    def register(fn: Handler) -> Handler:
        ROUTES.append(RouteSpec(method, re.compile(f"^{regex}$"), fn, auth, permission))
        return fn

    return register


def _error(status: int, message: str, **extra: Any) -> Exception:
    from .github import SimError

    return SimError(status, message, **extra)


def paginate(ctx: Ctx, items: list[Any]) -> Reply:
    per_page = min(int(ctx.query.get("per_page", 30)), 100)
    page = max(int(ctx.query.get("page", 1)), 1)
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    links = []

    def link(n: int, rel: str) -> str:
        q = {**ctx.query, "per_page": str(per_page), "page": str(n)}
        return f'<{ctx.sim.base_url}{ctx.path}?{urlencode(q)}>; rel="{rel}"'

    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return Reply(200, chunk, {"Link": ", ".join(links)} if links else {})


# --- App (JWT) ---------------------------------------------------------------------------


@route("GET", "/app", auth="jwt")
def get_app(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    return Reply(200, ctx.sim.world.app_json[ctx.app.id])


def _installation_json(ctx: Ctx, inst_id: int) -> dict[str, Any]:
    sim = ctx.sim
    inst = sim.auth.installations[inst_id]
    app = sim.auth.apps[inst.app_id]
    return shapes.installation(
        sim.urls,
        inst_id=inst.id,
        account=sim.world.render_user(inst.account_login),
        app_id=app.id,
        app_slug=app.slug,
        permissions=inst.permissions,
        events=app.events,
        created_at=sim.world.app_json[app.id]["created_at"],
    )


def _own_installation(ctx: Ctx) -> Installation:
    """The installation the path names; 404 unless it is the calling App's own."""
    assert ctx.app is not None
    inst = ctx.sim.auth.installations.get(ctx.int_param("id"))
    if inst is None or inst.app_id != ctx.app.id:
        raise _error(404, "Not Found")
    return inst


@route("GET", "/app/installations", auth="jwt")
def list_installations(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    inst = ctx.sim.auth.installation_of(ctx.app.id)
    return Reply(200, [_installation_json(ctx, inst.id)])


@route("GET", "/app/installations/{id}", auth="jwt")
def get_installation(ctx: Ctx) -> Reply:
    return Reply(200, _installation_json(ctx, _own_installation(ctx).id))


@route("GET", "/repos/{owner}/{repo}/installation", auth="jwt")
def repo_installation(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    ctx.repo()  # 404 for an unknown repository; the installation covers every other one
    inst = ctx.sim.auth.installation_of(ctx.app.id)
    return Reply(200, _installation_json(ctx, inst.id))


@route("POST", "/app/installations/{id}/access_tokens", auth="jwt")
def access_token(ctx: Ctx) -> Reply:
    inst = _own_installation(ctx)
    body = ctx.body or {}
    names: list[str] = list(body.get("repositories") or [])
    for rid in body.get("repository_ids") or []:
        match = [r.name for r in ctx.sim.world.repos.values() if r.id == rid]
        if not match:
            raise _error(
                422,
                "There is at least one repository that does not exist or is not "
                "accessible to the parent installation.",
            )
        names.extend(match)
    token = ctx.sim.issue_token(inst, names or None, body.get("permissions"))
    out: dict[str, Any] = {
        "token": token.value,
        "expires_at": token.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "permissions": token.permissions,
        "repository_selection": "selected" if token.repositories else "all",
    }
    if token.repositories:
        out["repositories"] = [
            ctx.sim.world.render_repo(ctx.sim.world.repo(r)) for r in sorted(token.repositories)
        ]
    return Reply(201, out)


# --- repositories and contents -----------------------------------------------------------


@route("GET", "/repos/{owner}/{repo}", permission="metadata")
def get_repo(ctx: Ctx) -> Reply:
    repo = ctx.repo()
    body = ctx.sim.world.render_repo(repo)
    if ctx.token is not None and ctx.token.kind == "user":
        body["permissions"] = _role_flags(ctx.sim.world.role(repo, ctx.actor))
        return Reply(200, body)
    body["permissions"] = {
        "admin": False,
        "maintain": False,
        "push": True,
        "triage": True,
        "pull": True,
    }
    return Reply(200, body)


def _role_flags(role: str) -> dict[str, bool]:
    permission = ROLE_PERMISSION[role]
    return {
        "admin": permission == "admin",
        "maintain": role in ("admin", "maintain"),
        "push": permission in ("admin", "write"),
        "triage": role in ("admin", "maintain", "write", "triage"),
        "pull": permission != "none",
    }


@route("GET", "/repos/{owner}/{repo}/contents/{path}", permission="contents")
@route("GET", "/repos/{owner}/{repo}/contents", permission="contents")
def get_contents(ctx: Ctx) -> Reply:
    repo = ctx.repo()
    ref = ctx.query.get("ref") or repo.default_branch
    path = ctx.params.get("path", "").strip("/")
    sha = repo.git.rev(ref)
    if sha is None:
        raise _error(404, f"No commit found for the ref {ref}")
    entry = repo.git.entry(sha, path)
    if entry is None:
        raise _error(404, "Not Found")
    kind, obj = entry
    urls = ctx.sim.urls
    if kind == "blob":
        data = repo.git.read(sha, path) or b""
        return Reply(
            200, shapes.content_file(urls, repo.full_name, path=path, sha=obj, data=data, ref=ref)
        )
    listing = [
        shapes.content_dir_entry(
            urls,
            repo.full_name,
            path=p,
            sha=s,
            size=n,
            ref=ref,
            kind="file" if k == "blob" else "dir",
        )
        for p, k, s, n in repo.git.list_tree(sha, path)
    ]
    return Reply(200, listing)


@route("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", permission="metadata")
def collaborator_permission(ctx: Ctx) -> Reply:
    repo = ctx.repo()
    login = ctx.params["username"]
    if login not in ctx.sim.world.users:
        raise _error(404, "Not Found")
    role = ctx.sim.world.role(repo, login)
    user = ctx.sim.world.render_user(login)
    permission = ROLE_PERMISSION[role]
    user["permissions"] = _role_flags(role)
    user["role_name"] = role
    return Reply(200, {"permission": permission, "role_name": role, "user": user})


@route("GET", "/user")
def get_authenticated_user(ctx: Ctx) -> Reply:
    """The signed-in user: user tokens only (an installation token is no user)."""
    assert ctx.token is not None
    if ctx.token.kind != "user":
        raise AuthError(403, "Resource not accessible by integration")
    return get_user(replace(ctx, params={"username": ctx.actor}))


@route("GET", "/users/{username}")
def get_user(ctx: Ctx) -> Reply:
    user = ctx.sim.world.users.get(ctx.params["username"])
    if user is None:
        raise _error(404, "Not Found")
    body = ctx.sim.world.render_user(user.login)
    created = ctx.sim.world.app_json[ctx.sim.app_id]["created_at"]
    body.update(
        {
            "name": None if user.type == "Bot" else user.login.title(),
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": created,
            "updated_at": created,
        }
    )
    return Reply(200, body)


# --- issues, comments, reactions, labels --------------------------------------------------

ISSUES = "issues|pull_requests"


@route("POST", "/repos/{owner}/{repo}/issues", permission=ISSUES)
def create_issue(ctx: Ctx) -> Reply:
    data = ctx.body or {}
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _error(422, 'Invalid request.\n\n"title" wasn\'t supplied.')
    if len(title) > 256:
        raise _error(422, "Validation Failed", errors=[{"field": "title", "code": "custom"}])
    body = data.get("body")
    if body is not None and (not isinstance(body, str) or len(body) > 65536):
        raise _error(422, "Validation Failed", errors=[{"field": "body", "code": "custom"}])
    repo = ctx.repo()
    issue = ctx.sim.create_issue(repo, title, body, ctx.actor)
    return Reply(201, ctx.sim.world.render_issue(repo, issue))


@route("GET", "/repos/{owner}/{repo}/compare/{basehead}", permission="contents")
def compare(ctx: Ctx) -> Reply:
    base, sep, head = ctx.params["basehead"].partition("...")
    if not sep or not base or not head:
        raise _error(404, "Not Found")
    return Reply(200, ctx.sim.render_comparison(ctx.repo(), base, head))


@route("GET", "/repos/{owner}/{repo}/issues/{number}", permission=ISSUES)
def get_issue(ctx: Ctx) -> Reply:
    repo = ctx.repo()
    issue = ctx.sim.issue(repo, ctx.int_param("number"))
    return Reply(200, ctx.sim.world.render_issue(repo, issue))


@route("GET", "/repos/{owner}/{repo}/issues/{number}/comments", permission=ISSUES)
def list_comments(ctx: Ctx) -> Reply:
    comments = ctx.sim.issue_comments(ctx.repo(), ctx.int_param("number"))
    return paginate(ctx, [ctx.sim.world.render_comment(c) for c in comments])


@route("POST", "/repos/{owner}/{repo}/issues/{number}/comments", permission=ISSUES)
def create_comment(ctx: Ctx) -> Reply:
    body = (ctx.body or {}).get("body")
    if not isinstance(body, str) or not body:
        raise _error(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
    assert ctx.token is not None
    comment = ctx.sim.create_comment(
        ctx.repo(), ctx.int_param("number"), body, ctx.actor, ctx.token.app_id
    )
    return Reply(201, ctx.sim.world.render_comment(comment))


def _comment(ctx: Ctx) -> Any:
    repo = ctx.repo()
    comment = ctx.sim.world.comments.get(ctx.int_param("id"))
    if comment is None or comment.repo != repo.full_name:
        raise _error(404, "Not Found")
    return comment


@route("GET", "/repos/{owner}/{repo}/issues/comments/{id}", permission=ISSUES)
def get_comment(ctx: Ctx) -> Reply:
    return Reply(200, ctx.sim.world.render_comment(_comment(ctx)))


@route("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}", permission=ISSUES)
def update_comment(ctx: Ctx) -> Reply:
    comment = _comment(ctx)
    body = (ctx.body or {}).get("body")
    if not isinstance(body, str) or not body:
        raise _error(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
    comment = ctx.sim.edit_comment(comment.id, body, ctx.actor)
    return Reply(200, ctx.sim.world.render_comment(comment))


def _react(ctx: Ctx, target: list[Any]) -> Reply:
    content = (ctx.body or {}).get("content", "")
    reaction, created = ctx.sim.add_reaction(target, ctx.actor, content)
    return Reply(201 if created else 200, ctx.sim.world.render_reaction(reaction))


@route("POST", "/repos/{owner}/{repo}/issues/{number}/reactions", permission=ISSUES)
def react_issue(ctx: Ctx) -> Reply:
    return _react(ctx, ctx.sim.issue(ctx.repo(), ctx.int_param("number")).reactions)


@route("POST", "/repos/{owner}/{repo}/issues/comments/{id}/reactions", permission=ISSUES)
def react_comment(ctx: Ctx) -> Reply:
    return _react(ctx, _comment(ctx).reactions)


@route("POST", "/repos/{owner}/{repo}/pulls/comments/{id}/reactions", permission="pull_requests")
def react_review_comment(ctx: Ctx) -> Reply:
    repo = ctx.repo()
    comment = ctx.sim.world.review_comments.get(ctx.int_param("id"))
    if comment is None or comment.repo != repo.full_name:
        raise _error(404, "Not Found")
    return _react(ctx, comment.reactions)


@route("POST", "/repos/{owner}/{repo}/issues/{number}/labels", permission=ISSUES)
def add_labels(ctx: Ctx) -> Reply:
    body = ctx.body
    labels = body.get("labels") if isinstance(body, dict) else body
    if isinstance(labels, list):
        labels = [x["name"] if isinstance(x, dict) else x for x in labels]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise _error(422, 'Invalid request.\n\n"labels" wasn\'t supplied.')
    repo = ctx.repo()
    names = ctx.sim.add_labels(repo, ctx.int_param("number"), labels, ctx.actor)
    return Reply(200, ctx.sim.world.render_labels(repo, names))


# --- pull requests -----------------------------------------------------------------------


def _pull(ctx: Ctx) -> Any:
    return ctx.sim.pull_issue(ctx.repo(), ctx.int_param("number"))


@route("GET", "/repos/{owner}/{repo}/pulls/{number}", permission="pull_requests")
def get_pull(ctx: Ctx) -> Reply:
    return Reply(200, ctx.sim.world.render_pull(ctx.repo(), _pull(ctx)))


@route("GET", "/repos/{owner}/{repo}/pulls", permission="pull_requests")
def list_pulls(ctx: Ctx) -> Reply:
    repo = ctx.repo()
    state = ctx.query.get("state", "open")
    head = ctx.query.get("head")
    base = ctx.query.get("base")
    found = []
    for issue in sorted(repo.issues.values(), key=lambda i: -i.number):
        pull = issue.pull
        if pull is None or (state != "all" and issue.state != state):
            continue
        if head:
            owner, _, branch = head.rpartition(":")
            if pull.head_ref != branch or (owner and owner.lower() != repo.owner.lower()):
                continue
        if base and pull.base_ref != base:
            continue
        found.append(ctx.sim.world.render_pull(repo, issue, detailed=False))
    return paginate(ctx, found)


@route("POST", "/repos/{owner}/{repo}/pulls", permission="pull_requests")
def create_pull(ctx: Ctx) -> Reply:
    body = ctx.body or {}
    for key in ("head", "base"):
        if not isinstance(body.get(key), str):
            raise _error(422, f'Invalid request.\n\n"{key}" wasn\'t supplied.')
    if not body.get("title") and not body.get("issue"):
        raise _error(422, 'Invalid request.\n\n"title" wasn\'t supplied.')
    repo = ctx.repo()
    issue = ctx.sim.create_pull(
        repo,
        body["head"],
        body["base"],
        body.get("title", ""),
        body.get("body"),
        ctx.actor,
        bool(body.get("draft")),
    )
    return Reply(201, ctx.sim.world.render_pull(repo, issue))


@route("PATCH", "/repos/{owner}/{repo}/pulls/{number}", permission="pull_requests")
def update_pull(ctx: Ctx) -> Reply:
    repo = ctx.repo()
    if "draft" in (ctx.body or {}):  # GitHub's REST cannot (un)draft: GraphQL only
        raise _error(
            422,
            'Invalid request.\n\nNo subschema in "anyOf" matched.\n"draft" is not a permitted key.',
        )
    issue = ctx.sim.update_pull(repo, ctx.int_param("number"), ctx.body or {}, ctx.actor)
    return Reply(200, ctx.sim.world.render_pull(repo, issue))


@route("GET", "/repos/{owner}/{repo}/pulls/{number}/files", permission="pull_requests")
def list_files(ctx: Ctx) -> Reply:
    issue = _pull(ctx)
    return paginate(ctx, ctx.sim.world.render_files(ctx.repo(), issue.pull))


@route("GET", "/repos/{owner}/{repo}/pulls/{number}/reviews", permission="pull_requests")
def list_reviews(ctx: Ctx) -> Reply:
    reviews = ctx.sim.reviews(ctx.repo(), ctx.int_param("number"))
    return paginate(ctx, [ctx.sim.world.render_review(r) for r in reviews])


def _review(ctx: Ctx) -> Any:
    review = ctx.sim.world.reviews.get(ctx.int_param("id"))
    repo = ctx.repo()
    if review is None or review.repo != repo.full_name or review.number != ctx.int_param("number"):
        raise _error(404, "Not Found")
    return review


@route("GET", "/repos/{owner}/{repo}/pulls/{number}/reviews/{id}", permission="pull_requests")
def get_review(ctx: Ctx) -> Reply:
    return Reply(200, ctx.sim.world.render_review(_review(ctx)))


@route(
    "GET", "/repos/{owner}/{repo}/pulls/{number}/reviews/{id}/comments", permission="pull_requests"
)
def list_review_comments_of_review(ctx: Ctx) -> Reply:
    review = _review(ctx)
    world = ctx.sim.world
    return paginate(
        ctx, [world.render_review_comment(world.review_comments[c]) for c in review.comment_ids]
    )


@route("GET", "/repos/{owner}/{repo}/pulls/{number}/comments", permission="pull_requests")
def list_review_comments(ctx: Ctx) -> Reply:
    comments = ctx.sim.review_comments(ctx.repo(), ctx.int_param("number"))
    return paginate(ctx, [ctx.sim.world.render_review_comment(c) for c in comments])


@route("GET", "/repos/{owner}/{repo}/pulls/comments/{id}", permission="pull_requests")
def get_review_comment(ctx: Ctx) -> Reply:
    comment = ctx.sim.world.review_comments.get(ctx.int_param("id"))
    if comment is None or comment.repo != ctx.repo().full_name:
        raise _error(404, "Not Found")
    return Reply(200, ctx.sim.world.render_review_comment(comment))


@route(
    "POST",
    "/repos/{owner}/{repo}/pulls/{number}/comments/{id}/replies",
    permission="pull_requests",
)
def reply_review_comment(ctx: Ctx) -> Reply:
    body = (ctx.body or {}).get("body")
    if not isinstance(body, str) or not body:
        raise _error(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
    reply = ctx.sim.reply_to_review_comment(
        ctx.repo(), ctx.int_param("number"), ctx.int_param("id"), body, ctx.actor
    )
    return Reply(201, ctx.sim.world.render_review_comment(reply))


@route(
    "POST", "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers", permission="pull_requests"
)
def request_reviewers(ctx: Ctx) -> Reply:
    reviewers = list((ctx.body or {}).get("reviewers") or [])
    repo = ctx.repo()
    issue = ctx.sim.request_reviewers(repo, ctx.int_param("number"), reviewers)
    return Reply(201, ctx.sim.world.render_pull(repo, issue, detailed=False))


# --- check runs --------------------------------------------------------------------------


@route("POST", "/repos/{owner}/{repo}/check-runs", permission="checks")
def create_check_run(ctx: Ctx) -> Reply:
    assert ctx.token is not None
    run = ctx.sim.create_check_run(ctx.repo(), ctx.token.app_id, ctx.body or {})
    return Reply(201, ctx.sim.world.render_check_run(run))


@route("PATCH", "/repos/{owner}/{repo}/check-runs/{id}", permission="checks")
def update_check_run(ctx: Ctx) -> Reply:
    run = ctx.sim.update_check_run(ctx.repo(), ctx.int_param("id"), ctx.body or {})
    return Reply(200, ctx.sim.world.render_check_run(run))


@route("GET", "/repos/{owner}/{repo}/check-runs/{id}", permission="checks")
def get_check_run(ctx: Ctx) -> Reply:
    run = ctx.sim.world.check_runs.get(ctx.int_param("id"))
    if run is None or run.repo != ctx.repo().full_name:
        raise _error(404, "Not Found")
    return Reply(200, ctx.sim.world.render_check_run(run))


# --- setup flow --------------------------------------------------------------------------


@route("POST", "/app-manifests/{code}/conversions", auth="none")
def manifest_conversion(ctx: Ctx) -> Reply:
    from .manifest import convert

    return Reply(201, convert(ctx.sim, ctx.params["code"]))


# --- dispatch ----------------------------------------------------------------------------


def _authorize(ctx: Ctx, spec: RouteSpec, header: str | None) -> None:
    sim = ctx.sim
    if spec.auth == "none":
        return
    if spec.auth == "jwt":
        ctx.app = sim.auth.verify_jwt(header)
        return
    ctx.token = sim.auth.token(header)
    if ctx.token is None:
        raise AuthError(401, "Bad credentials")
    if "owner" in ctx.params and "repo" in ctx.params:
        full = f"{ctx.params['owner']}/{ctx.params['repo']}"
        if sim.world.find_repo(ctx.params["owner"], ctx.params["repo"]) is None:
            raise _error(404, "Not Found")
        if not ctx.token.covers_repo(full):
            raise AuthError(403, "Resource not accessible by integration")
    level = "read" if ctx.method == "GET" or spec.permission == "metadata" else "write"
    if spec.permission and not any(ctx.token.allows(p, level) for p in spec.permission.split("|")):
        raise AuthError(403, "Resource not accessible by integration")
    if ctx.token.kind == "user" and "owner" in ctx.params and "repo" in ctx.params:
        # a user token does what both the App and the user may: private repositories the
        # user cannot see do not exist for it
        repo = sim.world.find_repo(ctx.params["owner"], ctx.params["repo"])
        assert repo is not None
        permission = ROLE_PERMISSION[sim.world.role(repo, ctx.token.actor)]
        if permission == "none":
            raise _error(404, "Not Found")
        # anyone who can read may open issues and comment; other writes need push access
        pushes = spec.permission not in (ISSUES, "issues")
        if level == "write" and pushes and permission not in ("admin", "write"):
            raise AuthError(403, "Must have push access to this repository.")


def _rate_headers(sim: GitHubSim) -> dict[str, str]:
    used = sim.api_calls
    return {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": str(max(1, 5000 - used)),
        "x-ratelimit-reset": str(int(time.time()) + 3600),
        "x-ratelimit-used": str(used),
        "x-ratelimit-resource": "core",
        "x-github-api-version-selected": "2022-11-28",
    }


def api_endpoint(sim: GitHubSim) -> Callable[[Request], Any]:
    from .github import Recorded, SimError

    async def endpoint(request: Request) -> Response:
        path = "/" + request.path_params["rest"].strip("/")
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        header = request.headers.get("authorization")
        token_value = header.split(" ", 1)[1] if header and " " in header else None
        query = dict(request.query_params)
        headers = _rate_headers(sim)
        if version := request.headers.get("x-github-api-version"):
            headers["x-github-api-version-selected"] = version
        request_id = f"{abs(hash((path, time.time()))) % 0xFFFFFFFF:08X}"
        headers["x-github-request-id"] = request_id

        def finish(status: int, content: Any, extra: dict[str, str] | None = None) -> Response:
            sim.record(Recorded(request.method, path, request.url.query, token_value, body, status))
            out = JSONResponse(content, status_code=status, headers={**headers, **(extra or {})})
            if status == 204:
                return Response(status_code=204, headers=headers)
            return out

        if isinstance(body, str):
            return finish(400, shapes.error("Problems parsing JSON", DOCS, status="400"))
        if fault := sim.take_fault(request.method, path):
            return finish(fault.status, shapes.error(fault.message, DOCS, status=str(fault.status)))
        limit = sim.take_rate_limit()
        if limit is not None:
            return finish(
                limit.status,
                {"message": SECONDARY.format(rid=request_id), "documentation_url": SECONDARY_DOCS},
                {"retry-after": str(limit.retry_after)},
            )
        for spec in ROUTES:
            if spec.method != request.method:
                continue
            match = spec.pattern.match(path)
            if match is None:
                continue
            ctx = Ctx(sim, request.method, path, match.groupdict(), query, body)

            def run(spec: RouteSpec = spec, ctx: Ctx = ctx) -> Reply:
                with sim.world.lock:
                    _authorize(ctx, spec, header)
                    return spec.handler(ctx)

            try:
                reply = await run_in_threadpool(run)
            except AuthError as exc:
                doc = DOCS if exc.status != 403 else f"{DOCS}/overview/permissions"
                return finish(
                    exc.status,
                    {"message": exc.message, "documentation_url": doc, "status": str(exc.status)},
                )
            except SimError as exc:
                return finish(
                    exc.status, shapes.error(exc.message, DOCS, status=str(exc.status), **exc.extra)
                )
            except Exception as exc:  # a simulator bug: answer 500 and keep it for the test
                log.exception("simulator error on %s %s", request.method, path)
                sim.errors.append(f"{request.method} {path}: {type(exc).__name__}: {exc}")
                return finish(500, shapes.error(f"simulator error: {exc}", DOCS, status="500"))
            return finish(reply.status, reply.body, reply.headers)
        return finish(404, shapes.error("Not Found", DOCS, status="404"))

    return endpoint


def build_app(sim: GitHubSim) -> Starlette:
    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]

    async def not_found(request: Request) -> Response:
        return JSONResponse(shapes.error("Not Found", DOCS, status="404"), status_code=404)

    from .ci import ci_routes

    routes = [
        Route("/api/v3/{rest:path}", api_endpoint(sim), methods=methods),
        *ci_routes(sim),
        Route("/{owner}/{name}.git/{rest:path}", GitEndpoint(sim), methods=["GET", "POST"]),
        *manifest_routes(sim),
        *oauth_routes(sim),
        *html_routes(sim),
        Route("/{rest:path}", not_found, methods=methods),
    ]
    return Starlette(routes=routes)
