"""PACT_PROVIDER=bedrock|vertex: code jobs through the SDK's real Bedrock and Vertex clients.

The simulator answers the clouds' own request shapes (tests/sim/cloud.py): Bedrock checks the
SigV4 signature and streams AWS event-stream frames; Vertex takes bearer tokens that
google-auth obtains from a service-account key through the simulator's token endpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sim.anthropic import AnthropicSim, Fault
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy
from test_code_pipeline import REPO, attr, bot_comments, label, setup_repo

from pact_bot.cli import main as cli
from pact_bot.jobs.model import JobState
from pact_bot.model_catalog import BEDROCK_PRICES, VERTEX_PRICES
from pact_bot.settings import Settings

BEDROCK_SONNET = "anthropic.claude-sonnet-5-5-v1:0"
VERTEX_SONNET = "claude-sonnet-5-5"
CLOUD_VARS = ("AWS_", "GOOGLE_", "CLOUD_ML_", "ANTHROPIC_VERTEX_", "ANTHROPIC_BEDROCK_", "GCE_")


@pytest.fixture
def cloud_env(
    anthropic_sim: AnthropicSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AnthropicSim]:
    """No cloud credential of the host leaks in: no env keys, profile files, metadata servers."""
    for key in list(os.environ):
        if key.startswith(CLOUD_VARS) or key == "PACT_PROVIDER":
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(home / "gcloud"))
    anthropic_sim.cloud.reset()
    yield anthropic_sim
    anthropic_sim.cloud.reset()


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for k, v in values.items():
        monkeypatch.setenv(k, v)


def bedrock_settings(sim: AnthropicSim) -> dict[str, Any]:
    return {"pact_provider": "bedrock", "anthropic_bedrock_base_url": sim.base_url}


def vertex_settings(sim: AnthropicSim) -> dict[str, Any]:
    return {
        "pact_provider": "vertex",
        "anthropic_vertex_base_url": f"{sim.base_url}/v1",
        "cloud_ml_region": "us-east5",
        "anthropic_vertex_project_id": sim.cloud.vertex_project,
    }


def check_run_summary(github: GitHubSim) -> str:
    runs = github.check_runs(REPO)
    assert [attr(r, "name") for r in runs] == ["PACT Code"]
    return str(attr(runs[0], "output"))


async def test_bedrock_code_job_opens_a_pr_through_signed_bedrock_calls(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    cloud_env: AnthropicSim,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = cloud_env
    set_env(monkeypatch, sim.cloud.aws_env())  # the endpoint: pact-bot's own setting
    setup_repo(github_sim)
    sim.set_policy(SpecCoderPolicy())
    sim.inject(Fault.rate_limited(retry_after=0))  # Bedrock's ThrottlingException, retried
    bot.configure(**bedrock_settings(sim))
    label(github_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    assert len(github_sim.pulls(REPO)) == 1
    calls = [c for c in sim.cloud.calls if c.provider == "bedrock"]
    # every model call came through Bedrock's API, signed for bedrock in the region
    assert len(calls) == len(sim.requests) > 2
    assert [c.status for c in calls] == [429] + [200] * (len(calls) - 1)
    for call in calls:
        assert call.path == f"/model/{BEDROCK_SONNET}/invoke-with-response-stream"
        assert call.auth == f"AWS4-HMAC-SHA256 {sim.cloud.aws_access_key_id}/us-east-1/bedrock"
        assert "model" not in call.body and "stream" not in call.body
        assert call.body["anthropic_version"]
    # the cost shown is the usage priced with Bedrock's table, under Bedrock's model id
    expected = sim.total_cost({"claude-sonnet-5-5": BEDROCK_PRICES[BEDROCK_SONNET]})
    assert jobs[0].cost_usd == pytest.approx(expected, abs=1e-6)
    summary = check_run_summary(github_sim)
    assert f"Model: `{BEDROCK_SONNET}`" in summary
    assert f"Cost: ${expected:.4f}" in summary


async def test_vertex_code_job_opens_a_pr_with_a_service_account_token(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    cloud_env: AnthropicSim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = cloud_env
    key_file = sim.cloud.service_account_file(tmp_path)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    setup_repo(github_sim)
    sim.set_policy(SpecCoderPolicy())
    bot.configure(**vertex_settings(sim), pact_prices={VERTEX_SONNET: {"output": 11.0}})
    label(github_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    assert len(github_sim.pulls(REPO)) == 1
    # google-auth signed a JWT with the key file and traded it once for an access token
    oauth = [c for c in sim.cloud.calls if c.provider == "oauth"]
    assert [c.status for c in oauth] == [200]
    assert sim.cloud.tokens_issued == 1
    calls = [c for c in sim.cloud.calls if c.provider == "vertex"]
    assert len(calls) == len(sim.requests) > 1
    project = sim.cloud.vertex_project
    for call in calls:
        assert call.status == 200 and call.auth == "Bearer"
        assert call.path == (
            f"/v1/projects/{project}/locations/us-east5/publishers/anthropic/models/"
            f"{VERTEX_SONNET}:streamRawPredict"
        )
        assert "model" not in call.body and call.body["stream"] is True
    # Vertex's table with the PACT_PRICES override merged over it
    prices = {**VERTEX_PRICES[VERTEX_SONNET], "output": 11.0}
    expected = sim.total_cost({"claude-sonnet-5-5": prices})
    assert jobs[0].cost_usd == pytest.approx(expected, abs=1e-6)
    assert f"Cost: ${expected:.4f}" in check_run_summary(github_sim)


@pytest.mark.parametrize(
    ("provider", "missing", "needs"),
    [
        ("bedrock", "no AWS credentials were found", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        (
            "vertex",
            "no usable Application Default Credentials",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ),
    ],
)
async def test_missing_cloud_credentials_fail_the_job_naming_what_to_set(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    cloud_env: AnthropicSim,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    missing: str,
    needs: str,
) -> None:
    sim = cloud_env
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # the region is there; the keys are not
    setup_repo(github_sim)
    sim.set_policy(SpecCoderPolicy())
    bot.configure(**(bedrock_settings(sim) if provider == "bedrock" else vertex_settings(sim)))
    number = label(github_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed]
    assert f"PACT_PROVIDER={provider}: {missing}" in (jobs[0].error or "")
    assert needs in (jobs[0].error or "")
    comment = "\n".join(bot_comments(github_sim, number))
    assert missing in comment and needs in comment
    assert github_sim.pulls(REPO) == []
    assert sim.cloud.calls == [] and sim.requests == []


def doctor_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> tuple[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key in list(os.environ):
        stale = key.startswith(("GITHUB_", "PACT_", "ANTHROPIC_API", "ANTHROPIC_BASE"))
        if stale and not key.startswith(("PACT_TEST_", "PACT_PROVIDER")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PACT_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["doctor"])
    found = [line for line in result.output.splitlines() if line[2:].startswith(name + ":")]
    assert len(found) == 1, result.output
    return found[0], result.output


def test_doctor_checks_bedrock_credentials_with_a_signed_call(
    cloud_env: AnthropicSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = cloud_env
    set_env(monkeypatch, sim.cloud.aws_env())
    set_env(monkeypatch, {"PACT_PROVIDER": "bedrock", "ANTHROPIC_BEDROCK_BASE_URL": sim.base_url})
    line, _ = doctor_line(monkeypatch, tmp_path, "Bedrock credentials accepted")
    assert line.startswith("✓ "), line
    assert BEDROCK_SONNET in line and "us-east-1" in line and "env credentials" in line
    assert [c.status for c in sim.cloud.calls] == [200]
    assert sim.cloud.calls[0].path == f"/model/{BEDROCK_SONNET}/invoke"

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789abcdefghijklmnopq")
    line, output = doctor_line(monkeypatch, tmp_path, "Bedrock credentials accepted")
    assert line.startswith("✗ ") and "refused the credentials (403)" in line, line
    assert "fix: set AWS credentials" in line
    assert "wrong-secret-0123456789" not in output

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "my access key")  # pasted wrong: caught here
    line, _ = doctor_line(monkeypatch, tmp_path, "Bedrock credentials accepted")
    assert line.startswith("✗ ") and "access key id is not well-formed" in line, line

    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    line, _ = doctor_line(monkeypatch, tmp_path, "Bedrock credentials accepted")
    assert line.startswith("✗ "), line
    assert "no AWS credentials were found" in line and "AWS_PROFILE" in line
    assert len(sim.cloud.calls) == 2  # nothing was sent without credentials


def test_doctor_checks_vertex_credentials_by_counting_tokens(
    cloud_env: AnthropicSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = cloud_env
    key_file = sim.cloud.service_account_file(tmp_path)
    set_env(monkeypatch, {**sim.cloud.vertex_env(key_file), "PACT_PROVIDER": "vertex"})
    name = "Vertex credentials accepted"
    line, _ = doctor_line(monkeypatch, tmp_path, name)
    assert line.startswith("✓ "), line
    assert f"project {sim.cloud.vertex_project}" in line and "tokens counted" in line
    assert [c.provider for c in sim.cloud.calls] == ["oauth", "vertex"]
    assert sim.cloud.calls[1].path.endswith("/models/count-tokens:rawPredict")

    # a key file whose private key is not the service account's: the grant is refused
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    info = json.loads(key_file.read_text())
    info["private_key"] = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key_file.write_text(json.dumps(info))
    line, _ = doctor_line(monkeypatch, tmp_path, name)
    assert line.startswith("✗ ") and "Google refused the credentials" in line, line
    assert "invalid_grant" in line
    assert sim.cloud.calls[-1].provider == "oauth" and sim.cloud.calls[-1].status == 400

    key_file.write_text('{"type": "service_account"}')  # not a usable key file
    line, _ = doctor_line(monkeypatch, tmp_path, name)
    assert line.startswith("✗ ") and "no usable Application Default Credentials" in line, line
    assert "fix: set Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS" in line
    calls = len(sim.cloud.calls)

    monkeypatch.delenv("CLOUD_ML_REGION")
    line, _ = doctor_line(monkeypatch, tmp_path, name)
    assert len(sim.cloud.calls) == calls  # nothing was sent
    assert line.startswith("✗ ") and "CLOUD_ML_REGION is not set" in line, line


@pytest.mark.parametrize(
    ("provider", "sonnet", "prices"),
    [("bedrock", BEDROCK_SONNET, BEDROCK_PRICES), ("vertex", VERTEX_SONNET, VERTEX_PRICES)],
)
def test_aliases_and_prices_follow_the_provider(
    provider: str, sonnet: str, prices: dict[str, dict[str, float]]
) -> None:
    s = Settings(_env_file=None, pact_provider=provider)  # type: ignore[call-arg]
    assert s.resolve_model("sonnet") == sonnet
    assert s.prices[sonnet] == prices[sonnet]
    for alias in ("opus", "haiku"):
        assert s.resolve_model(alias) in s.prices  # every default is priced: jobs can run
    pinned = Settings(_env_file=None, pact_provider=provider, pact_model_sonnet="custom-id")  # type: ignore[call-arg]
    assert pinned.resolve_model("sonnet") == "custom-id"


async def test_simulated_clouds_refuse_unsigned_misscoped_and_tokenless_calls(
    cloud_env: AnthropicSim,
) -> None:
    """The checks the end-to-end tests rely on: a wrong request shape is not answered."""
    import anthropic
    import httpx

    sim = cloud_env
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": []}
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        unsigned = await http.post(f"/model/{BEDROCK_SONNET}/invoke", json=body)
        tokenless = await http.post(
            f"/v1/projects/{sim.cloud.vertex_project}/locations/us-east5/publishers/"
            f"anthropic/models/{VERTEX_SONNET}:rawPredict",
            json={**body, "anthropic_version": "vertex-2023-10-16"},
            headers={"Authorization": "Bearer ya29.made-up"},
        )
    assert unsigned.status_code == 403
    assert unsigned.json() == {"message": "Missing Authentication Token"}
    assert unsigned.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")
    assert tokenless.status_code == 401
    assert tokenless.json()["error"]["status"] == "UNAUTHENTICATED"

    # signed correctly, but for another region than the endpoint's
    keys = sim.cloud.aws_env()
    client = anthropic.AsyncAnthropicBedrock(
        aws_access_key=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_key=keys["AWS_SECRET_ACCESS_KEY"],
        aws_region="eu-west-1",
        base_url=sim.base_url,
        max_retries=0,
    )
    with pytest.raises(anthropic.PermissionDeniedError, match="valid region"):
        await client.messages.create(
            model=BEDROCK_SONNET, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    await client.close()
    assert [c.status for c in sim.cloud.calls] == [403, 401, 403]
    assert sim.requests == []  # none reached the Messages handler


@pytest.mark.parametrize("cloud", ["bedrock-profile", "vertex-key-file"])
async def test_cloud_credentials_from_a_file_never_reach_the_diff_or_the_transcript(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    cloud_env: AnthropicSim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cloud: str,
) -> None:
    """Keys from an AWS profile or a Google key file are in no setting; a model talked into
    echoing one (it reached the model somehow) must still not get it pushed or recorded."""
    sim = cloud_env
    if cloud == "bedrock-profile":
        secret = sim.cloud.aws_secret_access_key
        (tmp_path / "home" / "aws-credentials").write_text(
            f"[default]\naws_access_key_id = {sim.cloud.aws_access_key_id}\n"
            f"aws_secret_access_key = {secret}\n"
        )
        monkeypatch.setenv("AWS_REGION", sim.cloud.aws_region)
        settings = bedrock_settings(sim)
    else:
        key_file = sim.cloud.service_account_file(tmp_path)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        secret = json.loads(key_file.read_text())["private_key"].splitlines()[5]
        settings = vertex_settings(sim)
    setup_repo(github_sim)
    sim.set_policy(SpecCoderPolicy(bash_commands=[f"echo '{secret}' > leaked.txt"]))
    bot.configure(**settings)
    number = label(github_sim)

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.failed], [j.error for j in jobs]
    assert github_sim.pulls(REPO) == []
    assert any("The diff contained a secret value" in c for c in bot_comments(github_sim, number))
    transcripts = list((bot.data_dir / "transcripts").rglob("*.jsonl"))
    assert transcripts and all(secret not in t.read_text() for t in transcripts)
