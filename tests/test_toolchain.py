"""Setup and test lines proposed from a repository's files, and what a test run said."""

from __future__ import annotations

from pathlib import Path

import pytest

from pact_bot import caches
from pact_bot.repo_config import RepoConfigError, parse_repo_config
from pact_bot.settings import ConfigError, load_settings
from pact_bot.toolchain import SuiteRun, detect, parse_counts


@pytest.mark.parametrize(
    ("files", "setup", "test"),
    [
        (
            ["uv.lock", "pyproject.toml", "tests/test_a.py"],
            ("uv sync --frozen",),
            "uv run pytest -q",
        ),
        (
            ["pyproject.toml", "requirements-dev.txt", "src/a.py", "tests/test_a.py"],
            (
                "python3 -m venv ~/venv",
                "~/venv/bin/pip install -e .",
                "~/venv/bin/pip install -r requirements-dev.txt",
            ),
            "~/venv/bin/python -m pytest -q",
        ),
        (
            ["requirements.txt", "app.py"],
            ("python3 -m venv ~/venv", "~/venv/bin/pip install -r requirements.txt"),
            None,
        ),
        (["package.json", "package-lock.json", "index.js"], ("npm ci",), "npm test"),
        (["README.md", "docs/x-spec.md"], (), None),
    ],
)
def test_the_usual_setup_is_proposed_from_the_files(
    files: list[str], setup: tuple[str, ...], test: str | None
) -> None:
    proposal = detect(files)
    assert (proposal.setup, proposal.test_command) == (setup, test)


PYTEST_FAIL = """\
tests/test_a.py ..F.s                                                    [100%]
=================================== FAILURES ===================================
___________________________________ test_c ____________________________________
E       assert 1 == 2
=========================== short test summary info ============================
FAILED tests/test_a.py::test_c - assert 1 == 2
============= 1 failed, 3 passed, 1 skipped, 2 warnings in 0.12s ==============
"""


def test_a_failing_pytest_run_is_counted_and_called_failed() -> None:
    run = SuiteRun("pytest -q", 1, PYTEST_FAIL)
    assert run.counts == {"failed": 1, "passed": 3, "skipped": 1}
    assert (run.outcome, run.line()) == ("failed", "1 failed, 3 passed, 1 skipped")
    assert run.tail.endswith("2 warnings in 0.12s ==============")


def test_other_runners_verdicts() -> None:
    jest = "Test Suites: 1 failed, 1 total\nTests:       2 failed, 5 passed, 7 total\n"
    assert parse_counts(jest) == {"failed": 2, "passed": 5}
    unittest = "....E\n----\nRan 5 tests in 0.01s\n\nFAILED (failures=1, errors=1)\n"
    assert parse_counts(unittest) == {"passed": 3, "failed": 1, "errors": 1}
    assert parse_counts("Ran 2 tests in 0.00s\n\nOK\n") == {"passed": 2}
    assert parse_counts("collected 0 items / 1 error\n== 1 error in 0.1s ==") == {"errors": 1}


def test_a_run_without_a_verdict_is_errored_not_failed() -> None:
    missing = SuiteRun("pytest -q", 127, "bash: pytest: command not found\n")
    assert (missing.outcome, missing.line()) == ("errored", "errored (exit 127)")
    slow = SuiteRun("pytest -q", None, "tests/test_a.py ..", timed_out=True)
    assert (slow.outcome, slow.line()) == ("errored", "errored (timed out)")
    assert SuiteRun("pytest", 0, "== 4 passed in 1s ==").line() == "4 passed"


def test_caches_are_per_repository_and_the_least_recently_used_goes_first(tmp_path: Path) -> None:
    old = caches.repo_cache(tmp_path, "octo/old", now=1_000)
    mid = caches.repo_cache(tmp_path, "octo/mid", now=2_000)
    new = caches.repo_cache(tmp_path, "other/new", now=3_000)
    for c in (old, mid, new):
        (c / "pkg.whl").write_bytes(b"x" * 100_000)
    assert old != mid and old.parent == mid.parent and new.parent.name == "other"
    size = caches.tree_size(new)
    assert size >= 100_000
    # Room for two: the oldest goes; a running job's cache is never taken even when oldest.
    removed = caches.evict(tmp_path, max_bytes=2 * size, keep=[old])
    assert removed == [mid] and old.exists() and new.exists() and not mid.exists()
    assert caches.evict(tmp_path, max_bytes=10 * size) == []
    assert oct((tmp_path / "caches" / "octo" / "old").stat().st_mode & 0o777) == "0o700"


def test_network_hosts_come_from_the_server_and_the_repository(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PACT_SANDBOX_ALLOW", "npm.corp:4873, *.internal.example")
    settings = load_settings(_env_file=None)
    cfg = parse_repo_config(
        "sandbox:\n  network:\n    allow: [files.example.org]\n    agent: true\n"
        "test_command: make check\n"
    )
    eff = cfg.effective(settings)
    assert eff.network_allow == ("npm.corp:4873", "*.internal.example", "files.example.org")
    assert (eff.agent_network, eff.test_command) == (True, "make check")
    assert "test_command: make check" in eff.as_text()
    assert parse_repo_config("").effective(settings).agent_network is False


def test_a_bad_host_is_refused_where_it_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RepoConfigError, match="line 3"):
        parse_repo_config("sandbox:\n  network:\n    allow: ['pypi.org/simple extra']\n")
    monkeypatch.setenv("PACT_SANDBOX_ALLOW", "http://ok.example, not a host")
    with pytest.raises(ConfigError, match="PACT_SANDBOX_ALLOW"):
        load_settings(_env_file=None)
