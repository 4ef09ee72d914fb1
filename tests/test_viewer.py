"""The run viewer in-process: GitHub sign-in against the simulator's OAuth web flow, who sees
which job, forged cookies and states, and the transcript rendered safely.

The app runs on httpx's ASGI transport at http://testserver (its PACT_PUBLIC_URL); the
GitHub simulator is a real server, so the code exchange, `GET /user` and the permission
checks with the user's token are real HTTP calls that the simulator authorises strictly.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from test_setup_flow import CHROMIUM, CHROMIUM_ARGS, Served, _clean_env

from pact_bot.agent.transcript import Transcript
from pact_bot.jobs.model import Job, JobKind, JobState
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.settings import Settings
from pact_bot.web import signin
from pact_bot.web.app import create_app
from pact_bot.web.links import job_url
from pact_bot.web.session import Signer

PUBLIC = "http://testserver"


def code_job(repo: str, number: int) -> Job:
    return Job(
        kind=JobKind.code,
        key=Job.key_for(repo, number),
        repo=repo,
        number=number,
        delivery_id=f"d-{repo}-{number}",
        sender="octocat",
        task={"trigger": "label", "fingerprint": f"{repo}{number}"},
    )


def alice_writes_widgets_and_reads_secret(github_sim: Any) -> None:
    github_sim.add_repo("acme", "widgets", files={"README.md": "widgets\n"})
    github_sim.add_repo("acme", "secret", files={"README.md": "secret\n"})
    github_sim.add_user("alice", "none")
    github_sim.set_permission("acme/widgets", "alice", "write")
    github_sim.set_permission("acme/secret", "alice", "read")


def write_tool_result(
    t: Transcript, turn: int, tool_use_id: str, content: str, **more: Any
) -> None:
    """The request of `turn`, which answers the tool call `tool_use_id` with `content`."""
    block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content, **more}
    t.write("request", turn=turn, messages=[{"role": "user", "content": [block]}])


@dataclass
class Viewer:
    app: Any
    queue: SqliteQueue
    settings: Settings
    sim: Any

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=PUBLIC)

    async def add_job(self, repo: str, number: int = 1, **fields: Any) -> Job:
        job = code_job(repo, number)
        await self.queue.enqueue(job)
        if fields:
            await self.queue.update(job.id, **fields)
        return job

    def transcript(self, job: Job) -> Transcript:
        return Transcript.for_job(self.settings.pact_data_dir, job.id, self.settings.secrets())


@pytest.fixture
async def viewer(github_sim: Any, tmp_path: Path) -> AsyncIterator[Viewer]:
    github_sim.set_oauth_callback(f"{PUBLIC}/auth/callback")
    alice_writes_widgets_and_reads_secret(github_sim)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        github_app_id=github_sim.app_id,
        github_private_key=github_sim.private_key_pem,
        github_webhook_secret=github_sim.webhook_secret,
        github_api_url=github_sim.base_url,
        github_web_url=github_sim.web_url,
        github_client_id=github_sim.app.client_id,
        github_client_secret=github_sim.app.client_secret,
        pact_public_url=PUBLIC,
        pact_data_dir=tmp_path / "data",
        pact_database_url=f"sqlite:///{tmp_path}/q.db",
    )
    queue = SqliteQueue(tmp_path / "q.db")
    await queue.open()
    app = create_app(settings, queue)
    yield Viewer(app, queue, settings, github_sim)
    await queue.close()


async def _authorize(sim: Any, authorize_url: str, login: str) -> str:
    """What the user does on GitHub's "Authorize" page: the URL GitHub sends them back to."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    async with httpx.AsyncClient() as gh:
        page = await gh.get(authorize_url)
        assert page.status_code == 200 and "Authorize" in page.text
        back = await gh.post(
            f"{sim.web_url}/login/oauth/authorize",
            data={**query, "login": login},
        )
    assert back.status_code == 302, back.text
    return back.headers["location"]


async def sign_in(client: httpx.AsyncClient, sim: Any, login: str, next_: str = "/jobs") -> None:
    start = await client.get("/login", params={"next": next_})
    assert start.status_code == 302
    back = await _authorize(sim, start.headers["location"], login)
    assert back.startswith(f"{PUBLIC}/auth/callback?")
    done = await client.get(back.removeprefix(PUBLIC))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == next_


# -- without a session ----------------------------------------------------------------------


async def test_pages_without_a_session_redirect_to_sign_in(viewer: Viewer) -> None:
    job = await viewer.add_job("acme/widgets")
    async with viewer.client() as c:
        r = await c.get("/jobs")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fjobs"
        r = await c.get(f"/jobs/{job.id}")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        assert (await c.get(f"/jobs/{job.id}/events")).status_code == 401
        # /login goes to the simulator's authorize page with the App's client id
        r = await c.get("/login")
        target = urlsplit(r.headers["location"])
        assert f"{target.scheme}://{target.netloc}" == viewer.sim.web_url
        assert target.path == "/login/oauth/authorize"
        q = parse_qs(target.query)
        assert q["client_id"] == [viewer.sim.app.client_id]
        assert q["redirect_uri"] == [f"{PUBLIC}/auth/callback"]
        assert viewer.sim.app.client_secret not in r.headers["location"]


async def test_forged_and_tampered_session_cookies_are_redirected(viewer: Viewer) -> None:
    await viewer.add_job("acme/widgets")
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        good = c.cookies["pact_session"]
        assert (await c.get("/jobs")).status_code == 200
    sid, mac = good.rsplit(".", 1)
    other_key = Signer(b"k" * 48, "session").sign(sid)
    forged = [
        sid,  # the id without a signature
        f"{sid}x.{mac}",  # another id under the old signature
        f"{sid}.{mac[:-2]}AA",  # a changed signature
        other_key,  # signed with another server's key
        Signer(b"k" * 48, "session").sign("made-up-session"),
    ]
    for value in forged:
        async with viewer.client() as c:
            c.cookies.set("pact_session", value)
            r = await c.get("/jobs")
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), value


async def test_a_callback_not_started_in_this_browser_is_refused(viewer: Viewer) -> None:
    async with viewer.client() as victim, viewer.client() as attacker:
        # the attacker starts a sign-in and gets GitHub's answer for their own account...
        start = await attacker.get("/login")
        back = await _authorize(viewer.sim, start.headers["location"], "alice")
        # ...and makes the victim's browser open it: no state cookie there
        r = await victim.get(back.removeprefix(PUBLIC))
        assert r.status_code == 403 and "not started in this browser" in r.text
        assert "pact_session" not in victim.cookies
        # the victim's own sign-in with the attacker's state is refused as well
        await victim.get("/login")
        r = await victim.get(back.removeprefix(PUBLIC))
        assert r.status_code == 403 and "pact_session" not in victim.cookies
        assert (await victim.get("/jobs")).status_code == 303


async def test_a_state_that_does_not_match_the_cookie_is_refused(viewer: Viewer) -> None:
    async with viewer.client() as c:
        start = await c.get("/login")
        back = await _authorize(viewer.sim, start.headers["location"], "alice")
        parts = urlsplit(back)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        r = await c.get("/auth/callback", params={"code": q["code"], "state": q["state"] + "x"})
        assert r.status_code == 403 and "pact_session" not in c.cookies
        # GitHub's code was not spent on a refused callback: the right state still works
        r = await c.get("/auth/callback", params=q)
        assert r.status_code == 303 and "pact_session" in c.cookies


async def test_a_code_github_refuses_signs_nobody_in(viewer: Viewer) -> None:
    async with viewer.client() as c:
        start = await c.get("/login")
        back = await _authorize(viewer.sim, start.headers["location"], "alice")
        viewer.sim.oauth_codes.clear()  # expired or used elsewhere
        r = await c.get(back.removeprefix(PUBLIC))
        assert r.status_code == 502 and "bad_verification_code" in r.text
        assert "pact_session" not in c.cookies


# -- who sees what --------------------------------------------------------------------------


async def test_a_viewer_sees_only_jobs_of_repositories_they_can_push_to(viewer: Viewer) -> None:
    mine = await viewer.add_job("acme/widgets", 3)
    theirs = await viewer.add_job("acme/secret", 4)
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        page = (await c.get("/jobs")).text
        assert f"/jobs/{mine.id}" in page and "acme/widgets#3" in page
        assert theirs.id not in page and "acme/secret" not in page
        assert "Signed in as <strong>alice</strong>" in page
        assert (await c.get(f"/jobs/{mine.id}")).status_code == 200
        refused = await c.get(f"/jobs/{theirs.id}")
        assert refused.status_code == 403 and "cannot push" in refused.text
        assert (await c.get(f"/jobs/{theirs.id}/events")).status_code == 403
        assert (await c.get("/jobs/nosuchjob")).status_code == 404
    # asked with alice's own token, never the App's installation token
    checks = [r for r in viewer.sim.requests if r.path.startswith("/repos/acme/")]
    assert checks and all((r.token or "").startswith("ghu_") for r in checks)


async def test_a_read_only_collaborator_sees_no_jobs_of_that_repository(viewer: Viewer) -> None:
    job = await viewer.add_job("acme/widgets")
    viewer.sim.add_user("reader", "none")
    viewer.sim.set_permission("acme/widgets", "reader", "read")
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "reader")
        page = await c.get("/jobs")
        assert page.status_code == 200 and job.id not in page.text
        assert "No jobs of repositories you can write to" in page.text
        assert (await c.get(f"/jobs/{job.id}")).status_code == 403


async def test_permission_answers_are_cached_briefly(viewer: Viewer) -> None:
    job = await viewer.add_job("acme/widgets")
    now = [1000.0]
    viewer.app.state.auth.clock = lambda: now[0]

    def asked() -> int:
        return sum(1 for r in viewer.sim.requests if r.path == "/repos/acme/widgets")

    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        await c.get(f"/jobs/{job.id}")
        first = asked()
        await c.get(f"/jobs/{job.id}")
        assert asked() == first == 1
        # alice loses write access; within the minute the cached answer stands, then not
        viewer.sim.set_permission("acme/widgets", "alice", "read")
        now[0] += signin.ACCESS_TTL + 1
        assert (await c.get(f"/jobs/{job.id}")).status_code == 403
        assert asked() == 2


async def test_github_failing_the_permission_check_is_an_error_page_not_a_leak(
    viewer: Viewer,
) -> None:
    job = await viewer.add_job("acme/widgets")
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        viewer.sim.fail(502, method="GET", path=r"^/repos/acme/widgets$", count=2)
        listing = await c.get("/jobs")
        assert listing.status_code == 502 and job.id not in listing.text
        page = await c.get(f"/jobs/{job.id}")
        assert page.status_code == 502 and "Transcript" not in page.text
        # a failure is not cached: GitHub answers again, the job shows again
        assert (await c.get(f"/jobs/{job.id}")).status_code == 200


async def test_sign_out_forgets_the_session_on_the_server(viewer: Viewer) -> None:
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        cookie = c.cookies["pact_session"]
        sessions = list((viewer.settings.pact_data_dir / "sessions").iterdir())
        assert len(sessions) == 1 and sessions[0].stat().st_mode & 0o777 == 0o600
        token = re.search(r'"token": "([^"]+)"', sessions[0].read_text())
        assert token and token.group(1).startswith("ghu_") and token.group(1) not in cookie
        r = await c.post("/logout")
        assert r.status_code == 303
    assert not list((viewer.settings.pact_data_dir / "sessions").iterdir())
    async with viewer.client() as c:
        c.cookies.set("pact_session", cookie)  # the old cookie is worth nothing now
        assert (await c.get("/jobs")).status_code == 303


async def test_a_sign_out_posted_from_another_site_is_refused(viewer: Viewer) -> None:
    """Logout CSRF: a page elsewhere auto-submitting a form to /logout."""
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site", "Origin": PUBLIC},
        ):
            r = await c.post("/logout", headers=headers)
            assert r.status_code == 403 and "set-cookie" not in r.headers, headers
            assert (await c.get("/jobs")).status_code == 200  # still signed in
        r = await c.post("/logout", headers={"Origin": PUBLIC, "Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 303
        assert (await c.get("/jobs")).status_code == 303


async def test_a_revoked_user_token_means_signing_in_again(viewer: Viewer) -> None:
    job = await viewer.add_job("acme/widgets")
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        viewer.sim.revoke_tokens()
        r = await c.get(f"/jobs/{job.id}")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_login_redirects_only_to_paths_on_this_server(viewer: Viewer) -> None:
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice", next_="/jobs")
        for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            start = await c.get("/login", params={"next": evil})
            back = await _authorize(viewer.sim, start.headers["location"], "alice")
            done = await c.get(back.removeprefix(PUBLIC))
            assert done.headers["location"] == "/jobs", evil


# -- the job page ---------------------------------------------------------------------------


async def test_the_job_page_shows_trigger_timeline_cost_tokens_and_turns(viewer: Viewer) -> None:
    job = await viewer.add_job("acme/widgets", 7)
    claimed = await viewer.queue.claim("w1")
    assert claimed is not None and claimed.id == job.id
    await viewer.queue.update(job.id, cost_usd=0.0123, turns=1)
    t = viewer.transcript(job)
    t.write(
        "start",
        model="claude-sonnet-5-5",
        tools=["bash", "str_replace_based_edit_tool"],
        budget={"max_turns": 60, "max_cost_usd": 5.0, "max_seconds": 1800},
        system="Be good.",
    )
    t.write("request", turn=1, messages=[{"role": "user", "content": "Implement the spec."}])
    t.write(
        "response",
        turn=1,
        stop_reason="tool_use",
        content=[
            {"type": "text", "text": "I will edit app.py."},
            {
                "type": "tool_use",
                "id": "tu1",
                "name": "str_replace_based_edit_tool",
                "input": {
                    "command": "str_replace",
                    "path": "/workspace/app.py",
                    "old_str": "return 1",
                    "new_str": "return 2",
                },
            },
        ],
        usage={
            "input_tokens": 1200,
            "output_tokens": 80,
            "cache_read_tokens": 0,
            "cache_write_tokens": 900,
        },
        cost_usd=0.0123,
    )
    write_tool_result(t, 2, "tu1", "The file was edited.")
    t.write("phase", phase="checking the result")  # a pipeline phase, when one is recorded
    diff = "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-a\n+b"
    write_tool_result(t, 3, "tu2", diff)
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        r = await c.get(f"/jobs/{job.id}")
    page = r.text
    assert r.status_code == 200
    assert "<span class=hunk>@@ -1 +1 @@</span><span class=del>-a</span><span class=add>+b" in page
    assert "code (label) by <strong>octocat</strong>" in page
    assert "acme/widgets#7" in page and "running" in page
    assert "$0.0123 over 1 turns" in page
    assert "1,200 in, 80 out, 0 cache read, 900 cache write" in page
    timeline = page[page.index("id=timeline") : page.index("</ol>", page.index("id=timeline"))]
    assert "queued" in timeline and "started (attempt 1)" in timeline
    assert "agent started (claude-sonnet-5-5)" in timeline
    assert "checking the result" in timeline
    assert "I will edit app.py." in page
    assert "<span class=del>-return 1</span><span class=add>+return 2</span>" in page
    assert "← str_replace_based_edit_tool: The file was edited." in page
    assert "data-events='/jobs/" in page  # still running: the page listens for more
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


async def test_model_text_is_shown_as_text_never_as_markup(viewer: Viewer) -> None:
    job = await viewer.add_job("acme/widgets")
    t = viewer.transcript(job)
    hostile = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"
    t.write(
        "response",
        turn=1,
        stop_reason="tool_use",
        content=[
            {"type": "text", "text": hostile + "\x1b]0;owned\x07 \u202eevil"},
            {
                "type": "tool_use",
                "id": "t1",
                "name": "bash",
                "input": {"command": "echo '</pre><script>x()</script>'"},
            },
        ],
        usage={},
        cost_usd=0,
    )
    write_tool_result(t, 2, "t1", "</details><b onclick=x>hi</b>", is_error=True)
    t.write("stop", stop="error", error="<iframe src=//evil>", turns=1, cost_usd=0, duration_s=1)
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        page = (await c.get(f"/jobs/{job.id}")).text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert "<script>x()" not in page and "&lt;/pre&gt;&lt;script&gt;x()" in page
    assert "<b onclick" not in page and "&lt;b onclick=x&gt;" in page
    assert "<iframe" not in page and "&lt;iframe src=//evil&gt;" in page
    assert "\x1b" not in page and "\\x1b]0;owned\\x07" in page
    assert "\u202e" not in page and "\\u202eevil" in page
    # the only script is the viewer's own file
    assert re.findall(r"<script[^>]*>", page) == ["<script src='/static/viewer.js' defer>"]


async def test_events_of_a_finished_job_send_the_rest_and_end(viewer: Viewer) -> None:
    job = await viewer.add_job("acme/widgets")
    claimed = await viewer.queue.claim("w1")
    assert claimed is not None
    t = viewer.transcript(job)
    t.write("request", turn=1, messages=[{"role": "user", "content": "first"}])
    async with viewer.client() as c:
        await sign_in(c, viewer.sim, "alice")
        page = (await c.get(f"/jobs/{job.id}")).text
        url = re.search(r"data-events='([^']+)'", page)
        assert url is not None
        t.write(
            "response",
            turn=1,
            stop_reason="end_turn",
            content=[{"type": "text", "text": "second <b>"}],
            usage={},
            cost_usd=0,
        )
        await viewer.queue.finish(job.id, "w1", JobState.succeeded)
        r = await c.get(url.group(1))
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e.startswith("event:")]
    kinds = [e.split("\n", 1)[0] for e in events]
    assert kinds == ["event: state", "event: entry", "event: end"]
    assert "data: succeeded" in events[0]
    assert "second &lt;b&gt;" in events[1] and "first" not in events[1]


async def test_job_url_is_the_public_page_of_the_job(viewer: Viewer) -> None:
    assert job_url(viewer.settings, "abc123") == f"{PUBLIC}/jobs/abc123"
    assert job_url(viewer.settings.model_copy(update={"pact_public_url": None}), "a") is None
    no_oauth = viewer.settings.model_copy(update={"github_client_secret": None})
    assert job_url(no_oauth, "a") is None


async def test_sign_in_without_oauth_credentials_says_what_is_missing(
    viewer: Viewer,
) -> None:
    viewer.app.state.settings = viewer.settings.model_copy(update={"github_client_id": None})
    async with viewer.client() as c:
        r = await c.get("/login")
    assert r.status_code == 503 and "GITHUB_CLIENT_ID" in r.text


# -- the home page --------------------------------------------------------------------------


async def test_home_page_lists_the_checks_and_the_first_steps_without_secrets(
    viewer: Viewer,
) -> None:
    async with viewer.client() as c:
        r = await c.get("/")
    page = r.text
    assert "width=device-width" in page and "/static/pact.css" in page
    assert "✓</span><strong>GitHub App JWT accepted</strong>" in page
    assert "✓</span><strong>webhook secret set</strong>" in page
    assert "✗</span><strong>Anthropic key accepted</strong>: ANTHROPIC_API_KEY is not set" in page
    assert "<strong>public URL set</strong>" in page
    assert "<strong>database reachable and migrated</strong>" in page
    assert f"{viewer.sim.web_url}/apps/pact-bot/installations/new" in page
    secrets = [
        viewer.sim.webhook_secret,
        viewer.sim.app.client_secret,
        viewer.sim.private_key_pem.splitlines()[1],
    ]
    assert not any(s in page for s in secrets)
    css = await viewer.client().get("/static/pact.css")
    assert css.headers["content-type"].startswith("text/css") and "max-width" in css.text


# -- in a real browser, against `pact-bot serve` --------------------------------------------


def _queue_sync(db: Path, fn: Any) -> Any:
    """Run `fn(queue)` on the server's SQLite queue from the test (another process), in a
    thread of its own: Playwright's sync API keeps an event loop running in this one."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    async def go() -> Any:
        async with SqliteQueue(db) as q:
            return await fn(q)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.timeout(180)
def test_in_a_browser_sign_in_list_watch_live_and_be_refused(
    github_sim: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    alice_writes_widgets_and_reads_secret(github_sim)
    db = tmp_path / "pact-bot.db"
    data = tmp_path / "data"
    env = (
        _clean_env()
        | github_sim.env()
        | {
            "GITHUB_CLIENT_ID": github_sim.app.client_id,
            "GITHUB_CLIENT_SECRET": github_sim.app.client_secret,
            "PACT_WORKERS": "0",
            "PACT_DATABASE_URL": f"sqlite:///{db}",
            "PACT_DATA_DIR": str(data),
            "PYTHONUNBUFFERED": "1",
        }
    )
    server = Served(tmp_path, env)
    try:
        url = server.url
        github_sim.set_oauth_callback(f"{url}/auth/callback")

        mine, theirs = code_job("acme/widgets", 5), code_job("acme/secret", 6)

        async def setup(q: SqliteQueue) -> None:
            await q.enqueue(mine)
            await q.enqueue(theirs)
            claimed = await q.claim("w-test")
            assert claimed is not None and claimed.id == mine.id

        _queue_sync(db, setup)
        transcript = Transcript.for_job(data, mine.id)
        transcript.write("request", turn=1, messages=[{"role": "user", "content": "Do it."}])
        transcript.write(
            "response",
            turn=1,
            stop_reason="tool_use",
            content=[
                {"type": "text", "text": "Looking at the spec first."},
                {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "ls"}},
            ],
            usage={"input_tokens": 10, "output_tokens": 5},
            cost_usd=0.001,
        )

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                # without a session: off to GitHub's sign-in
                anon = browser.new_page()
                anon.goto(f"{url}/jobs/{mine.id}")
                assert anon.url.startswith(f"{github_sim.web_url}/login/oauth/authorize?")
                anon.close()

                page = browser.new_page()
                page.goto(f"{url}/jobs")
                page.wait_for_url(re.compile(re.escape(github_sim.web_url) + "/login/oauth/"))
                page.fill("#login", "alice")
                page.click("#authorize")
                page.wait_for_url(f"{url}/jobs")
                listing = page.inner_text("main")
                assert "acme/widgets#5" in listing and "acme/secret" not in listing
                assert "Signed in as alice" in page.inner_text("header")

                page.click(f"a[href='/jobs/{mine.id}']")
                page.wait_for_url(f"{url}/jobs/{mine.id}")
                assert "Looking at the spec first." in page.inner_text("#transcript")
                page.wait_for_selector("#live:has-text('Live')")
                # the agent goes on: its next turn appears without a reload
                write_tool_result(transcript, 2, "t1", "spec.md")
                transcript.write(
                    "response",
                    turn=2,
                    stop_reason="end_turn",
                    content=[{"type": "text", "text": "Done <b>now</b>."}],
                    usage={"input_tokens": 20, "output_tokens": 7},
                    cost_usd=0.002,
                )
                page.wait_for_selector("#transcript :text('Done <b>now</b>.')", timeout=15_000)
                assert "← bash: spec.md" in page.inner_text("#transcript")
                assert page.locator("#transcript b").count() == 0  # text, not markup

                async def finish(q: SqliteQueue) -> None:
                    await q.finish(mine.id, "w-test", JobState.succeeded)

                _queue_sync(db, finish)
                page.wait_for_selector("#state:has-text('succeeded')", timeout=15_000)
                page.wait_for_selector("#live:has-text('finished')", timeout=15_000)

                refused = page.goto(f"{url}/jobs/{theirs.id}")
                assert refused is not None and refused.status == 403
                assert "cannot push" in page.inner_text("main")
            finally:
                browser.close()
    finally:
        server.stop()
    # the user's token never reached the log
    tokens = [t for t in github_sim.auth.tokens if t.startswith("ghu_")]
    assert tokens and not any(t in line for t in tokens for line in server.lines)
    assert not any(github_sim.app.client_secret in line for line in server.lines)
