"""`.github/pact.yml`: defaults, validation errors that name the line, server caps."""

from __future__ import annotations

import pytest

from pact_bot.pipeline.post_run import protected_touched
from pact_bot.repo_config import (
    RepoConfigError,
    glob_match,
    parse_repo_config,
    protected_patterns,
)
from pact_bot.settings import Settings


def test_absent_or_empty_file_means_defaults() -> None:
    for text in (None, "", "   \n", "# only a comment\n"):
        cfg = parse_repo_config(text)
        assert cfg.label == "pact:code"
        assert cfg.command == "/pact"
        assert cfg.spec_glob == "docs/**/*-spec.md"
        assert cfg.spec_prs == "suggest"
        assert cfg.pr.branch_prefix == "pact/code/"
        assert cfg.pr.draft is False
        assert cfg.protected_paths == []
        assert cfg.effective(Settings()).protected_paths == (".github/**", ".git/**", ".claude/**")
        assert cfg.sandbox.enabled is True


def test_full_file_is_read() -> None:
    cfg = parse_repo_config(
        """
label: build-it
command: bot
spec_glob: specs/*.md
spec_prs: run
pr:
  draft: true
  branch_prefix: bots/pact
model: opus
limits: {max_turns: 10, max_cost_usd: 1.5, max_minutes: 5}
sandbox:
  enabled: false
  setup: [pip install -e .]
protected_paths: [infra/**]
agent: .claude/agents/custom.md
"""
    )
    assert cfg.command == "/bot"
    assert cfg.pr.branch_prefix == "bots/pact/"
    assert cfg.trigger_fields() == {
        "label": "build-it",
        "command": "/bot",
        "spec_glob": "specs/*.md",
        "spec_prs": "run",
        "auto_rebase": False,
    }
    eff = cfg.effective(Settings())
    assert (eff.max_turns, eff.max_cost_usd, eff.max_minutes) == (10, 1.5, 5)
    assert eff.model == "claude-opus-5-5"
    assert eff.sandbox is False and eff.setup == ("pip install -e .",)
    assert eff.protected_paths == (".github/**", ".git/**", ".claude/**", "infra/**")
    assert "limits: 10 turns, $1.5, 5 minutes" in eff.as_text()


def test_protected_paths_add_to_the_built_ins_and_never_replace_them() -> None:
    """`protected_paths: []` used to unprotect `.github/workflows/`; now it adds nothing."""
    for text in ("protected_paths: []\n", "protected_paths: [src/**, .github/**]\n"):
        eff = parse_repo_config(text).effective(Settings())
        assert eff.protected_paths[:3] == (".github/**", ".git/**", ".claude/**")
        assert "protected_paths: .github/**, .git/**, .claude/**" in eff.as_text()
    assert protected_patterns(["src/**", ".github/**"]) == (
        ".github/**",
        ".git/**",
        ".claude/**",
        "src/**",
    )
    for path in (".github/workflows/ci.yml", ".github/pact.yml", ".github/CODEOWNERS"):
        assert protected_touched([path], []) == [path]
        assert protected_touched([path], ["docs/**"]) == [path]


def test_server_maximums_cap_repository_limits() -> None:
    settings = Settings(pact_max_turns=20, pact_max_cost_usd=2.0, pact_max_minutes=10)
    eff = parse_repo_config(
        "limits: {max_turns: 500, max_cost_usd: 50, max_minutes: 600}"
    ).effective(settings)
    assert (eff.max_turns, eff.max_cost_usd, eff.max_minutes) == (20, 2.0, 10)
    eff = parse_repo_config("").effective(settings)
    assert (eff.max_turns, eff.max_cost_usd, eff.max_minutes) == (20, 2.0, 10)


def test_server_model_wins_over_repository() -> None:
    eff = parse_repo_config("model: opus").effective(Settings(pact_model="claude-haiku-5-5"))
    assert eff.model == "claude-haiku-5-5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("label: x\nlimits:\n  max_turns: -3\n", "line 3: limits.max_turns: Input should be"),
        ("label: x\nspec_prs: maybe\n", "line 2: spec_prs: Input should be 'suggest', 'run'"),
        ("label: x\n\nlabelz: y\n", "line 3: labelz: unknown setting"),
        ("pr:\n  draft: true\n  branch_prefix: ../evil\n", "line 3: pr.branch_prefix: must be"),
        ("protected_paths:\n  - a\n  - [b]\n", "line 3: protected_paths.1: Input should be"),
        ("label: [oops\n", "not valid YAML"),
        ("- just\n- a list\n", "line 1: expected a mapping"),
        ("agent: /etc/passwd\n", "line 1: agent: must be a path inside the repository"),
    ],
)
def test_invalid_file_error_quotes_the_line(text: str, expected: str) -> None:
    with pytest.raises(RepoConfigError) as e:
        parse_repo_config(text)
    assert str(e.value).startswith(".github/pact.yml, ")
    assert expected in str(e.value)


@pytest.mark.parametrize(
    ("pattern", "path", "ok"),
    [
        ("docs/**/*-spec.md", "docs/a-spec.md", True),
        ("docs/**/*-spec.md", "docs/api/v2/a-spec.md", True),
        ("docs/**/*-spec.md", "src/docs/a-spec.md", False),
        ("docs/**/*-spec.md", "docs/a-spec.md.bak", False),
        (".github/workflows/**", ".github/workflows/ci.yml", True),
        (".github/workflows/**", ".github/dependabot.yml", False),
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),
        ("infra/", "infra/main.tf", True),
    ],
)
def test_glob_match(pattern: str, path: str, ok: bool) -> None:
    assert glob_match(pattern, path) is ok
