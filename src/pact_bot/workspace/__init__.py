"""Git checkouts for jobs: a bare mirror per repository, a worktree per job.

The mirror is fetched, never re-cloned, so the second job on a repository only pays for
new objects. Every job works in its own `git worktree`, so concurrent jobs on one
repository share objects but never a working directory. Every git process is started by
`git.GitRunner`, hardened against whatever the agent wrote into the tree.
"""

from pact_bot.workspace.commits import ChangedFile, Changes
from pact_bot.workspace.errors import (
    GitError,
    PushRejected,
    RebaseConflict,
    WorkspaceBusy,
    WorkspaceError,
)
from pact_bot.workspace.git import DEFAULT_IDENTITY, GitRunner, Remote, default_runner
from pact_bot.workspace.worktrees import Workspace

__all__ = [
    "DEFAULT_IDENTITY",
    "ChangedFile",
    "Changes",
    "GitError",
    "GitRunner",
    "PushRejected",
    "RebaseConflict",
    "Remote",
    "Workspace",
    "WorkspaceBusy",
    "WorkspaceError",
    "default_runner",
]
