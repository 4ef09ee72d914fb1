"""What the tests that run real bubblewrap share: the skip where it cannot run, and the
worktree the bash tool sees as /workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from pact_bot.agent.tools.bwrap import sandbox_available

_ok, _reason = sandbox_available()
needs_bwrap = pytest.mark.skipif(not _ok, reason=f"bubblewrap unusable: {_reason}")


def readme_worktree(tmp_path: Path) -> Path:
    """A worktree holding one README.md ("hello")."""
    d = tmp_path / "wt"
    d.mkdir()
    (d / "README.md").write_text("hello\n")
    return d
