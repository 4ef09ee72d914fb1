"""`pact-bot code docs/x-spec.md` on a local repository, with only the model's endpoint."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr
from sim.anthropic import AnthropicSim
from sim.policies import SpecCoderPolicy

from pact_bot.pipeline.local import run_local
from pact_bot.settings import Settings

SPEC = "# Cart\n\n## API\n- `add(item)` adds an item.\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "shop"
    r.mkdir()
    git(r, "init", "--quiet", "--initial-branch=main")
    git(r, "config", "user.name", "Dev One")
    git(r, "config", "user.email", "dev@example.com")
    (r / "docs").mkdir()
    (r / "docs" / "cart-spec.md").write_text(SPEC)
    (r / "README.md").write_text("# Shop\n")
    git(r, "add", "-A")
    git(r, "commit", "--quiet", "-m", "spec")
    return r


def settings_for(sim: AnthropicSim | None, **kw: object) -> Settings:
    values: dict[str, object] = {
        "anthropic_api_key": SecretStr(sim.api_key) if sim else None,
        "anthropic_base_url": sim.base_url if sim else None,
        "pact_model": None,
        "github_app_id": None,
        "github_private_key": None,
        "github_webhook_secret": None,
    }
    values.update(kw)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_local_run_commits_on_a_new_branch(repo: Path, anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy())
    out = io.StringIO()

    code = run_local(settings_for(anthropic_sim), ["docs/cart-spec.md"], repo, "", out=out)

    text = out.getvalue()
    assert code == 0, text
    assert git(repo, "branch", "--show-current").strip() == "pact/code/cart"
    assert git(repo, "rev-list", "--count", "main..HEAD").strip() == "1"
    changed = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert "src/cart.py" in changed
    assert "docs/implementation-summary-cart.md" in changed
    assert git(repo, "status", "--porcelain") == ""  # nothing of ours left behind
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "Dev One <dev@example.com>"
    # live progress: turns and cost, the tool being called
    assert "turn 1 · $" in text
    assert "str_replace_based_edit_tool" in text or "create" in text
    assert "committed" in text and "src/cart.py" in text


def test_second_run_gets_its_own_branch(repo: Path, anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy())
    settings = settings_for(anthropic_sim)
    assert run_local(settings, ["docs/cart-spec.md"], repo, "", out=io.StringIO()) == 0
    git(repo, "switch", "--quiet", "main")
    assert run_local(settings, ["docs/cart-spec.md"], repo, "", out=io.StringIO()) == 0
    assert git(repo, "branch", "--show-current").strip() == "pact/code/cart-2"


def test_missing_key_is_a_clear_error(repo: Path) -> None:
    out = io.StringIO()
    assert run_local(settings_for(None), ["docs/cart-spec.md"], repo, "", out=out) == 2
    assert "ANTHROPIC_API_KEY is not set" in out.getvalue()
    assert git(repo, "branch", "--show-current").strip() == "main"


def test_dirty_repository_is_refused(repo: Path, anthropic_sim: AnthropicSim) -> None:
    (repo / "README.md").write_text("changed\n")
    out = io.StringIO()
    code = run_local(settings_for(anthropic_sim), ["docs/cart-spec.md"], repo, "", out=out)
    assert code == 2
    assert "uncommitted changes" in out.getvalue()
    assert anthropic_sim.requests == []


def test_missing_spec_is_refused(repo: Path, anthropic_sim: AnthropicSim) -> None:
    out = io.StringIO()
    assert run_local(settings_for(anthropic_sim), ["docs/nope-spec.md"], repo, "", out=out) == 2
    assert "spec not found" in out.getvalue()


def test_failed_check_commits_nothing(repo: Path, anthropic_sim: AnthropicSim) -> None:
    anthropic_sim.set_policy(SpecCoderPolicy(write_paths=[".github/workflows/x.yml"]))
    out = io.StringIO()

    code = run_local(settings_for(anthropic_sim), ["docs/cart-spec.md"], repo, "", out=out)

    assert code == 1
    assert "protected paths (`.github/workflows/x.yml`)" in out.getvalue()
    assert git(repo, "rev-list", "--count", "main..HEAD").strip() == "0"
