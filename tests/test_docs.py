"""The docs say what the code does: generated parts are current, names and links are real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pact_bot import docs_gen
from pact_bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_configuration_md_is_up_to_date() -> None:
    current = (ROOT / docs_gen.TARGET).read_text()
    assert current == docs_gen.render(), (
        f"docs/configuration.md is out of date: run `{docs_gen.COMMAND}` and commit it"
    )


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert docs_gen.main(["--check"]) == 0
    monkeypatch.setattr(docs_gen, "render", lambda: "stale\n")
    assert docs_gen.main(["--check"]) == 1
    assert docs_gen.COMMAND in capsys.readouterr().err


def test_every_setting_is_documented_with_a_description() -> None:
    text = (ROOT / docs_gen.TARGET).read_text()
    docs = docs_gen.field_docs(Settings)
    for name in Settings.model_fields:
        assert docs.get(name), f"Settings.{name} has no docstring (docs need one)"
        assert f"| `{name.upper()}` |" in text


def test_every_pact_yml_key_is_documented() -> None:
    from pydantic import BaseModel

    from pact_bot.repo_config import RepoConfig

    text = (ROOT / docs_gen.TARGET).read_text()

    def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            out.append(prefix + name)
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                out += keys(ann, f"{prefix}{name}.")
        return out

    for key in keys(RepoConfig):
        assert f"| `{key}` |" in text, key
    example = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert example
    from pact_bot.repo_config import parse_repo_config

    assert parse_repo_config(example.group(1)) == RepoConfig()


@pytest.mark.parametrize("page", ["deployment.md", "security.md", "configuration.md"])
def test_env_vars_named_in_docs_exist(page: str) -> None:
    text = (DOCS / page).read_text()
    known = {n.upper() for n in Settings.model_fields} | {
        "PACT_TEST_POSTGRES_DSN",  # the test suite's, documented as such
    }
    named = set(re.findall(r"\b((?:GITHUB|PACT|ANTHROPIC)_[A-Z0-9_]*[A-Z0-9])\b", text))
    assert named - known == set(), f"{page} names variables pact-bot does not read"


@pytest.mark.parametrize(
    "page", ["deployment.md", "security.md", "configuration.md", "architecture.md"]
)
def test_relative_links_resolve(page: str) -> None:
    text = (DOCS / page).read_text()
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (DOCS / target).resolve().exists(), f"{page}: broken link {target}"


def _commands(text: str) -> list[list[str]]:
    """`pact-bot ...` in inline code and in code blocks, as argument lists."""
    spans = re.findall(r"`([^`\n]*pact-bot [^`\n]*)`", text)
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        spans += [line.split("#")[0] for line in block.splitlines() if "pact-bot " in line]
    out = []
    for span in spans:
        tokens = span.rstrip("\\ ").split()
        starts = [
            i
            for i, t in enumerate(tokens[:-1])
            if t == "pact-bot" and (i == 0 or not tokens[i - 1].startswith("-"))
        ]
        if starts:
            args = tokens[starts[-1] + 1 :]
            for stop in ("|", "&&", ";"):
                args = args[: args.index(stop)] if stop in args else args
            out.append(args)
    return out


@pytest.mark.parametrize("page", ["deployment.md", "security.md", "architecture.md"])
def test_commands_in_docs_are_real_cli_commands(page: str) -> None:
    import click

    from pact_bot.cli import main

    commands = _commands((DOCS / page).read_text())
    assert commands
    for args in commands:
        cmd: click.Command = main
        words = list(args)
        while isinstance(cmd, click.Group) and words and words[0] in cmd.commands:
            cmd = cmd.commands[words.pop(0)]
        assert cmd is not main, f"{page}: `pact-bot {' '.join(args)}` is not a command"
        if isinstance(cmd, click.Group):
            assert not words or words[0].startswith("-"), f"{page}: pact-bot {' '.join(args)}"
        cmd.make_context(cmd.name or "", words)  # raises on an unknown option


def _threat_rows() -> list[str]:
    text = (DOCS / "security.md").read_text()
    table = text.split("## Threat model", 1)[1].split("\n## ", 1)[0]
    return [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]


def test_every_test_named_in_the_threat_model_exists() -> None:
    """The table cannot drift: each `tests/x.py::test_y` names a test function of that file,
    and every row but the by-design ones names at least one."""
    import ast

    rows = _threat_rows()[1:]  # without the header
    assert len(rows) >= 15
    named = 0
    for row in rows:
        refs = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", row)
        proved_by = row.rstrip(" |").rsplit(" | ", 1)[1]
        assert refs or proved_by == "(by design)", f"no test named for: {row[:80]}"
        assert not re.search(r"`(?!tests/)[^`]*::test_", proved_by), "name the file each time"
        for path, name in refs:
            source = ROOT / path
            assert source.exists(), f"security.md names a missing file {path}"
            tree = ast.parse(source.read_text())
            tests = {
                n.name
                for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            assert name in tests, f"security.md names {path}::{name}, which does not exist"
            named += 1
    assert named >= 40
