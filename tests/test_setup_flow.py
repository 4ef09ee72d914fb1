"""Registering the GitHub App from app.yml: in a real browser, then the edges in-process.

The browser test runs `pact-bot serve` with no App, lets headless Chromium press the
"Register GitHub App" button, and the GitHub simulator plays github.com (the manifest form's
target and the code conversion). Afterwards the server must be the new App without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from dotenv import dotenv_values
from starlette.testclient import TestClient

from pact_bot.cli import main as cli
from pact_bot.jobs.sqlite import SqliteQueue
from pact_bot.settings import Settings, load_settings
from pact_bot.web import setup_credentials, setup_manifest, setup_state, setup_token
from pact_bot.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PERMISSIONS = {
    "contents": "write",
    "pull_requests": "write",
    "issues": "write",
    "checks": "write",
    "actions": "read",
    "metadata": "read",
}
EVENTS = [
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "check_run",
    "push",
    "check_suite",
]


def _clean_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PACT_", "ANTHROPIC_"))
    }


def _sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _ping(url: str, secret: str | None) -> int:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    headers = {
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": f"d-{time.monotonic_ns()}",
        "Content-Type": "application/json",
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = _sign(secret, body)
    return httpx.post(f"{url}/webhook", content=body, headers=headers, timeout=10).status_code


class Served:
    """`pact-bot serve` in a subprocess; its JSON log lines are kept for later checks."""

    url: str

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pact_bot.cli", "serve", "--port", "0"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(30) or self._port is None:
            self.stop()
            raise AssertionError("pact-bot serve did not start:\n" + "\n".join(self.lines))
        self.url = f"http://127.0.0.1:{self._port}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if self._port is None and '"listening"' in line:
                self._port = int(json.loads(line)["port"])
                self._ready.set()
        self._ready.set()

    def setup_link(self) -> str:
        """The one-time link the start-up log offers (what the operator copies)."""
        for line in self.lines:
            if "one-time link" in line:
                return str(json.loads(line)["url"])
        raise AssertionError("no setup link in the log:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def unregistered_server(github_sim: Any, tmp_path: Path) -> Iterator[Served]:
    env = _clean_env() | {
        "GITHUB_API_URL": github_sim.base_url,
        "GITHUB_WEB_URL": github_sim.web_url,
        "PACT_WORKERS": "1",  # in-process workers switch to the new App too
        "PACT_DATABASE_URL": f"sqlite:///{tmp_path / 'pact-bot.db'}",
        "PACT_DATA_DIR": str(tmp_path / "data"),
        "PYTHONUNBUFFERED": "1",
    }
    server = Served(tmp_path, env)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.timeout(120)
def test_register_in_a_browser_writes_env_and_the_server_becomes_the_app(
    github_sim: Any, unregistered_server: Served, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url = unregistered_server.url
    assert _ping(url, "anything") == 503  # no App yet: webhooks are refused
    link = unregistered_server.setup_link()
    token = httpx.URL(link).params["token"]
    assert link == f"{url}/setup?token={token}" and len(token) >= 40
    token_file = tmp_path / "data" / "setup-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{url}/")
            assert "GITHUB_APP_ID" in page.content()  # the home page says what is missing
            assert "Register GitHub App" not in page.content()  # not without the token
            page.goto(link)
            assert page.url == f"{url}/setup"  # the token left the address bar at once
            page.get_by_role("button", name="Register GitHub App").click()
            page.wait_for_url(re.compile(re.escape(url) + r"/setup\?code=.+&state=.+"))
            page.wait_for_load_state()
            assert "is registered" in page.content()
            install = page.locator("a#install").get_attribute("href")
            callback = page.url
            shown = page.content()
            # The saved OAuth credentials work at once: sign in to the run viewer with them.
            github_sim.add_user("alice", "write")
            page.goto(f"{url}/jobs")
            authorize = re.escape(github_sim.web_url) + r"/login/oauth/authorize\?.+"
            page.wait_for_url(re.compile(authorize))
            page.fill("#login", "alice")
            page.click("#authorize")
            page.wait_for_url(f"{url}/jobs")
            assert "Signed in as alice" in page.inner_text("header")
        finally:
            browser.close()

    [app] = github_sim.registered_apps
    assert install == f"{github_sim.web_url}/apps/{app.slug}/installations/new"
    # The manifest GitHub received is app.yml, pointed at this server.
    assert app.webhook_url == f"{url}/webhook"
    assert app.permissions == PERMISSIONS and app.events == EVENTS

    env_file = tmp_path / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dotenv_values(env_file)
    assert values["GITHUB_APP_ID"] == str(app.id)
    assert values["GITHUB_PRIVATE_KEY"].strip() == app.private_key_pem.strip()
    assert values["GITHUB_WEBHOOK_SECRET"] == app.webhook_secret
    assert values["GITHUB_APP_SLUG"] == app.slug
    # The App's OAuth credentials too, for signing in to the run viewer at its callback URL.
    assert values["GITHUB_CLIENT_ID"] == app.client_id
    assert values["GITHUB_CLIENT_SECRET"] == app.client_secret
    assert app.callback_urls == [f"{url}/auth/callback"]
    # Secrets never reach the browser or the log.
    for secret in (app.webhook_secret, app.private_key_pem.splitlines()[1], app.client_secret):
        assert secret not in shown
        assert not any(secret in line for line in unregistered_server.lines)

    # The running server uses the new App at once: the new secret verifies, others do not.
    assert _ping(url, app.webhook_secret) == 200
    assert _ping(url, github_sim.webhook_secret) == 401
    assert _ping(url, None) == 401
    home = httpx.get(f"{url}/", timeout=10).text
    assert "The GitHub App is configured" in home and "Register GitHub App" not in home
    # The token is used up, and it never went to GitHub.
    assert not token_file.exists()
    assert token not in callback and token not in json.dumps(app.__dict__, default=str)
    assert httpx.get(link, timeout=10, follow_redirects=True).url.path == "/setup"
    # A replayed redirect is refused: no token, and the state was used.
    assert httpx.get(callback, timeout=10).status_code == 403
    # And the credentials on disk are accepted by GitHub as that App.
    doctor = subprocess.run(
        [sys.executable, "-m", "pact_bot.cli", "doctor"],
        cwd=tmp_path,
        env=_clean_env() | {"GITHUB_API_URL": github_sim.base_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"✓ GitHub App JWT accepted: App {app.slug} (id {app.id})" in doctor.stdout
    assert "✓ App installed" in doctor.stdout


# -- in-process: the same app object, edges of the flow -----------------------------------


@pytest.fixture
def sim_env(github_sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith(("GITHUB_", "PACT_", "ANTHROPIC_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GITHUB_API_URL", github_sim.base_url)
    monkeypatch.setenv("PACT_ENV_FILE", str(tmp_path / "pact.env"))
    monkeypatch.setenv("PACT_PUBLIC_URL", PUBLIC)
    monkeypatch.setenv("PACT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "pact.env"


PUBLIC = "https://bot.example.org"


@pytest.fixture
def stranger(sim_env: Path, tmp_path: Path) -> Iterator[TestClient]:
    """A browser that reaches the server but never saw its log."""
    settings = load_settings()
    app = create_app(settings, SqliteQueue(tmp_path / "q.db"), open_queue=True)
    with TestClient(app, base_url=PUBLIC, follow_redirects=False) as c:
        yield c


@pytest.fixture
def client(stranger: TestClient) -> TestClient:
    """The operator's browser: it opened the setup link from the log."""
    authorise(stranger)
    return stranger


def authorise(client: TestClient) -> None:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    response = client.get(f"/setup?token={setup_token.setup_token(settings)}")
    assert response.status_code == 303 and response.headers["location"] == "/setup"


def _form(html_text: str) -> tuple[str, dict[str, Any]]:
    action = re.search(r'<form action="([^"]+)" method="post">', html_text)
    value = re.search(r'name="manifest" value="([^"]+)"', html_text)
    assert action and value
    return html.unescape(action.group(1)), json.loads(html.unescape(value.group(1)))


def _register(client: TestClient, github_sim: Any, path: str = "/setup") -> httpx.Response:
    """What the browser does: post the form to the simulator, follow its redirect back."""
    action, manifest = _form(client.get(path).text)
    return _callback(client, action, manifest)


def _callback(client: TestClient, action: str, manifest: dict[str, Any]) -> httpx.Response:
    """GitHub creates the App from the form and the browser follows its redirect back."""
    redirect = httpx.post(action, data={"manifest": json.dumps(manifest)}, timeout=10)
    assert redirect.status_code == 302
    back = httpx.URL(redirect.headers["location"])
    return client.get(f"/setup?{back.query.decode()}")


def test_manifest_is_app_yml_pointed_at_the_public_url(client: TestClient) -> None:
    action, manifest = _form(client.get("/setup").text)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/settings/apps/new\?state=[\w-]{20,}", action)
    assert manifest["hook_attributes"]["url"] == "https://bot.example.org/webhook"
    assert manifest["redirect_url"] == "https://bot.example.org/setup"
    assert manifest["callback_urls"] == ["https://bot.example.org/auth/callback"]
    assert manifest["default_permissions"] == PERMISSIONS
    assert manifest["default_events"] == EVENTS
    assert manifest["public"] is False
    # Every page view gets its own state.
    assert _form(client.get("/setup").text)[0] != action


def test_app_yml_requests_only_what_it_explains() -> None:
    text = (ROOT / "app.yml").read_text()
    data = yaml.safe_load(text)
    assert data["default_permissions"] == PERMISSIONS
    assert data["default_events"] == EVENTS
    lines = text.splitlines()
    patterns = [rf"\s+{k}: \w+$" for k in PERMISSIONS] + [rf"\s+- {e}$" for e in EVENTS]
    for pattern in patterns:
        [n] = [i for i, line in enumerate(lines) if re.fullmatch(pattern, line)]
        assert lines[n - 1].strip().startswith("#"), f"app.yml: no comment above {lines[n]!r}"
    assert setup_manifest.load_manifest() == data


def test_org_and_enterprise_server_targets(
    sim_env: Path, monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    action, _ = _form(client.get("/setup?org=acme-corp").text)
    assert "/organizations/acme-corp/settings/apps/new?state=" in action
    assert client.get("/setup?org=not%20an%20org").status_code == 400
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example.com/api/v3")
    monkeypatch.setenv("PACT_GITHUB_ORG", "platform")
    ghes = load_settings()
    assert setup_manifest.registration_url(ghes, ghes.pact_github_org, "s").startswith(
        "https://ghe.example.com/organizations/platform/settings/apps/new?state=s"
    )


def test_callback_writes_env_reloads_and_refuses_a_second_app(
    client: TestClient, github_sim: Any, sim_env: Path
) -> None:
    sim_env.write_text("ANTHROPIC_API_KEY=sk-keep-me\n")
    sim_env.chmod(0o644)
    other_tab = _form(client.get("/setup").text)  # a second registration started in parallel
    first = _register(client, github_sim)
    assert first.status_code == 200, first.text
    [app] = github_sim.registered_apps
    assert stat.S_IMODE(sim_env.stat().st_mode) == 0o600
    values = dotenv_values(sim_env)
    assert values["ANTHROPIC_API_KEY"] == "sk-keep-me"  # other settings are kept
    assert values["GITHUB_APP_ID"] == str(app.id)
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    assert settings.github_app_id == app.id and settings.app_configured
    assert "Register GitHub App" not in client.get("/").text
    before = sim_env.read_text()

    second = _callback(client, *other_tab)  # the token is used up with the first App
    assert second.status_code == 403
    assert "already has a GitHub App" in second.text and "delete it" in second.text
    assert sim_env.read_text() == before
    assert len(github_sim.registered_apps) == 1


def test_env_file_with_an_app_is_not_overwritten(
    client: TestClient, github_sim: Any, sim_env: Path
) -> None:
    sim_env.write_text("GITHUB_APP_ID=42\n")
    response = _register(client, github_sim)
    assert response.status_code == 409
    assert sim_env.read_text() == "GITHUB_APP_ID=42\n"
    assert github_sim.registered_apps == []  # the code was not even exchanged


def test_unknown_expired_and_missing_state_are_refused(
    client: TestClient, github_sim: Any, monkeypatch: pytest.MonkeyPatch, sim_env: Path
) -> None:
    assert client.get("/setup?code=abc&state=forged").status_code == 400
    assert client.get("/setup?code=abc").status_code == 400
    monkeypatch.setattr(setup_state, "STATE_TTL_SECONDS", -1)
    expired = _register(client, github_sim)
    assert expired.status_code == 400 and "expired" in expired.text
    assert not sim_env.exists()


def test_a_code_github_refuses_is_a_502_page(client: TestClient, sim_env: Path) -> None:
    action, _ = _form(client.get("/setup").text)
    state = httpx.URL(action).params["state"]
    response = client.get(f"/setup?code=not-a-code&state={state}")
    assert response.status_code == 502
    assert "HTTP 404" in response.text
    assert not sim_env.exists()


def test_write_app_credentials_replaces_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# mine\nPACT_MODEL=opus\nGITHUB_WEBHOOK_SECRET=old\n")
    pem = "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n"
    setup_credentials.write_app_credentials(
        env, {"GITHUB_WEBHOOK_SECRET": 'n"ew', "GITHUB_PRIVATE_KEY": pem}, "note"
    )
    values = dotenv_values(env)
    assert values == {
        "PACT_MODEL": "opus",
        "GITHUB_WEBHOOK_SECRET": 'n"ew',
        "GITHUB_PRIVATE_KEY": pem,
    }
    assert "old" not in env.read_text()
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temporary file left


def test_pact_bot_setup_prints_the_page_and_the_manual_route(
    sim_env: Path, github_sim: Any
) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["setup", "--org", "acme"])
    assert result.exit_code == 0, result.output
    out = result.output
    token = (sim_env.parent / "data" / "setup-token").read_text().strip()
    assert f"https://bot.example.org/setup?token={token}&org=acme" in out
    assert f"{github_sim.web_url}/organizations/acme/settings/apps/new?name=pact-bot" in out
    assert "webhook_url=https%3A%2F%2Fbot.example.org%2Fwebhook" in out
    assert "contents=write" in out and "events%5B%5D=check_run" in out

    bad = runner.invoke(cli, ["setup", "--org", "no spaces"])
    assert bad.exit_code == 2

    sim_env.write_text(
        "GITHUB_APP_ID=7\nGITHUB_WEBHOOK_SECRET=s\n"
        f"GITHUB_PRIVATE_KEY={json.dumps(github_sim.private_key_pem)}\n"
    )
    done = runner.invoke(cli, ["setup"])
    assert done.exit_code == 0 and "already configured (GITHUB_APP_ID=7)" in done.output
