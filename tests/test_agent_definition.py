"""The packaged seed parses; a repository override wins; model aliases resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from pact_bot.agent.definition import (
    REPO_OVERRIDE,
    DefinitionError,
    load_definition,
    packaged_definition_text,
    parse_definition,
    system_prompt,
)
from pact_bot.settings import Settings

SEED = Path(__file__).resolve().parents[1] / "src/pact_bot/agent/agents/pact-backend-coder.md"


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


def test_seed_is_packaged_unchanged_and_parses() -> None:
    assert packaged_definition_text() == SEED.read_text(encoding="utf-8")
    d = load_definition(None)
    assert (d.name, d.model, d.color, d.source) == (
        "pact-backend-coder",
        "sonnet",
        "yellow",
        "package",
    )
    assert d.description.startswith("Use this agent when you need to implement backend code")
    assert "<example>" in d.description and d.description.endswith("</example>")
    assert d.body.startswith("You are 💻 PACT Backend Coder")
    assert "model: sonnet" not in d.body and "---" not in d.body[:10]


def test_repository_override_wins(tmp_path: Path) -> None:
    assert load_definition(tmp_path).source == "package"
    override = tmp_path / REPO_OVERRIDE
    override.parent.mkdir(parents=True)
    override.write_text(
        "---\nname: pact-backend-coder\ndescription: ours\nmodel: opus\n"
        "tools: Read, Edit, Bash\n---\n\nYou write Go.\n"
    )
    d = load_definition(tmp_path)
    assert (d.body, d.model, d.tools, d.source) == (
        "You write Go.",
        "opus",
        ["Read", "Edit", "Bash"],
        REPO_OVERRIDE,
    )


def test_explicit_override_path_must_exist_and_stay_inside(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "x.md").write_text("---\nname: x\n---\nBody\n")
    assert load_definition(tmp_path, "agents/x.md").name == "x"
    with pytest.raises(DefinitionError, match="not found"):
        load_definition(tmp_path, "agents/missing.md")
    with pytest.raises(DefinitionError, match="outside"):
        load_definition(tmp_path, "../../etc/passwd")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no frontmatter", "no YAML frontmatter"),
        ("---\ndescription: x\n---\nbody", "no `name`"),
        ("---\nname: x\n---\n\n", "body after the frontmatter is empty"),
    ],
)
def test_broken_definitions_are_named(text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definition(text, "f.md")


def test_yaml_rejected_frontmatter_falls_back_to_key_value_lines() -> None:
    d = parse_definition(
        "---\nname: a\ndescription: Use it: when\\n<example>x: y</example>\nmodel: haiku\n---\nB"
    )
    assert d.description == "Use it: when\\n<example>x: y</example>"
    assert d.model == "haiku"


@pytest.mark.parametrize(
    ("env", "requested", "expected"),
    [
        ({}, "sonnet", "claude-sonnet-5-5"),
        ({}, "opus", "claude-opus-5-5"),
        ({}, "haiku", "claude-haiku-5-5"),
        ({}, "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-20250219"),
        ({}, None, "claude-sonnet-5-5"),
        ({"pact_model_opus": "claude-opus-6"}, "opus", "claude-opus-6"),
        ({"pact_model": "claude-haiku-5-5"}, "opus", "claude-haiku-5-5"),
    ],
)
def test_model_resolution(env: dict[str, str], requested: str | None, expected: str) -> None:
    assert settings(**env).resolve_model(requested) == expected


def test_system_prompt_is_body_plus_operating_notes() -> None:
    d = load_definition(None)
    text = system_prompt(d, "Extra: be brief.", component="auth-service", bash_available=False)
    assert text.startswith(d.body)
    assert "non-interactive" in text and "/workspace" in text
    assert "## Assumptions" in text
    assert "docs/implementation-summary-auth-service.md" in text
    assert "pact-bot commits" in text
    assert "no shell" in text
    assert text.rstrip().endswith("Extra: be brief.")
    assert "fresh shell" in system_prompt(d, component="x")
