"""The simulator's "CI": GitHub Actions check runs on commits, their `check_run.completed`
webhooks, annotations, the Actions job-logs endpoint (a 302 to a download URL, as GitHub
answers), and a pull request's commit list.

A test installs ``sim.ci = fn``: ``fn(repo, sha) -> [CiResult]`` is called whenever a
branch that heads an open pull request moves, and each result becomes a completed check
run of the "github-actions" App on that commit (so a fix commit turns CI green when ``fn``
decides so from the repository's content). ``run_check`` does the same by hand.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import shapes
from .rest import Ctx, Reply, _error, paginate, route
from .state import CheckRun

if TYPE_CHECKING:
    from .github import GitHubSim
    from .state import Repo

ACTIONS_APP_ID = 15368  # GitHub Actions' App id on github.com
ACTIONS_LOGIN = "github-actions[bot]"


@dataclass
class CiResult:
    name: str
    conclusion: str  # success | failure | timed_out | ...
    title: str = ""
    summary: str = ""
    text: str = ""
    annotations: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""  # the job's log, served by the Actions job-logs endpoint


CiHook = "Callable[[str, str], list[CiResult]]"


def install(sim: GitHubSim) -> None:
    """Register the GitHub Actions App (its check runs render with `app.slug`)."""
    sim.world.user(ACTIONS_LOGIN, "Bot")
    sim.world.app_json[ACTIONS_APP_ID] = shapes.app(
        sim.urls,
        app_id=ACTIONS_APP_ID,
        slug="github-actions",
        name="GitHub Actions",
        owner=sim.world.render_user(sim.org),
        permissions={"checks": "write", "actions": "write"},
        events=[],
        client_id="Iv1.actions",
        created_at=shapes.now_iso(),
    )


def run_check(sim: GitHubSim, repo: Repo, sha: str, result: CiResult) -> CheckRun:
    """A completed Actions check run on ``sha``, announced as `check_run.completed`."""
    now = shapes.now_iso()
    output = {"title": result.title, "summary": result.summary, "text": result.text}
    if result.annotations:
        output["annotations"] = list(result.annotations)
    with sim.world.lock:
        run = CheckRun(
            id=sim.world.next_id(),
            suite_id=sim.world.next_id(),
            repo=repo.full_name,
            app_id=ACTIONS_APP_ID,
            name=result.name,
            head_sha=sha,
            status="completed",
            conclusion=result.conclusion,
            started_at=now,
            completed_at=now,
            output=output,
            actions=[],
            external_id="",
            details_url=None,
        )
        sim.world.check_runs[run.id] = run
        sim.job_logs[run.id] = result.log
        rendered = sim.world.render_check_run(run)
    sim.announce("check_run", "completed", repo, ACTIONS_LOGIN, check_run=rendered)
    return run


def on_branch_moved(sim: GitHubSim, repo: Repo, sha: str) -> None:
    if sim.ci is None:
        return
    for result in sim.ci(repo.full_name, sha):
        run_check(sim, repo, sha, result)


# --- REST --------------------------------------------------------------------------------


@route("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs", permission="checks")
def list_for_ref(ctx: Ctx) -> Reply:
    repo = ctx.repo()
    sha = repo.git.rev(ctx.params["ref"])
    if sha is None:
        raise _error(422, "No commit found for SHA: " + ctx.params["ref"])
    runs = [r for r in ctx.sim.world.check_runs.values() if r.repo == repo.full_name]
    runs = [r for r in runs if r.head_sha == sha]
    if ctx.query.get("filter", "latest") == "latest":
        latest: dict[tuple[int, str], CheckRun] = {}
        for r in runs:
            latest[(r.app_id, r.name)] = r  # ids grow: the last one wins
        runs = list(latest.values())
    rendered = [ctx.sim.world.render_check_run(r) for r in runs]
    return Reply(200, {"total_count": len(rendered), "check_runs": rendered})


@route("GET", "/repos/{owner}/{repo}/check-runs/{id}/annotations", permission="checks")
def list_annotations(ctx: Ctx) -> Reply:
    run = ctx.sim.world.check_runs.get(ctx.int_param("id"))
    if run is None or run.repo != ctx.repo().full_name:
        raise _error(404, "Not Found")
    items = [
        {
            "path": a.get("path", ""),
            "start_line": a.get("start_line", 1),
            "end_line": a.get("end_line", a.get("start_line", 1)),
            "start_column": a.get("start_column"),
            "end_column": a.get("end_column"),
            "annotation_level": a.get("annotation_level", "failure"),
            "title": a.get("title"),
            "message": a.get("message", ""),
            "raw_details": a.get("raw_details"),
            "blob_href": f"{ctx.sim.web_url}/{run.repo}/blob/{run.head_sha}/{a.get('path', '')}",
        }
        for a in run.output.get("annotations", [])
    ]
    return paginate(ctx, items)


@route("GET", "/repos/{owner}/{repo}/actions/jobs/{id}/logs", permission="actions")
def job_logs(ctx: Ctx) -> Reply:
    run = ctx.sim.world.check_runs.get(ctx.int_param("id"))
    if run is None or run.repo != ctx.repo().full_name or run.app_id != ACTIONS_APP_ID:
        raise _error(404, "Not Found")
    ticket = secrets.token_urlsafe(16)
    ctx.sim.log_downloads[ticket] = run.id
    return Reply(302, None, {"Location": f"{ctx.sim.web_url}/_sim/job-logs/{ticket}"})


@route("GET", "/repos/{owner}/{repo}/pulls/{number}/commits", permission="pull_requests")
def pull_commits(ctx: Ctx) -> Reply:
    repo = ctx.repo()
    issue = repo.issues.get(ctx.int_param("number"))
    if issue is None or issue.pull is None:
        raise _error(404, "Not Found")
    pull = issue.pull
    base = repo.git.merge_base(pull.base_sha, pull.head_sha) or pull.base_sha
    commits = [c for c in repo.git.log(f"{base}..{pull.head_sha}", limit=250)]
    commits.reverse()  # GitHub lists them oldest first
    return paginate(ctx, [_commit(ctx, repo, c) for c in commits])


def _commit(ctx: Ctx, repo: Repo, c: Any) -> dict[str, Any]:
    world = ctx.sim.world
    api = f"{ctx.sim.urls.repo_api(repo.full_name)}/commits/{c.sha}"
    person = {"name": c.author_name, "email": c.author_email, "date": shapes.now_iso()}
    user = world.users.get(c.author_name)  # GitHub links the author when the email matches
    linked = shapes.user(ctx.sim.urls, user.login, user.id, user.type) if user else None
    return {
        "url": api,
        "sha": c.sha,
        "node_id": shapes.node_id("Commit", abs(hash(c.sha)) % 10**9),
        "html_url": f"{ctx.sim.web_url}/{repo.full_name}/commit/{c.sha}",
        "comments_url": f"{api}/comments",
        "commit": {
            "url": f"{ctx.sim.urls.repo_api(repo.full_name)}/git/commits/{c.sha}",
            "author": person,
            "committer": person,
            "message": c.message,
            "comment_count": 0,
            "tree": {"sha": "0" * 40, "url": f"{api}/tree"},
        },
        "author": linked,
        "committer": linked,
        "parents": [{"sha": p, "url": f"{api}/{p}"} for p in c.parents],
    }


def ci_routes(sim: GitHubSim) -> list[Route]:
    async def download(request: Request) -> Response:
        run_id = sim.log_downloads.get(request.path_params["ticket"])
        if run_id is None:
            return PlainTextResponse("Not Found", status_code=404)
        return PlainTextResponse(sim.job_logs.get(run_id, ""))

    return [Route("/_sim/job-logs/{ticket}", download), graphql_route(sim)]


# --- GraphQL: only what REST cannot do ------------------------------------------------------


def graphql_route(sim: GitHubSim) -> Route:
    """`POST /api/graphql` with the one mutation pact-bot needs,
    `markPullRequestReadyForReview(input: {pullRequestId})`; anything else is an error,
    as GitHub answers a query it cannot resolve (HTTP 200 with `errors`)."""

    async def endpoint(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = sim.auth.token(header) if header else None
        if token is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        body = await request.json()
        query, variables = str(body.get("query", "")), body.get("variables") or {}
        if "markPullRequestReadyForReview" not in query:
            return JSONResponse({"errors": [{"message": "not supported by the simulator"}]})
        node = variables.get("id") or variables.get("pullRequestId")
        with sim.world.lock:
            for repo in sim.world.repos.values():
                for issue in repo.issues.values():
                    pull = issue.pull
                    if pull is None or shapes.node_id("PullRequest", pull.id) != node:
                        continue
                    if not token.covers_repo(repo.full_name) or not token.allows(
                        "pull_requests", "write"
                    ):
                        return JSONResponse(
                            {
                                "errors": [
                                    {
                                        "type": "FORBIDDEN",
                                        "message": "Resource not accessible by integration",
                                    }
                                ]
                            }
                        )
                    pull.draft = False
                    sim.graphql_calls.append(("markPullRequestReadyForReview", issue.number))
                    return JSONResponse(
                        {
                            "data": {
                                "markPullRequestReadyForReview": {
                                    "pullRequest": {"number": issue.number, "isDraft": False}
                                }
                            }
                        }
                    )
        return JSONResponse(
            {
                "errors": [
                    {
                        "type": "NOT_FOUND",
                        "message": f"Could not resolve to a node with the global id of '{node}'",
                    }
                ]
            }
        )

    return Route("/api/graphql", endpoint, methods=["POST"])
