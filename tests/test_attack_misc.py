"""Attacks through the product that need no new machinery: a repository unprotecting its
workflows, escape sequences from model output reaching the operator's terminal, and a
stranger registering their own App into a server that is not set up yet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy
from starlette.testclient import TestClient
from test_code_pipeline import FILES, REPO, label, progress_comment
from test_setup_flow import (  # noqa: F401 (fixtures)
    PUBLIC,
    _callback,
    _form,
    authorise,
    client,
    sim_env,
    stranger,
)

from pact_bot.jobs.model import JobState
from pact_bot.settings import load_settings
from pact_bot.web import setup, setup_manifest, setup_token


async def test_empty_protected_paths_do_not_unprotect_the_workflows(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    """A workflow on the bot's branch would run the agent's code with the repository's
    secrets; `protected_paths: []` in `.github/pact.yml` must not make that pushable."""
    owner, name = REPO.split("/")
    files = {**FILES, ".github/pact.yml": "protected_paths: []\n"}
    github_sim.add_repo(owner, name, files=files)
    github_sim.add_user("alice", "write")
    before = dict(github_sim.branches(REPO))
    anthropic_sim.set_policy(SpecCoderPolicy(write_paths=[".github/workflows/ci.yml"]))
    number = label(github_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed], [(j.state, j.error) for j in jobs]
    comment = progress_comment(github_sim, number, jobs[0].id)
    assert "protected paths (`.github/workflows/ci.yml`)" in comment
    assert "Nothing was pushed" in comment
    assert github_sim.branches(REPO) == before
    assert github_sim.pulls(REPO) == []
    assert bot.worktrees() == []


# -- setup hijack: registering a stranger's App into a server that has none yet ---------------


def _attacker_code(github_sim: GitHubSim, state: str) -> httpx.URL:
    """The attacker's own App created on GitHub from a manifest pointed at the victim:
    GitHub's redirect back, with a code the victim's server would convert."""
    manifest = setup_manifest.build_manifest(load_settings(), PUBLIC)
    action = setup_manifest.registration_url(load_settings(), None, state)
    redirect = httpx.post(action, data={"manifest": json.dumps(manifest)}, timeout=10)
    assert redirect.status_code == 302
    return httpx.URL(redirect.headers["location"])


def test_a_stranger_without_the_setup_token_cannot_register_an_app(
    stranger: TestClient,  # noqa: F811
    github_sim: Any,
    sim_env: Path,  # noqa: F811
) -> None:
    page = stranger.get("/setup")
    assert page.status_code == 200 and "Setup token needed" in page.text
    assert 'name="manifest"' not in page.text and "state=" not in page.text
    assert 'name="manifest"' not in stranger.get("/").text
    for guess in (stranger.get("/setup?token=guess"), stranger.post("/setup", data={"token": ""})):
        assert guess.status_code == 403 and "not the setup token" in guess.text
        assert "set-cookie" not in guess.headers

    # A state of the operator's own, and a code for the attacker's App.
    operator = TestClient(stranger.app, base_url=PUBLIC, follow_redirects=False)
    authorise(operator)
    state = httpx.URL(_form(operator.get("/setup").text)[0]).params["state"]
    for forged in ("made-up", state):
        back = _attacker_code(github_sim, forged)
        refused = stranger.get(f"/setup?{back.query.decode()}")
        assert refused.status_code == 403
        assert "Setup token required" in refused.text and "Nothing was registered" in refused.text
        assert back.params["code"] in github_sim.manifest_codes  # never converted
    assert github_sim.registered_apps == []
    assert not sim_env.exists()
    assert not stranger.app.state.settings.app_configured  # type: ignore[attr-defined]


def test_a_callback_with_a_state_from_another_browser_is_refused(
    client: TestClient,  # noqa: F811
    github_sim: Any,
    sim_env: Path,  # noqa: F811
) -> None:
    """Even a browser holding the token cannot finish a registration another one started."""
    action, manifest = _form(client.get("/setup").text)
    other = TestClient(client.app, base_url=PUBLIC, follow_redirects=False)
    authorise(other)

    refused = _callback(other, action, manifest)

    assert refused.status_code == 403 and "started in another browser" in refused.text
    assert github_sim.registered_apps == [] and not sim_env.exists()
    # The browser that pressed the button still can (the state was not used up).
    back = httpx.URL(str(refused.request.url))
    finished = client.get(f"/setup?{back.query.decode()}")
    assert finished.status_code == 200 and "is registered" in finished.text
    assert len(github_sim.registered_apps) == 1


def test_the_setup_cookies_stay_on_this_server(stranger: TestClient) -> None:  # noqa: F811
    settings = stranger.app.state.settings  # type: ignore[attr-defined]
    token = setup_token.setup_token(settings)
    response = stranger.get(f"/setup?token={token}")
    assert response.status_code == 303 and response.headers["location"] == "/setup"
    assert response.headers["referrer-policy"] == "no-referrer"
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2 and any(
        c.startswith(f"{setup.TOKEN_COOKIE}={token};") for c in cookies
    )
    for cookie in cookies:
        attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "secure", "path=/setup"} <= attrs
    action, manifest = _form(stranger.get("/setup").text)
    assert token not in action and token not in json.dumps(manifest)
