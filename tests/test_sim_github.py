"""The GitHub simulator, exercised with the real githubkit and the real git CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from githubkit import AppAuthStrategy, AppInstallationAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.exception import RequestError, RequestFailed
from sim.auth import new_private_key_pem
from sim.github import GitHubSim
from sim.server import BackgroundServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SPEC = "# Widget spec\n\nThe widget counts.\n"


# --- helpers --------------------------------------------------------------------------------


class Receiver:
    """A tiny webhook receiver on its own port, recording what GitHub would POST."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

        async def hook(request: Request) -> JSONResponse:
            self.received.append((dict(request.headers), await request.body()))
            return JSONResponse({"ok": True}, status_code=202)

        self.server = BackgroundServer(
            Starlette(routes=[Route("/webhook", hook, methods=["POST"])])
        )

    @property
    def url(self) -> str:
        return f"{self.server.url}/webhook"


@pytest.fixture
def receiver(github_sim: GitHubSim) -> Iterator[Receiver]:
    rec = Receiver()
    with rec.server:
        github_sim.set_webhook_url(rec.url)
        yield rec


def app_client(sim: GitHubSim, key: str | None = None) -> GitHub[Any]:
    return GitHub(
        AppAuthStrategy(str(sim.app_id), key or sim.private_key_pem), base_url=sim.base_url
    )


def installation_client(sim: GitHubSim, **scope: Any) -> GitHub[Any]:
    strategy = AppInstallationAuthStrategy(
        str(sim.app_id), sim.private_key_pem, sim.installation_id, **scope
    )
    return GitHub(strategy, base_url=sim.base_url)


def git(
    *args: str, cwd: Path | None = None, token: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run git; the token travels in an http.extraHeader, never in the URL."""
    pre: list[str] = ["-c", "user.name=Tester", "-c", "user.email=t@example.com"]
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        pre += ["-c", f"http.extraHeader=Authorization: Basic {basic}"]
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    return subprocess.run(
        ["git", *pre, *args], cwd=cwd, capture_output=True, text=True, env=full_env, check=False
    )


def clone(sim_repo_url: str, dest: Path, token: str) -> Path:
    result = git("clone", "--quiet", sim_repo_url, str(dest), token=token)
    assert result.returncode == 0, result.stderr
    return dest


def commit_file(work: Path, name: str, text: str) -> None:
    (work / name).write_text(text)
    assert git("add", name, cwd=work).returncode == 0
    assert git("commit", "-qm", f"add {name}", cwd=work).returncode == 0


# --- App authentication ---------------------------------------------------------------------


def test_app_jwt_signed_by_the_app_key_is_accepted(github_sim: GitHubSim) -> None:
    github_sim.add_repo("acme", "widgets")
    gh = app_client(github_sim)
    app = gh.rest.apps.get_authenticated().parsed_data
    assert app is not None and app.slug == "pact-bot" and app.id == github_sim.app_id
    installs = gh.rest.apps.list_installations().parsed_data
    assert [i.id for i in installs] == [github_sim.installation_id]
    inst = gh.rest.apps.get_repo_installation("acme", "widgets").parsed_data
    assert inst.id == github_sim.installation_id and inst.account is not None


def test_jwt_signed_by_another_key_is_refused(github_sim: GitHubSim) -> None:
    github_sim.add_repo("acme", "widgets")
    gh = app_client(github_sim, key=new_private_key_pem())
    with pytest.raises(RequestFailed) as err:
        gh.rest.apps.get_repo_installation("acme", "widgets")
    assert err.value.response.status_code == 401
    body = err.value.response.json()
    assert body["message"] and body["documentation_url"]


@pytest.mark.parametrize(
    ("iat_offset", "exp_offset"),
    [(-700, -60), (-30, 1200)],
    ids=["expired", "lives-too-long"],
)
def test_expired_or_too_long_jwt_is_refused(
    github_sim: GitHubSim, iat_offset: int, exp_offset: int
) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"iss": str(github_sim.app_id), "iat": now + iat_offset, "exp": now + exp_offset},
        github_sim.private_key_pem,
        algorithm="RS256",
    )
    resp = httpx.post(
        f"{github_sim.base_url}/app/installations/{github_sim.installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 401
    assert "exp" in resp.json()["message"]


def test_installation_token_honours_repositories(github_sim: GitHubSim) -> None:
    github_sim.add_repo("acme", "repo-a")
    github_sim.add_repo("acme", "repo-b")
    gh = installation_client(github_sim, repositories=["repo-a"])
    assert gh.rest.repos.get("acme", "repo-a").parsed_data.name == "repo-a"
    with pytest.raises(RequestFailed) as err:
        gh.rest.repos.get("acme", "repo-b")
    assert err.value.response.status_code == 403
    assert err.value.response.json()["message"] == "Resource not accessible by integration"


def test_installation_token_honours_permissions(github_sim: GitHubSim) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    number = github_sim.open_issue(repo, "Spec", "body", "alice")
    gh = installation_client(github_sim, permissions={"issues": "read"})
    assert gh.rest.issues.get("acme", "widgets", number).parsed_data.number == number
    with pytest.raises(RequestFailed) as err:
        gh.rest.issues.create_comment("acme", "widgets", number, body="hi")
    assert err.value.response.status_code == 403
    greedy = installation_client(github_sim, permissions={"administration": "write"})
    with pytest.raises(RequestError) as refused:
        greedy.rest.repos.get("acme", "widgets")  # the token exchange itself is refused
    assert isinstance(refused.value.__cause__, RequestFailed)
    assert refused.value.__cause__.response.status_code == 422


def test_calls_without_a_valid_token_get_401(github_sim: GitHubSim) -> None:
    github_sim.add_repo("acme", "widgets")
    resp = httpx.get(f"{github_sim.base_url}/repos/acme/widgets")
    assert resp.status_code == 401
    assert resp.json()["message"] == "Bad credentials"
    gh = GitHub(TokenAuthStrategy("ghs_notarealtoken"), base_url=github_sim.base_url)
    with pytest.raises(RequestFailed) as err:
        gh.rest.repos.get("acme", "widgets")
    assert err.value.response.status_code == 401


# --- git over smart HTTP --------------------------------------------------------------------


def test_push_to_protected_default_branch_is_refused_feature_branch_works(
    github_sim: GitHubSim, tmp_path: Path
) -> None:
    repo = github_sim.add_repo("acme", "widgets", {"README.md": "hello\n"})
    token = github_sim.create_token()
    work = clone(repo.clone_url, tmp_path / "w", token)
    assert (work / "README.md").read_text() == "hello\n"
    commit_file(work, "a.txt", "a\n")
    refused = git("push", "origin", "HEAD:main", cwd=work, token=token)
    assert refused.returncode != 0
    assert "GH006: Protected branch update failed" in refused.stderr
    assert "protected branch hook declined" in refused.stderr
    assert "[remote rejected] HEAD -> main (protected branch hook declined)" in refused.stderr
    assert github_sim.read_file(repo, "main", "a.txt") is None
    deleted = git("push", "origin", ":main", cwd=work, token=token)
    assert deleted.returncode != 0 and "main" in github_sim.branches(repo)
    bypass = git(
        "push", str(repo.path), "HEAD:main", cwd=work, env={"PACT_SIM_BYPASS_PROTECTION": "1"}
    )
    assert bypass.returncode == 0, bypass.stderr  # only the simulator's own helpers do this
    pushed = git("push", "origin", "HEAD:refs/heads/feature", cwd=work, token=token)
    assert pushed.returncode == 0, pushed.stderr
    assert github_sim.read_file(repo, "feature", "a.txt") == "a\n"
    assert github_sim.commits(repo, "feature")[0].message == "add a.txt"


def test_push_needs_contents_write(github_sim: GitHubSim, tmp_path: Path) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    reader = github_sim.create_token(permissions={"contents": "read"})
    work = clone(repo.clone_url, tmp_path / "w", reader)
    commit_file(work, "a.txt", "a\n")
    refused = git("push", "origin", "HEAD:refs/heads/feature", cwd=work, token=reader)
    assert refused.returncode != 0
    assert "403" in refused.stderr
    assert "feature" not in github_sim.branches(repo)


def test_git_refuses_missing_bad_and_out_of_scope_tokens(
    github_sim: GitHubSim, tmp_path: Path
) -> None:
    github_sim.add_repo("acme", "repo-a")
    repo_b = github_sim.add_repo("acme", "repo-b")
    assert git("clone", repo_b.clone_url, str(tmp_path / "anon")).returncode != 0
    assert git("clone", repo_b.clone_url, str(tmp_path / "bad"), token="ghs_nope").returncode != 0
    only_a = github_sim.create_token(repositories=["repo-a"])
    out = git("clone", repo_b.clone_url, str(tmp_path / "b"), token=only_a)
    assert out.returncode != 0 and "403" in out.stderr


def test_clone_with_askpass_keeps_the_token_out_of_the_url(
    github_sim: GitHubSim, tmp_path: Path
) -> None:
    repo = github_sim.add_repo("acme", "widgets", {"docs/widget-spec.md": SPEC})
    token = github_sim.create_token()
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(
        '#!/bin/sh\ncase "$1" in Username*) echo x-access-token;; *) echo "$SIM_TOKEN";; esac\n'
    )
    askpass.chmod(0o700)
    env = {"GIT_ASKPASS": str(askpass), "SIM_TOKEN": token}
    result = git("clone", repo.clone_url, str(tmp_path / "w"), env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "w" / "docs" / "widget-spec.md").read_text() == SPEC
    git_calls = [
        r for r in github_sim.requests if r.path.endswith((".git/info/refs", "git-upload-pack"))
    ]
    assert git_calls[0].status == 401 and git_calls[0].token is None
    assert any(r.token == token and r.status == 200 for r in git_calls)
    assert all(token not in r.path + r.query for r in github_sim.requests)


def test_push_to_a_pr_branch_announces_synchronize(
    github_sim: GitHubSim, receiver: Receiver, tmp_path: Path
) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    number = github_sim.open_pr(
        repo, "spec/widget", {"docs/widget-spec.md": SPEC}, "Widget spec", user="alice"
    )
    token = github_sim.create_token()
    work = clone(repo.clone_url, tmp_path / "w", token)
    assert git("checkout", "-q", "spec/widget", cwd=work).returncode == 0
    commit_file(work, "b.txt", "b\n")
    assert git("push", "-q", "origin", "HEAD:spec/widget", cwd=work, token=token).returncode == 0
    github_sim.wait_for_deliveries()
    sync = [d for d in github_sim.deliveries if d.action == "synchronize"]
    assert len(sync) == 1
    body = sync[0].payload
    assert body["number"] == number
    assert body["sender"]["login"] == github_sim.bot_login
    assert body["after"] == github_sim.branches(repo)["spec/widget"]
    assert body["pull_request"]["head"]["sha"] == body["after"]


# --- REST: every endpoint parses with githubkit ----------------------------------------------


def test_every_endpoint_parses_with_githubkit(github_sim: GitHubSim) -> None:
    repo = github_sim.add_repo("acme", "widgets", {"README.md": "hello\n", "src/w.py": "x = 1\n"})
    github_sim.add_user("alice", "write")
    github_sim.add_user("bob", "read")
    issue_no = github_sim.open_issue(repo, "Implement widget", "See docs/widget-spec.md", "alice")
    pr_no = github_sim.open_pr(
        repo,
        "spec/widget",
        {"docs/widget-spec.md": SPEC, "src/w.py": "x = 2\ny = 3\n"},
        "Widget spec",
        "adds the spec",
        user="alice",
    )
    review_id = github_sim.submit_review(
        repo,
        pr_no,
        "alice",
        "CHANGES_REQUESTED",
        "Please fix",
        comments=[{"path": "src/w.py", "line": 2, "body": "why 3?"}],
    )
    gh = installation_client(github_sim, repositories=["widgets"])
    rest = gh.rest

    full = rest.repos.get("acme", "widgets").parsed_data
    assert full.default_branch == "main" and full.clone_url == repo.clone_url
    content = rest.repos.get_content(
        "acme", "widgets", "docs/widget-spec.md", ref="spec/widget"
    ).parsed_data
    assert base64.b64decode(content.content).decode() == SPEC  # type: ignore[union-attr]
    listing = rest.repos.get_content("acme", "widgets", "src").parsed_data
    assert [e.name for e in listing] == ["w.py"]  # type: ignore[union-attr]
    with pytest.raises(RequestFailed) as err:
        rest.repos.get_content("acme", "widgets", "nope.md")
    assert err.value.response.status_code == 404

    issue = rest.issues.get("acme", "widgets", issue_no).parsed_data
    assert issue.title == "Implement widget" and issue.user and issue.user.login == "alice"
    comment = rest.issues.create_comment("acme", "widgets", issue_no, body="On it").parsed_data
    assert comment.user and comment.user.login == "pact-bot[bot]" and comment.user.type == "Bot"
    edited = rest.issues.update_comment("acme", "widgets", comment.id, body="Done").parsed_data
    assert edited.body == "Done"
    assert rest.issues.get_comment("acme", "widgets", comment.id).parsed_data.body == "Done"
    assert [c.body for c in rest.issues.list_comments("acme", "widgets", issue_no).parsed_data] == [
        "Done"
    ]
    labels = rest.issues.add_labels("acme", "widgets", issue_no, labels=["pact:code"]).parsed_data
    assert [label.name for label in labels] == ["pact:code"]

    first = rest.reactions.create_for_issue("acme", "widgets", issue_no, content="eyes")
    again = rest.reactions.create_for_issue("acme", "widgets", issue_no, content="eyes")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.parsed_data.content == "eyes" and again.parsed_data.id == first.parsed_data.id
    r2 = rest.reactions.create_for_issue_comment("acme", "widgets", comment.id, content="rocket")
    assert r2.status_code == 201 and r2.parsed_data.content == "rocket"

    pr = rest.pulls.get("acme", "widgets", pr_no).parsed_data
    assert pr.head.ref == "spec/widget" and pr.base.ref == "main" and pr.changed_files == 2
    listed = rest.pulls.list("acme", "widgets", head="acme:spec/widget", state="open").parsed_data
    assert [p.number for p in listed] == [pr_no]
    assert rest.pulls.list("acme", "widgets", head="acme:other", state="all").parsed_data == []
    updated = rest.pulls.update("acme", "widgets", pr_no, title="Widget spec v2").parsed_data
    assert updated.title == "Widget spec v2"
    files = rest.pulls.list_files("acme", "widgets", pr_no).parsed_data
    by_name = {f.filename: f for f in files}
    assert by_name["docs/widget-spec.md"].status == "added"
    assert by_name["src/w.py"].status == "modified"
    assert (by_name["src/w.py"].additions, by_name["src/w.py"].deletions) == (2, 1)
    assert by_name["src/w.py"].patch and "+y = 3" in by_name["src/w.py"].patch

    reviews = rest.pulls.list_reviews("acme", "widgets", pr_no).parsed_data
    assert [(r.id, r.state, r.body) for r in reviews] == [
        (review_id, "CHANGES_REQUESTED", "Please fix")
    ]
    assert rest.pulls.get_review("acme", "widgets", pr_no, review_id).parsed_data.id == review_id
    in_review = rest.pulls.list_comments_for_review("acme", "widgets", pr_no, review_id).parsed_data
    assert [c.body for c in in_review] == ["why 3?"]
    thread = rest.pulls.list_review_comments("acme", "widgets", pr_no).parsed_data
    root = thread[0]
    assert root.pull_request_review_id == review_id and root.line == 2
    assert root.diff_hunk.startswith("@@") and root.diff_hunk.endswith("+y = 3")
    reply = rest.pulls.create_reply_for_review_comment(
        "acme", "widgets", pr_no, root.id, body="Fixed"
    ).parsed_data
    assert reply.in_reply_to_id == root.id and reply.user.login == "pact-bot[bot]"
    react = rest.reactions.create_for_pull_request_review_comment(
        "acme", "widgets", root.id, content="+1"
    )
    assert react.status_code == 201
    requested = rest.pulls.request_reviewers(
        "acme", "widgets", pr_no, reviewers=["bob"]
    ).parsed_data
    assert [u.login for u in requested.requested_reviewers or []] == ["bob"]

    run = rest.checks.create(
        "acme",
        "widgets",
        name="pact-bot",
        head_sha=pr.head.sha,
        status="completed",
        conclusion="neutral",
        output={"title": "Spec found", "summary": "1 spec"},
        actions=[
            {"label": "Implement", "description": "Implement the spec", "identifier": "implement"}
        ],
    ).parsed_data
    assert run.name == "pact-bot" and run.conclusion == "neutral"
    assert [p.number for p in run.pull_requests] == [pr_no]
    done = rest.checks.update(
        "acme",
        "widgets",
        run.id,
        status="completed",
        conclusion="success",
        output={"title": "Implemented", "summary": "ok"},
    ).parsed_data
    assert done.conclusion == "success" and done.output.title == "Implemented"

    perm = rest.repos.get_collaborator_permission_level("acme", "widgets", "alice").parsed_data
    assert (perm.permission, perm.role_name, perm.user and perm.user.login) == (
        "write",
        "write",
        "alice",
    )
    assert (
        rest.repos.get_collaborator_permission_level(
            "acme", "widgets", "bob"
        ).parsed_data.permission
        == "read"
    )
    alice = rest.users.get_by_username("alice").parsed_data
    assert alice.login == "alice" and alice.id
    assert rest.users.get_by_username("pact-bot[bot]").parsed_data.type == "Bot"

    assert [c.body for c in github_sim.issue_comments(repo, issue_no)] == ["Done"]
    assert [r.content for r in github_sim.reactions(repo, issue_no)] == ["eyes"]
    assert [c.body for c in github_sim.review_replies(repo, pr_no)] == ["Fixed"]
    assert github_sim.check_runs(repo)[0].conclusion == "success"
    assert {p["number"] for p in github_sim.pulls(repo)} == {pr_no}


def test_bot_can_open_a_pull_request_from_a_pushed_branch(
    github_sim: GitHubSim, receiver: Receiver
) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    github_sim.commit(repo, "pact/code/widget", {"src/widget.py": "x = 1\n"}, "Implement widget")
    gh = installation_client(github_sim)
    pr = gh.rest.pulls.create(
        "acme",
        "widgets",
        title="Implement widget",
        head="pact/code/widget",
        base="main",
        body="Closes #1",
    ).parsed_data
    assert pr.number == 1 and pr.user.login == "pact-bot[bot]"
    with pytest.raises(RequestFailed) as err:
        gh.rest.pulls.create("acme", "widgets", title="again", head="pact/code/widget", base="main")
    assert err.value.response.status_code == 422
    assert "A pull request already exists for acme:pact/code/widget." in err.value.response.text
    with pytest.raises(RequestFailed) as err:
        gh.rest.pulls.create("acme", "widgets", title="x", head="missing", base="main")
    assert err.value.response.status_code == 422
    github_sim.wait_for_deliveries()
    opened = [d.payload for d in github_sim.deliveries if d.event == "pull_request"]
    assert [(b["action"], b["sender"]["login"], b["sender"]["type"]) for b in opened] == [
        ("opened", "pact-bot[bot]", "Bot")
    ]


def test_pagination_follows_link_headers(github_sim: GitHubSim) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    number = github_sim.open_issue(repo, "Busy issue", "", "alice")
    for i in range(25):
        github_sim.comment(repo, number, f"comment {i}", "alice")
    gh = installation_client(github_sim)
    page = gh.rest.issues.list_comments("acme", "widgets", number, per_page=10, page=1)
    assert len(page.parsed_data) == 10
    assert 'rel="next"' in page.headers["link"] and "page=3" in page.headers["link"]
    everything = list(
        gh.rest.paginate(
            gh.rest.issues.list_comments,
            owner="acme",
            repo="widgets",
            issue_number=number,
            per_page=10,
        )
    )
    assert [c.body for c in everything] == [f"comment {i}" for i in range(25)]


# --- rate limits, errors --------------------------------------------------------------------


def test_secondary_rate_limit_is_answered_and_githubkit_waits_then_retries(
    github_sim: GitHubSim,
) -> None:
    github_sim.add_repo("acme", "widgets")
    gh = installation_client(github_sim)
    assert gh.rest.repos.get("acme", "widgets").headers["x-ratelimit-remaining"]
    github_sim.rate_limit(after=0, retry_after=1, status=403)
    started = time.monotonic()
    assert gh.rest.repos.get("acme", "widgets").parsed_data.name == "widgets"
    assert time.monotonic() - started >= 1.0
    statuses = [r.status for r in github_sim.requests if r.path == "/repos/acme/widgets"]
    assert statuses[-2:] == [403, 200]


def test_secondary_rate_limit_can_answer_429(github_sim: GitHubSim) -> None:
    github_sim.add_repo("acme", "widgets")
    token = github_sim.create_token()
    github_sim.rate_limit(after=1, retry_after=7, status=429)
    url = f"{github_sim.base_url}/repos/acme/widgets"
    headers = {"Authorization": f"token {token}"}
    assert httpx.get(url, headers=headers).status_code == 200
    limited = httpx.get(url, headers=headers)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert "secondary rate limit" in limited.json()["message"]
    assert httpx.get(url, headers=headers).status_code == 200


def test_unknown_routes_answer_404_like_github(github_sim: GitHubSim) -> None:
    token = github_sim.create_token()
    resp = httpx.get(
        f"{github_sim.base_url}/no/such/route", headers={"Authorization": f"token {token}"}
    )
    assert resp.status_code == 404
    assert resp.json()["message"] == "Not Found" and resp.json()["documentation_url"]
    assert github_sim.requests[-1].status == 404


# --- webhooks -------------------------------------------------------------------------------


def test_label_helper_delivers_a_signed_webhook_with_real_headers(
    github_sim: GitHubSim, receiver: Receiver
) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    number = github_sim.open_issue(repo, "Widget", "Implement docs/widget-spec.md", "alice")
    github_sim.label_issue(repo, number, "pact:code", "alice")
    log = github_sim.wait_for_deliveries()
    assert [(d.event, d.action, d.status) for d in log] == [
        ("issues", "opened", 202),
        ("issues", "labeled", 202),
    ]
    assert all(d.duration is not None for d in log)
    headers, raw = receiver.received[-1]
    assert headers["x-github-event"] == "issues"
    assert headers["x-github-delivery"] == log[-1].id
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    assert headers["content-type"] == "application/json"
    assert headers["x-github-hook-installation-target-type"] == "integration"
    assert headers["x-github-hook-installation-target-id"] == str(github_sim.app_id)
    assert headers["x-github-hook-id"]
    secret = github_sim.webhook_secret.encode()
    assert (
        headers["x-hub-signature-256"]
        == "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    )
    assert headers["x-hub-signature"] == "sha1=" + hmac.new(secret, raw, hashlib.sha1).hexdigest()
    body = json.loads(raw)
    assert body["action"] == "labeled" and body["label"]["name"] == "pact:code"
    assert body["issue"]["number"] == number
    assert body["issue"]["labels"][0]["name"] == "pact:code"
    assert body["repository"]["full_name"] == "acme/widgets"
    assert body["repository"]["clone_url"] == repo.clone_url
    assert body["installation"]["id"] == github_sim.installation_id
    assert body["sender"]["login"] == "alice"
    assert body["organization"]["login"] == "acme"


def test_redelivery_keeps_the_delivery_id(github_sim: GitHubSim, receiver: Receiver) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    number = github_sim.open_issue(repo, "Widget", "", "alice")
    github_sim.comment(repo, number, "/pact code", "alice")
    first = github_sim.wait_for_deliveries()[-1]
    again = github_sim.redeliver(first.id)
    github_sim.wait_for_deliveries()
    assert again.redelivery and again.id == first.id and again.status == 202
    (h1, b1), (h2, b2) = receiver.received[-2:]
    assert h1["x-github-delivery"] == h2["x-github-delivery"] == first.id
    assert b1 == b2
    assert json.loads(b2)["comment"]["body"] == "/pact code"


def test_bot_comment_is_announced_with_the_bot_as_sender(
    github_sim: GitHubSim, receiver: Receiver
) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    number = github_sim.open_issue(repo, "Widget", "", "alice")
    gh = installation_client(github_sim)
    gh.rest.issues.create_comment("acme", "widgets", number, body="👀 working on it")
    github_sim.wait_for_deliveries()
    body = github_sim.deliveries[-1].payload
    assert github_sim.deliveries[-1].event == "issue_comment"
    assert body["sender"] == body["comment"]["user"]
    assert body["sender"]["login"] == "pact-bot[bot]" and body["sender"]["type"] == "Bot"
    assert body["comment"]["performed_via_github_app"]["slug"] == "pact-bot"


def test_review_helper_delivers_review_with_comments(
    github_sim: GitHubSim, receiver: Receiver
) -> None:
    repo = github_sim.add_repo("acme", "widgets", {"src/w.py": "a = 1\n"})
    github_sim.add_user("carol", "write")
    pr = github_sim.open_pr(
        repo,
        "pact/code/widget",
        {"src/w.py": "a = 1\nb = 2\nc = 3\n"},
        "Implement widget",
        user="pact-bot[bot]",
    )
    review_id = github_sim.submit_review(
        repo,
        pr,
        "carol",
        "REQUEST_CHANGES",
        "A few things",
        comments=[
            {"path": "src/w.py", "line": 3, "body": "c should be 4"},
            {"path": "src/w.py", "start_line": 2, "line": 3, "body": "merge these"},
        ],
    )
    github_sim.wait_for_deliveries()
    review = next(d.payload for d in github_sim.deliveries if d.event == "pull_request_review")
    assert review["action"] == "submitted"
    assert review["review"]["id"] == review_id
    assert (
        review["review"]["state"] == "changes_requested"
        or review["review"]["state"] == "CHANGES_REQUESTED"
    )
    assert review["pull_request"]["number"] == pr
    comments = [
        d.payload["comment"]
        for d in github_sim.deliveries
        if d.event == "pull_request_review_comment"
    ]
    assert [c["pull_request_review_id"] for c in comments] == [review_id, review_id]
    assert comments[1]["start_line"] == 2 and comments[1]["line"] == 3
    assert comments[0]["diff_hunk"].endswith("+c = 3")


def test_check_run_button_press_delivers_requested_action(
    github_sim: GitHubSim, receiver: Receiver
) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    pr = github_sim.open_pr(
        repo, "spec/widget", {"docs/widget-spec.md": SPEC}, "Widget spec", user="alice"
    )
    gh = installation_client(github_sim)
    head = github_sim.pull(repo, pr)["head"]["sha"]
    run = gh.rest.checks.create(
        "acme",
        "widgets",
        name="pact-bot",
        head_sha=head,
        status="completed",
        conclusion="action_required",
        output={"title": "Spec", "summary": "Implement?"},
        actions=[{"label": "Implement", "description": "Run pact-bot", "identifier": "implement"}],
    ).parsed_data
    github_sim.press_check_run_action(repo, run.id, "implement", "alice")
    github_sim.wait_for_deliveries()
    pressed = github_sim.deliveries[-1].payload
    assert github_sim.deliveries[-1].event == "check_run"
    assert pressed["action"] == "requested_action"
    assert pressed["requested_action"] == {"identifier": "implement"}
    assert pressed["check_run"]["id"] == run.id
    assert pressed["check_run"]["pull_requests"][0]["number"] == pr
    assert pressed["sender"]["login"] == "alice"


def test_deliveries_without_a_receiver_are_logged_as_failed(github_sim: GitHubSim) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    github_sim.set_webhook_url("http://127.0.0.1:9/webhook")
    github_sim.open_issue(repo, "Widget", "", "alice")
    [delivery] = github_sim.wait_for_deliveries()
    assert delivery.status is None and delivery.error


# --- setup flow -----------------------------------------------------------------------------


def test_manifest_flow_registers_an_app_whose_credentials_work(github_sim: GitHubSim) -> None:
    manifest = {
        "name": "pact-bot test",
        "url": "https://example.com/pact-bot",
        "redirect_url": "http://127.0.0.1:1/setup/callback",
        "hook_attributes": {"url": "http://127.0.0.1:1/webhook"},
        "default_permissions": {"contents": "write", "issues": "write"},
        "default_events": ["issues"],
    }
    form = httpx.get(f"{github_sim.web_url}/settings/apps/new")
    assert form.status_code == 200 and 'name="manifest"' in form.text
    resp = httpx.post(
        f"{github_sim.web_url}/organizations/acme/settings/apps/new?state=s3",
        data={"manifest": json.dumps(manifest)},
    )
    assert resp.status_code == 302
    location = httpx.URL(resp.headers["location"])
    assert location.path == "/setup/callback" and location.params["state"] == "s3"
    code = location.params["code"]

    gh = GitHub(base_url=github_sim.base_url)
    conv = gh.rest.apps.create_from_manifest(code)
    assert conv.status_code == 201
    created = conv.parsed_data
    assert created.slug == "pact-bot-test" and created.owner and created.owner.login == "acme"
    assert created.pem.startswith("-----BEGIN") and created.webhook_secret

    new_app = GitHub(AppAuthStrategy(str(created.id), created.pem), base_url=github_sim.base_url)
    assert new_app.rest.apps.get_authenticated().parsed_data.id == created.id
    with pytest.raises(RequestFailed) as err:
        gh.rest.apps.create_from_manifest(code)
    assert err.value.response.status_code == 404


def test_every_webhook_body_parses_with_githubkit_models(
    github_sim: GitHubSim, receiver: Receiver, tmp_path: Path
) -> None:
    from githubkit_schemas.latest import models

    repo = github_sim.add_repo("acme", "widgets", {"src/w.py": "a = 1\n"})
    number = github_sim.open_issue(repo, "Widget", "Implement it", "alice")
    github_sim.label_issue(repo, number, "pact:code", "alice")
    github_sim.comment(repo, number, "/pact code", "alice")
    gh = installation_client(github_sim)
    bot_comment = gh.rest.issues.create_comment("acme", "widgets", number, body="👀").parsed_data
    gh.rest.issues.update_comment("acme", "widgets", bot_comment.id, body="done")
    pr = github_sim.open_pr(repo, "spec/w", {"src/w.py": "a = 1\nb = 2\n"}, "W", user="alice")
    github_sim.push_to_pr(repo, pr, {"docs/w-spec.md": SPEC}, user="alice")
    github_sim.label_issue(repo, pr, "pact:code", "alice")
    github_sim.submit_review(
        repo, pr, "alice", "COMMENTED", "", comments=[{"path": "src/w.py", "line": 2, "body": "b?"}]
    )
    root = github_sim.review_comments(repo, pr)[0]
    gh.rest.pulls.create_reply_for_review_comment("acme", "widgets", pr, root.id, body="ok")
    head = github_sim.pull(repo, pr)["head"]["sha"]
    run = gh.rest.checks.create(
        "acme",
        "widgets",
        name="pact-bot",
        head_sha=head,
        status="in_progress",
        actions=[{"label": "Implement", "description": "Run it", "identifier": "implement"}],
    ).parsed_data
    gh.rest.checks.update("acme", "widgets", run.id, conclusion="success")
    github_sim.press_check_run_action(repo, run.id, "implement", "alice")
    log = github_sim.wait_for_deliveries()
    kinds = {(d.event, d.action) for d in log}
    assert kinds == {
        ("issues", "opened"),
        ("issues", "labeled"),
        ("issue_comment", "created"),
        ("issue_comment", "edited"),
        ("pull_request", "opened"),
        ("pull_request", "synchronize"),
        ("pull_request", "labeled"),
        ("pull_request_review", "submitted"),
        ("pull_request_review_comment", "created"),
        ("check_run", "created"),
        ("check_run", "completed"),
        ("check_run", "requested_action"),
    }
    for delivery in log:  # validated by the model of exactly this event and action
        name = "Webhook" + "".join(
            part.title() for part in f"{delivery.event}_{delivery.action}".split("_")
        )
        event = getattr(models, name).model_validate_json(delivery.body)
        assert event.action == delivery.action
    assert all(d.status == 202 for d in log)


def test_gzipped_upload_pack_request_is_served(github_sim: GitHubSim) -> None:
    import gzip

    repo = github_sim.add_repo("acme", "widgets", {"README.md": "hello\n"})
    head = github_sim.branches(repo)["main"]
    token = github_sim.create_token(permissions={"contents": "read"})
    want = f"want {head} no-progress\n"
    request = f"{len(want) + 4:04x}{want}0000" + "0009done\n"
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    resp = httpx.post(
        f"{repo.clone_url}/git-upload-pack",
        content=gzip.compress(request.encode()),
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Encoding": "gzip",
        },
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-git-upload-pack-result"
    assert b"PACK" in resp.content


async def test_async_clients_and_async_delivery_wait(
    github_sim: GitHubSim, receiver: Receiver
) -> None:
    github_sim.add_repo("acme", "widgets")
    gh = installation_client(github_sim, repositories=["widgets"])
    repo = (await gh.rest.repos.async_get("acme", "widgets")).parsed_data
    assert repo.full_name == "acme/widgets"
    issue = github_sim.open_issue("acme/widgets", "Async", "", "alice")
    await gh.rest.issues.async_create_comment("acme", "widgets", issue, body="hi")
    log = await github_sim.wait_for_deliveries_async()
    assert [d.event for d in log] == ["issues", "issue_comment"]


def test_installation_endpoints_and_scoped_token_parse(github_sim: GitHubSim) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    gh = app_client(github_sim)
    inst = gh.rest.apps.get_installation(github_sim.installation_id).parsed_data
    assert inst.app_slug == "pact-bot" and inst.permissions.contents == "write"
    token = gh.rest.apps.create_installation_access_token(
        github_sim.installation_id,
        repositories=["widgets"],
        permissions={"contents": "read", "issues": "write"},
    )
    assert token.status_code == 201
    data = token.parsed_data
    assert data.token.startswith("ghs_") and data.repository_selection == "selected"
    assert [r.full_name for r in data.repositories or []] == [repo.full_name]
    assert data.permissions.contents == "read"
    app_jwt = jwt.encode(
        {
            "iss": str(github_sim.app_id),
            "iat": int(time.time()) - 30,
            "exp": int(time.time()) + 500,
        },
        github_sim.private_key_pem,
        algorithm="RS256",
    )
    as_app = httpx.get(
        f"{github_sim.base_url}/repos/acme/widgets", headers={"Authorization": f"Bearer {app_jwt}"}
    )
    assert as_app.status_code == 401  # a JWT is not an installation token


def test_review_comment_outside_the_diff_is_refused(github_sim: GitHubSim) -> None:
    repo = github_sim.add_repo("acme", "widgets", {"src/w.py": "a = 1\n"})
    pr = github_sim.open_pr(repo, "x", {"src/w.py": "a = 1\nb = 2\n"}, "X", user="alice")
    with pytest.raises(ValueError, match="not part of the diff"):
        github_sim.submit_review(
            repo,
            pr,
            "alice",
            "COMMENTED",
            "",
            comments=[{"path": "src/w.py", "line": 40, "body": "?"}],
        )


def test_pull_request_edits_and_closing_are_announced(
    github_sim: GitHubSim, receiver: Receiver
) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    pr = github_sim.open_pr(repo, "x", {"x.txt": "x\n"}, "Old title", user="alice")
    gh = installation_client(github_sim)
    gh.rest.pulls.update("acme", "widgets", pr, title="New title")
    closed = gh.rest.pulls.update("acme", "widgets", pr, state="closed").parsed_data
    assert closed.state == "closed"
    assert gh.rest.pulls.list("acme", "widgets", state="open").parsed_data == []
    log = github_sim.wait_for_deliveries()
    assert [d.action for d in log] == ["opened", "edited", "closed"]
    assert log[1].payload["changes"] == {"title": {"from": "Old title"}}


def test_revoked_tokens_are_refused(
    github_sim: GitHubSim,
) -> None:
    github_sim.add_repo("acme", "widgets")
    token = github_sim.create_token()
    url = f"{github_sim.base_url}/repos/acme/widgets"
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    github_sim.revoke_tokens()
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_malformed_json_is_answered_400(github_sim: GitHubSim) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    number = github_sim.open_issue(repo, "Widget", "", "alice")
    token = github_sim.create_token()
    resp = httpx.post(
        f"{github_sim.base_url}/repos/acme/widgets/issues/{number}/comments",
        content=b"{not json",
        headers={"Authorization": f"token {token}"},
    )
    assert resp.status_code == 400 and resp.json()["message"] == "Problems parsing JSON"
    assert github_sim.issue_comments(repo, number) == []
    assert github_sim.errors == []


def test_injected_failures_hit_only_matching_calls(github_sim: GitHubSim) -> None:
    repo = github_sim.add_repo("acme", "widgets")
    github_sim.commit(repo, "feature", {"f.txt": "f\n"}, "Feature")
    github_sim.fail(502, method="POST", path=r"/pulls$", message="Bad Gateway")
    gh = installation_client(github_sim)
    assert gh.rest.repos.get("acme", "widgets").status_code == 200
    token = github_sim.create_token()
    url = f"{github_sim.base_url}/repos/acme/widgets/pulls"
    data = {"title": "F", "head": "feature", "base": "main"}
    failed = httpx.post(url, json=data, headers={"Authorization": f"token {token}"})
    assert failed.status_code == 502 and failed.json()["message"] == "Bad Gateway"
    assert github_sim.pulls(repo) == []
    created = httpx.post(url, json=data, headers={"Authorization": f"token {token}"})
    assert created.status_code == 201


# --- the OAuth web flow (GitHub App user sign-in) ---------------------------------------------

CALLBACK = "http://127.0.0.1:9/auth/callback"


def _oauth_code(sim: GitHubSim, login: str = "alice", state: str = "st") -> str:
    query = {"client_id": sim.app.client_id, "redirect_uri": CALLBACK, "state": state}
    page = httpx.get(f"{sim.web_url}/login/oauth/authorize", params=query | {"login": login})
    assert page.status_code == 200 and 'value="alice"' in page.text
    back = httpx.post(f"{sim.web_url}/login/oauth/authorize", data=query | {"login": login})
    assert back.status_code == 302
    location = httpx.URL(back.headers["location"])
    assert str(location).startswith(CALLBACK) and location.params["state"] == state
    return location.params["code"]


def _trade(sim: GitHubSim, code: str, secret: str | None = None, **extra: str) -> dict[str, Any]:
    resp = httpx.post(
        f"{sim.web_url}/login/oauth/access_token",
        data={
            "client_id": sim.app.client_id,
            "client_secret": sim.app.client_secret if secret is None else secret,
            "code": code,
            **extra,
        },
        headers={"Accept": "application/json"},
    )
    assert resp.status_code == 200
    return resp.json()


def test_oauth_web_flow_gives_a_user_token_that_acts_as_the_user(github_sim: GitHubSim) -> None:
    github_sim.set_oauth_callback(CALLBACK)
    github_sim.add_repo("acme", "widgets")
    github_sim.add_repo("acme", "hidden")
    github_sim.add_user("alice", "none")
    github_sim.set_permission("acme/widgets", "alice", "read")
    answer = _trade(github_sim, _oauth_code(github_sim))
    token = answer["access_token"]
    assert token.startswith("ghu_") and answer["token_type"] == "bearer"
    gh = GitHub(TokenAuthStrategy(token), base_url=github_sim.base_url)
    assert gh.rest.users.get_authenticated().json()["login"] == "alice"
    assert gh.rest.repos.get("acme", "widgets").json()["permissions"]["push"] is False
    with pytest.raises(RequestFailed) as hidden:
        gh.rest.repos.get("acme", "hidden")
    assert hidden.value.response.status_code == 404
    with pytest.raises(RequestFailed) as write:
        gh.rest.pulls.update("acme", "widgets", 1, title="x")
    assert write.value.response.status_code == 403
    github_sim.set_permission("acme/widgets", "alice", "write")
    assert gh.rest.repos.get("acme", "widgets").json()["permissions"]["push"] is True
    # an installation token is no user
    app_gh = GitHub(TokenAuthStrategy(github_sim.create_token()), base_url=github_sim.base_url)
    with pytest.raises(RequestFailed) as not_user:
        app_gh.rest.users.get_authenticated()
    assert not_user.value.response.status_code == 403


def test_oauth_codes_are_single_use_expire_and_need_the_right_secret(
    github_sim: GitHubSim,
) -> None:
    github_sim.set_oauth_callback(CALLBACK)
    github_sim.add_user("alice", "write")
    code = _oauth_code(github_sim)
    assert _trade(github_sim, code, secret="wrong")["error"] == "incorrect_client_credentials"
    code = _oauth_code(github_sim)
    assert "access_token" in _trade(github_sim, code)
    assert _trade(github_sim, code)["error"] == "bad_verification_code"  # used
    code = _oauth_code(github_sim)
    other = _trade(github_sim, code, redirect_uri="http://127.0.0.1:9/elsewhere")
    assert other["error"] == "redirect_uri_mismatch"
    now = time.time()
    code = _oauth_code(github_sim)
    github_sim.clock = lambda: now + 601
    assert _trade(github_sim, code)["error"] == "bad_verification_code"  # expired


def test_oauth_authorize_refuses_unknown_clients_and_foreign_redirects(
    github_sim: GitHubSim,
) -> None:
    authorize = f"{github_sim.web_url}/login/oauth/authorize"
    ok = {"client_id": github_sim.app.client_id, "redirect_uri": CALLBACK, "state": "s"}
    assert httpx.get(authorize, params=ok).status_code == 400  # no callback URL registered
    github_sim.set_oauth_callback(CALLBACK)
    assert httpx.get(authorize, params=ok).status_code == 200
    assert httpx.get(authorize, params=ok | {"client_id": "Iv1.nobody"}).status_code == 404
    for evil in ("http://evil.example/auth/callback", "http://127.0.0.1:10/auth/callback"):
        assert httpx.get(authorize, params=ok | {"redirect_uri": evil}).status_code == 400
    unknown = httpx.post(authorize, data=ok | {"login": "nobody"})
    assert unknown.status_code == 401


def test_push_webhook_compare_and_issue_creation_match_githubs_shapes(
    github_sim: GitHubSim, receiver: Receiver
) -> None:
    from githubkit_schemas.latest import models

    repo = github_sim.add_repo("acme", "widgets", {"docs/w-spec.md": "# W\n\n## A\nOne.\n"})
    before = github_sim.branches(repo)["main"]
    after = github_sim.push(
        repo, "main", {"docs/w-spec.md": "# W\n\n## A\nTwo.\n", "src/w.py": "x = 1\n"}, user="alice"
    )
    gh = installation_client(github_sim)
    issue = gh.rest.issues.create("acme", "widgets", title="Drift", body="b").parsed_data
    log = github_sim.wait_for_deliveries()
    push = [d for d in log if d.event == "push"]
    assert len(push) == 1
    event = models.WebhookPush.model_validate_json(push[0].body)
    assert (event.ref, event.before, event.after) == ("refs/heads/main", before, after)
    assert event.sender is not None and event.sender.login == "alice"
    assert event.head_commit is not None and event.head_commit.modified == ["docs/w-spec.md"]
    assert event.head_commit.added == ["src/w.py"]
    assert ("issues", "opened") in {(d.event, d.action) for d in log}
    assert issue.title == "Drift" and issue.user is not None
    assert issue.user.login == github_sim.bot_login

    cmp = gh.rest.repos.compare_commits("acme", "widgets", f"{before}...{after}").parsed_data
    assert isinstance(cmp, models.CommitComparison)
    assert (cmp.status, cmp.ahead_by, cmp.behind_by) == ("ahead", 1, 0)
    assert [c.sha for c in cmp.commits] == [after]
    assert cmp.base_commit.sha == before == cmp.merge_base_commit.sha
    by_name = {f.filename: f for f in cmp.files or []}
    assert by_name["docs/w-spec.md"].status == "modified"
    assert "-One.\n+Two." in (by_name["docs/w-spec.md"].patch or "")
    assert by_name["src/w.py"].status == "added"
    with pytest.raises(RequestFailed) as err:
        gh.rest.repos.compare_commits("acme", "widgets", f"{before}...{'f' * 40}")
    assert err.value.response.status_code == 404
