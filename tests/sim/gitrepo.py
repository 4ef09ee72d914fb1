"""A bare git repository on disk, driven with git plumbing.

The simulator's repositories are real: clones, pushes and diffs go through git itself.
Helper commits are written with plumbing straight into the bare repository (no push, so
the branch-protection hook does not apply to them); pushes from clients go through
``git http-backend`` and meet the proc-receive hook installed here, which refuses updates
of the default branch the way GitHub's branch protection does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ZERO_SHA = "0" * 40
BYPASS_ENV = "PACT_SIM_BYPASS_PROTECTION"

PROC_RECEIVE = r'''#!{python}
"""Branch protection for the default branch, answered as GitHub does (GH006, "protected
branch hook declined"). git hands this hook the pushes to receive.procReceiveRefs."""
import os
import sys

PROTECTED = b"refs/heads/{branch}"
BYPASS = os.environ.get("{bypass}") == "1"


def read_pkt():
    head = sys.stdin.buffer.read(4)
    size = int(head, 16) if head else 0
    return sys.stdin.buffer.read(size - 4).rstrip(b"\n") if size else None


def write_pkt(data=None):
    sys.stdout.buffer.write(b"0000" if data is None else b"%04x" % (len(data) + 4) + data)


while read_pkt() is not None:
    pass
write_pkt(b"version=1\n")
write_pkt()
sys.stdout.flush()
commands = []
while (line := read_pkt()) is not None:
    commands.append(line.split(b" ", 2))
for _old, _new, ref in commands:
    if ref != PROTECTED or BYPASS:
        write_pkt(b"ok " + ref)
        write_pkt(b"option fall-through")
        continue
    sys.stderr.write(
        f"error: GH006: Protected branch update failed for {ref.decode()}.\n"
        "error: Changes must be made through a pull request.\n"
    )
    write_pkt(b"ng " + ref + b" protected branch hook declined")
write_pkt()
sys.stdout.flush()
'''

SIM_AUTHOR = ("GitHub Simulator", "sim@users.noreply.github.local")


@dataclass(frozen=True)
class FileChange:
    filename: str
    status: str  # added | modified | removed | renamed
    additions: int
    deletions: int
    patch: str | None
    sha: str


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str
    author_name: str
    author_email: str
    parents: tuple[str, ...]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != BYPASS_ENV}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
    )
    if extra:
        env.update(extra)
    return env


class BareRepo:
    """A bare repository at ``path`` whose default branch is protected."""

    def __init__(self, path: Path, default_branch: str = "main") -> None:
        self.path = path
        self.default_branch = default_branch
        self._diffs: dict[tuple[str, str], list[FileChange]] = {}  # commits never change
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--bare", f"--initial-branch={default_branch}")
        self.git("config", "http.receivepack", "true")
        self.git("config", "receive.denyDeleteCurrent", "refuse")
        self.git("config", "receive.procReceiveRefs", f"refs/heads/{default_branch}")
        hook = path / "hooks" / "proc-receive"
        hook.write_text(
            PROC_RECEIVE.replace("{python}", sys.executable)
            .replace("{branch}", default_branch)
            .replace("{bypass}", BYPASS_ENV)
        )
        hook.chmod(0o755)
        # An executable no-op pre-receive: tests may overwrite its text with extra rules.
        extra = path / "hooks" / "pre-receive"
        extra.write_text("#!/bin/sh\n# extra push rules for a test go here\nexit 0\n")
        extra.chmod(0o755)

    def git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
        return self.git_bytes(*args, input=input, env=env).decode("utf-8", "replace")

    def git_bytes(
        self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None
    ) -> bytes:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            input=input,
            capture_output=True,
            env=_env(env),
            check=False,
        )
        if proc.returncode != 0:
            raise GitError(args, proc.returncode, proc.stderr.decode("utf-8", "replace"))
        return proc.stdout

    def rev(self, ref: str) -> str | None:
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
        except GitError:
            return None

    def branches(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def refs(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def commit(
        self,
        branch: str,
        files: dict[str, str | bytes | None],
        message: str,
        author: tuple[str, str] = SIM_AUTHOR,
        start: str | None = None,
    ) -> str:
        """Commit ``files`` (None deletes) on ``branch``, created from ``start`` (default: the
        branch itself, else the default branch, else an orphan). Returns the new sha."""
        old = self.rev(f"refs/heads/{branch}")
        parent = old
        if parent is None:
            parent = self.rev(start or f"refs/heads/{self.default_branch}")
        with tempfile.TemporaryDirectory(prefix="sim-index-") as tmp:
            index_env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if parent:
                self.git("read-tree", parent, env=index_env)
            for path, content in files.items():
                if content is None:
                    self.git("update-index", "--force-remove", "--", path, env=index_env)
                    continue
                data = content.encode() if isinstance(content, str) else content
                blob = self.git("hash-object", "-w", "--stdin", input=data).strip()
                self.git(
                    "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index_env
                )
            tree = self.git("write-tree", env=index_env).strip()
        name, email = author
        ident = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        args = ["commit-tree", tree, "-m", message]
        if parent:
            args[2:2] = ["-p", parent]
        sha = self.git(*args, env=ident).strip()
        self.git("update-ref", f"refs/heads/{branch}", sha, old or ZERO_SHA)
        return sha

    def read(self, ref: str, path: str) -> bytes | None:
        try:
            return self.git_bytes("cat-file", "blob", f"{ref}:{path}")
        except GitError:
            return None

    def entry(self, ref: str, path: str) -> tuple[str, str] | None:
        """(type, sha) of ``path`` at ``ref``: type is blob or tree."""
        spec = f"{ref}:{path}" if path else f"{ref}^{{tree}}"
        try:
            sha = self.git("rev-parse", "--verify", "--quiet", spec).strip()
            kind = self.git("cat-file", "-t", sha).strip()
        except GitError:
            return None
        return kind, sha

    def list_tree(self, ref: str, path: str) -> list[tuple[str, str, str, int]]:
        """(name path, type, sha, size) for each entry of the directory ``path``."""
        spec = f"{ref}:{path}" if path else f"{ref}^{{tree}}"
        out = self.git("ls-tree", "-l", spec)
        entries = []
        for line in out.splitlines():
            meta, name = line.split("\t", 1)
            _mode, kind, sha, size = meta.split()
            full = f"{path.rstrip('/')}/{name}" if path else name
            entries.append((full, kind, sha, int(size) if size != "-" else 0))
        return entries

    def log(self, ref: str, limit: int = 100) -> list[Commit]:
        out = self.git(
            "log", f"--max-count={limit}", "--format=%H%x00%P%x00%an%x00%ae%x00%B%x1e", ref, "--"
        )
        commits = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if not record:
                continue
            sha, parents, name, email, message = record.split("\x00", 4)
            commits.append(Commit(sha, message.strip(), name, email, tuple(parents.split())))
        return commits

    def commit_details(self, sha: str) -> tuple[str, str]:
        """(tree sha, author date in ISO 8601) of a commit."""
        tree, date = self.git("show", "-s", "--format=%T%x00%aI", sha).strip().split("\x00")
        return tree, date

    def merge_base(self, a: str, b: str) -> str | None:
        try:
            return self.git("merge-base", a, b).strip() or None
        except GitError:
            return None

    def count_commits(self, base: str, head: str) -> int:
        return int(self.git("rev-list", "--count", f"{base}..{head}").strip() or 0)

    def diff(self, base: str, head: str) -> list[FileChange]:
        """Files changed from the merge base of ``base`` and ``head`` to ``head``, as GitHub's
        pull request file list reports them."""
        key = (self.rev(base) or base, self.rev(head) or head)
        if key in self._diffs:
            return self._diffs[key]
        changes = self._diff(*key)
        self._diffs[key] = changes
        return changes

    def _diff(self, base: str, head: str) -> list[FileChange]:
        start = self.merge_base(base, head) or base
        raw = self.git("diff", "--no-renames", "--numstat", "-z", start, head)
        counts: dict[str, tuple[int, int]] = {}
        for item in raw.split("\x00"):
            if not item:
                continue
            add, dele, name = item.split("\t", 2)
            counts[name] = (int(add) if add != "-" else 0, int(dele) if dele != "-" else 0)
        status_raw = self.git("diff", "--no-renames", "--name-status", "-z", start, head)
        parts = [p for p in status_raw.split("\x00") if p]
        statuses = dict(zip(parts[1::2], parts[0::2], strict=False))
        patches = self._patches(start, head)
        blobs = self._blobs(head, start)
        changes = []
        for name, code in statuses.items():
            status = {"A": "added", "D": "removed", "M": "modified"}.get(code[0], "changed")
            add, dele = counts.get(name, (0, 0))
            changes.append(
                FileChange(name, status, add, dele, patches.get(name), blobs.get(name, ZERO_SHA))
            )
        return changes

    def _blobs(self, head: str, start: str) -> dict[str, str]:
        """Blob sha per path: at ``head``, else (removed files) at ``start``."""
        out: dict[str, str] = {}
        for ref in (start, head):
            for line in self.git("ls-tree", "-r", "-z", ref).split("\x00"):
                if line:
                    meta, name = line.split("\t", 1)
                    out[name] = meta.split()[2]
        return out

    def _patches(self, start: str, head: str) -> dict[str, str]:
        """Each file's hunks (GitHub's ``patch``: the diff without its header lines)."""
        out = self.git("diff", "--no-renames", "--no-color", start, head)
        patches: dict[str, str] = {}
        for block in re.split(r"^diff --git ", out, flags=re.M):
            if not block:
                continue
            header, sep, body = block.partition("\n@@")
            if not sep:
                continue  # binary or mode-only change: GitHub omits the patch
            name = _path_of(header)
            if name:
                patches[name] = ("@@" + body).rstrip("\n")
        return patches


def _path_of(header: str) -> str | None:
    """The new (or, when deleted, old) path named by a diff block's ---/+++ lines."""
    old = new = None
    for line in header.splitlines():
        if line.startswith("--- "):
            old = line[4:]
        elif line.startswith("+++ "):
            new = line[4:]
    for name, prefix in ((new, "b/"), (old, "a/")):
        if name and name != "/dev/null":
            name = name.strip('"')
            return name[len(prefix) :] if name.startswith(prefix) else name
    return None


HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def diff_hunk(patch: str | None, line: int) -> tuple[str, int | None]:
    """GitHub's ``diff_hunk`` for a comment on new-file ``line``: the hunk's lines up to that
    line, and the comment's ``position`` in the file's patch (None when outside the diff)."""
    if not patch:
        return "", None
    lines = patch.split("\n")
    hunk_start = 0
    new_no = 0
    for pos, text in enumerate(lines):
        match = HUNK.match(text)
        if match:
            hunk_start = pos
            new_no = int(match.group(3)) - 1
            continue
        if text.startswith("-"):
            continue
        new_no += 1
        if new_no == line:
            return "\n".join(lines[hunk_start : pos + 1]), pos
    return "\n".join(lines[: min(len(lines), 4)]), None


class GitError(RuntimeError):
    def __init__(self, args: tuple[str, ...], code: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} exited {code}: {stderr.strip()}")
        self.stderr = stderr
        self.code = code
