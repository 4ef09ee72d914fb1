"""The repository's own toolchain: what sets it up, what runs its tests, and what the run said.

Detection only proposes: a repository with no `sandbox.setup` gets the proposed lines in the
progress comment, never run silently, because a guessed install step that half works is worse
than none. A detected test command is run, since running tests changes nothing but the report.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

TAIL_LINES = 40
VENV = "~/venv"

_PYTEST = re.compile(
    r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)\b", re.I
)
_JEST = re.compile(r"^Tests:\s+(.*\d+ total)", re.M)
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.M)
_UNITTEST_FAILED = re.compile(r"^FAILED \(([^)]*)\)", re.M)


@dataclass(frozen=True)
class Proposal:
    setup: tuple[str, ...]
    test_command: str | None
    because: str


def detect(files: Collection[str]) -> Proposal:
    """From the repository's tracked files, the usual setup and test lines for its toolchain."""
    top = {f for f in files if "/" not in f}
    has_tests = any(f.startswith(("tests/", "test/")) or "/tests/" in f for f in files)
    py_venv = f"python3 -m venv {VENV}"
    setup: tuple[str, ...]
    if "uv.lock" in top:
        setup = ("uv sync --frozen",)
        test = "uv run pytest -q" if has_tests else None
        return Proposal(setup, test, "uv.lock")
    if "pyproject.toml" in top or "setup.py" in top:
        setup = (py_venv, f"{VENV}/bin/pip install -e .")
        reqs = sorted(f for f in top if f.startswith("requirements") and f.endswith(".txt"))
        setup += tuple(f"{VENV}/bin/pip install -r {r}" for r in reqs)
        return Proposal(
            setup, f"{VENV}/bin/python -m pytest -q" if has_tests else None, "pyproject.toml"
        )
    reqs = sorted(f for f in top if f.startswith("requirements") and f.endswith(".txt"))
    if reqs:
        setup = (py_venv, *(f"{VENV}/bin/pip install -r {r}" for r in reqs))
        test = f"{VENV}/bin/python -m pytest -q" if has_tests else None
        return Proposal(setup, test, reqs[0])
    if "package-lock.json" in top:
        return Proposal(("npm ci",), "npm test", "package-lock.json")
    if "package.json" in top:
        return Proposal(("npm install",), "npm test", "package.json")
    return Proposal((), None, "")


@dataclass(frozen=True)
class SuiteRun:
    command: str
    exit_code: int | None
    output: str
    timed_out: bool = False

    @property
    def outcome(self) -> str:
        """passed, failed (tests ran and some failed) or errored (the runner did not get
        as far as a verdict: a timeout, a crash, a missing tool)."""
        if self.exit_code == 0 and not self.timed_out:
            return "passed"
        counts = self.counts
        if counts.get("failed") or counts.get("errors"):
            return "failed"
        return "errored"

    @property
    def counts(self) -> dict[str, int]:
        return parse_counts(self.output)

    @property
    def tail(self) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-TAIL_LINES:])

    def line(self) -> str:
        """e.g. `12 passed, 1 failed` or `errored (timed out)`."""
        counts = ", ".join(f"{n} {k}" for k, n in self.counts.items())
        if self.timed_out:
            return f"errored (timed out){': ' + counts if counts else ''}"
        if counts:
            return counts if self.outcome != "errored" else f"errored: {counts}"
        return {"passed": "passed", "failed": "failed"}.get(self.outcome, "errored") + (
            f" (exit {self.exit_code})" if self.exit_code else ""
        )


def parse_counts(output: str) -> dict[str, int]:
    """passed/failed/errors/skipped as the runner printed them (pytest, unittest, jest);
    empty when it printed no verdict."""
    jest = _JEST.findall(output)
    if jest:
        return _normalise(re.findall(r"(\d+) (passed|failed|skipped)", jest[-1]))
    lines = [ln for ln in output.splitlines() if _PYTEST.search(ln) and " in " in ln]
    if lines:
        return _normalise(_PYTEST.findall(lines[-1]))
    ran = _UNITTEST_RAN.findall(output)
    if ran:
        total = int(ran[-1])
        bad = _UNITTEST_FAILED.findall(output)
        pairs = re.findall(r"(failures|errors|skipped)=(\d+)", bad[-1]) if bad else []
        counts = {("failed" if k == "failures" else k): int(n) for k, n in pairs}
        counts = {"passed": total - counts.get("failed", 0) - counts.get("errors", 0)} | counts
        return {k: v for k, v in counts.items() if v or k == "passed"}
    return {}


def _normalise(pairs: list[tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n, kind in pairs:
        key = kind.lower()
        key = "errors" if key.startswith("error") else key
        if key.startswith("warning") or key == "deselected":
            continue
        out[key] = out.get(key, 0) + int(n)
    return out
