"""grep and glob see what git sees, and their output is bounded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pact_bot.agent.tools import build_tools
from pact_bot.agent.tools.search import (
    MAX_GLOB_FILES,
    MAX_GREP_LINES,
    SearchError,
    glob,
    grep,
    matches,
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    wt = tmp_path / "wt"
    (wt / "src" / "app").mkdir(parents=True)
    (wt / "src" / "app" / "main.py").write_text("def handler():\n    return 'TODO'\n")
    (wt / "src" / "app" / "util.py").write_text("# todo later\nX = 1\n")
    (wt / "docs").mkdir()
    (wt / "docs" / "a-spec.md").write_text("# Spec\nTODO: write\n")
    (wt / ".gitignore").write_text("build/\n")
    (wt / "build").mkdir()
    (wt / "build" / "gen.py").write_text("TODO generated\n")
    (wt / "blob.bin").write_bytes(b"TODO\0\1\2")
    subprocess.run(["git", "init", "-q"], cwd=wt, check=True)
    subprocess.run(["git", "add", "src", ".gitignore"], cwd=wt, check=True)
    return wt


def test_grep_searches_tracked_and_untracked_but_not_ignored(repo: Path) -> None:
    out = grep(repo, {"pattern": "TODO"})
    assert out.splitlines() == [
        "docs/a-spec.md:2:TODO: write",
        "src/app/main.py:2:    return 'TODO'",
    ]


def test_grep_case_insensitive_and_path_glob(repo: Path) -> None:
    out = grep(repo, {"pattern": "todo", "case_insensitive": True, "path": "src/**/*.py"})
    assert out.splitlines() == [
        "src/app/main.py:2:    return 'TODO'",
        "src/app/util.py:1:# todo later",
    ]
    assert grep(repo, {"pattern": "TODO", "path": "*.md"}) == "docs/a-spec.md:2:TODO: write"
    assert grep(repo, {"pattern": "TODO", "path": "docs/"}) == "docs/a-spec.md:2:TODO: write"
    assert grep(repo, {"pattern": "nothing here"}) == "No matches for nothing here."


def test_grep_bad_regex_is_an_error(repo: Path) -> None:
    with pytest.raises(SearchError, match="Invalid regex"):
        grep(repo, {"pattern": "("})


def test_grep_is_bounded_and_says_how_much_was_left_out(repo: Path) -> None:
    (repo / "many.txt").write_text("hit " + "x" * 1000 + "\n" + "hit\n" * 300)
    out = grep(repo, {"pattern": "hit", "path": "many.txt"}).splitlines()
    assert len(out) == MAX_GREP_LINES + 1
    assert out[0].endswith("…[line truncated]") and len(out[0]) < 400
    assert out[-1] == "… 101 more matching lines not shown; narrow the pattern or path."


def test_glob_patterns(repo: Path) -> None:
    assert glob(repo, {"pattern": "src/**/*.py"}) == "src/app/main.py\nsrc/app/util.py"
    assert glob(repo, {"pattern": "**/*.md"}) == "docs/a-spec.md"
    assert glob(repo, {"pattern": "/workspace/docs/*.md"}) == "docs/a-spec.md"
    assert glob(repo, {"pattern": "build/*"}) == "No files match build/*."
    assert matches("*.py", "a/b/c.py") and not matches("src/*.py", "src/a/b.py")
    assert matches("test_[a-c]*.py", "tests/test_b1.py")


def test_glob_is_bounded(repo: Path) -> None:
    (repo / "gen").mkdir()
    for i in range(MAX_GLOB_FILES + 7):
        (repo / "gen" / f"f{i:04}.txt").write_text("")
    out = glob(repo, {"pattern": "gen/*.txt"}).splitlines()
    assert len(out) == MAX_GLOB_FILES + 1
    assert out[-1] == "… 7 more files not shown; use a narrower pattern."


def test_search_without_git_walks_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.py").write_text("needle")
    (tmp_path / "y.py").write_text("needle")
    assert grep(tmp_path, {"pattern": "needle"}) == "y.py:1:needle"


async def test_registry_runs_search_tools(repo: Path) -> None:
    tools = build_tools(repo, sandbox=False)
    res = await tools.run("grep", {"pattern": "handler", "path": "src/"})
    assert res.content == "src/app/main.py:1:def handler():" and not res.is_error
    res = await tools.run("glob", {})
    assert res.is_error and "pattern" in res.content
    assert tools.calls[0].summary == "grep handler in src/"
