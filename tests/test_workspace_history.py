"""A mirror's first fetch is shallow; its history is completed when the first job ends,
and before anything that needs it. What a user would notice: the first job's PR, and later
jobs (revise, rebase, drift) that see the whole history, even when completing it failed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_workspace import TOKEN, Upstream, git

from pact_bot.workspace import GitError, Workspace

BRANCH = "pact/code/widget"


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """main with five commits, each changing `notes.txt`."""
    up = Upstream(tmp_path)
    for n in range(5):
        up.commit({"notes.txt": f"version {n}\n", f"src/m{n}.py": f"N = {n}\n"}, message=f"v{n}")
    return up


def commits_in(repo: Path, ref: str) -> int:
    return int(git("rev-list", "--count", ref, cwd=repo).strip())


def shallow(ws: Workspace) -> bool:
    return (ws.mirror_path("acme/demo") / "shallow").exists()


async def prepare(ws: Workspace, up: Upstream, job: str, branch: str = BRANCH, **kw: Any) -> Path:
    return await ws.prepare("acme/demo", up.url, TOKEN, "main", branch, job, **kw)


def failing_unshallow(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every `fetch --unshallow` fail, as a network error would; returns the tries."""
    real_git = ws._git
    tries: list[str] = []

    async def git_(args: Any, cwd: Any, **kw: Any) -> Any:
        if "--unshallow" in args:
            tries.append(str(cwd))
            raise GitError(["git", *args], "fatal: unable to access: Connection reset", 128)
        return await real_git(args, cwd, **kw)

    monkeypatch.setattr(ws, "_git", git_)
    return tries


async def test_first_job_pushes_from_a_shallow_mirror_and_leaves_it_complete(
    tmp_path: Path, upstream: Upstream
):
    ws = Workspace(tmp_path / "data")
    wt = await prepare(ws, upstream, "job1")
    mirror = ws.mirror_path("acme/demo")
    assert shallow(ws), "the first fetch takes the tips only"
    assert (wt / "notes.txt").read_text() == "version 4\n"

    (wt / "src" / "widget.py").write_text("W = 1\n")
    sha = await ws.commit(wt, "Implement widget")
    await ws.push(wt, upstream.url, TOKEN, BRANCH)

    assert upstream.sha(BRANCH) == sha
    assert git("rev-parse", f"{BRANCH}^", cwd=upstream.bare).strip() == upstream.sha("main")
    assert git("fsck", "--connectivity-only", cwd=upstream.bare) == ""
    await ws.remove(wt)
    assert not shallow(ws)
    assert commits_in(mirror, "refs/remotes/origin/main") == 5
    assert commits_in(mirror, f"refs/remotes/origin/{BRANCH}") == 6


async def test_a_later_job_sees_the_whole_history(tmp_path: Path, upstream: Upstream):
    ws = Workspace(tmp_path / "data")
    await ws.remove(await prepare(ws, upstream, "job1"))

    wt = await prepare(ws, upstream, "job2", "pact/code/other")

    log = git("log", "--format=%s", cwd=wt).split()
    assert log == ["v4", "v3", "v2", "v1", "v0"]
    assert git("show", "HEAD~4:notes.txt", cwd=wt) == "version 0\n"
    patch = git("log", "-p", "--format=%s", "--", "notes.txt", cwd=wt)
    assert "+version 1" in patch and "-version 0" in patch


def fork_three_back(upstream: Upstream) -> None:
    """A PR branch forked three commits back, with a commit of its own; main moved on since."""
    git("checkout", "--quiet", "-B", BRANCH, "main~3", cwd=upstream.dev)
    (upstream.dev / "src" / "widget.py").write_text("W = 1\n")
    git("add", "-A", cwd=upstream.dev)
    git("commit", "--quiet", "-m", "widget", cwd=upstream.dev)
    git("push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=upstream.dev)
    upstream.commit({"src/m0.py": "N = 'main'\n"}, message="v5")


async def test_a_rebase_job_on_a_shallow_mirror_merges_with_the_real_merge_base(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
):
    fork_three_back(upstream)
    ws = Workspace(tmp_path / "data")
    tries = failing_unshallow(ws, monkeypatch)  # the last job could not complete it
    wt = await prepare(ws, upstream, "job1", reuse_branch=True)
    await ws.remove(wt)
    assert shallow(ws) and tries
    monkeypatch.undo()

    wt = await prepare(ws, upstream, "job2", reuse_branch=True)
    conflicts = await ws.merge_remote(wt, "main", upstream.url, TOKEN)

    assert conflicts == []  # a clean merge, not "refusing to merge unrelated histories"
    assert not shallow(ws)
    assert (wt / "src" / "m0.py").read_text() == "N = 'main'\n"
    assert (wt / "src" / "widget.py").read_text() == "W = 1\n"
    assert (wt / "notes.txt").read_text() == "version 4\n"


async def test_a_merge_after_a_killed_history_fetch_still_merges(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
):
    fork_three_back(upstream)
    ws = Workspace(tmp_path / "data")
    failing_unshallow(ws, monkeypatch)
    wt = await prepare(ws, upstream, "job1", reuse_branch=True)
    monkeypatch.undo()
    # Another job's `/pact rebase` was cancelled (or timed out) while it completed the
    # history: git was killed and left its lock.
    (ws.mirror_path("acme/demo") / "shallow.lock").write_text("")

    conflicts = await ws.merge_remote(wt, "main", upstream.url, TOKEN)

    assert conflicts == []
    assert not shallow(ws)
    assert (wt / "src" / "m0.py").read_text() == "N = 'main'\n"
    assert (wt / "src" / "widget.py").read_text() == "W = 1\n"


async def test_a_failed_completion_leaves_a_usable_mirror_that_a_later_job_completes(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
):
    ws = Workspace(tmp_path / "data")
    tries = failing_unshallow(ws, monkeypatch)
    wt = await prepare(ws, upstream, "job1")
    await ws.remove(wt)  # does not raise: the job's PR is out already
    assert tries and shallow(ws)

    new = upstream.commit({"notes.txt": "version 5\n"}, message="v5")
    wt = await prepare(ws, upstream, "job2")
    assert await ws.head(wt) == new
    (wt / "x.py").write_text("X = 1\n")
    sha = await ws.commit(wt, "x")
    await ws.push(wt, upstream.url, TOKEN, BRANCH)
    assert upstream.sha(BRANCH) == sha
    monkeypatch.undo()
    await ws.remove(wt)

    assert not shallow(ws)
    wt = await prepare(ws, upstream, "job3", "pact/code/three")
    assert git("log", "--format=%s", cwd=wt).split() == ["v5", "v4", "v3", "v2", "v1", "v0"]


async def test_the_token_stays_out_of_the_mirror_through_completion(
    github_sim: Any, tmp_path: Path
):
    repo = github_sim.add_repo("acme", "demo", {"README.md": "# demo\n"})
    for n in range(3):
        github_sim.commit(repo, "main", {"notes.txt": f"version {n}\n"}, f"v{n}")
    token = github_sim.create_token(repositories=["acme/demo"])
    ws = Workspace(tmp_path / "data")
    wt = await ws.prepare("acme/demo", repo.clone_url, token, "main", BRANCH, "job1")
    (wt / "w.py").write_text("W = 1\n")
    sha = await ws.commit(wt, "Implement widget")
    await ws.push(wt, repo.clone_url, token, BRANCH)
    await ws.remove(wt)

    assert repo.branches()[BRANCH] == sha
    assert not shallow(ws)
    assert commits_in(ws.mirror_path("acme/demo"), "refs/remotes/origin/main") == 4
    for path in ws.data_dir.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    git_calls = [r for r in github_sim.requests if r.path.startswith("/acme/demo.git/")]
    assert git_calls and all(r.token == token for r in git_calls)


async def test_a_first_job_pushes_after_main_moved_since_its_shallow_fetch(
    tmp_path: Path, upstream: Upstream
):
    up = upstream
    ws = Workspace(tmp_path / "data")
    wt = await prepare(ws, up, "job1")
    base = await ws.head(wt)
    moved = up.commit({"notes.txt": "version 3\n", "other.txt": "o\n"}, message="v3")

    (wt / "w.py").write_text("W = 1\n")
    sha = await ws.commit(wt, "Implement widget")
    await ws.push(wt, up.url, TOKEN, BRANCH)

    assert up.sha(BRANCH) == sha and up.sha("main") == moved
    assert git("rev-parse", f"{BRANCH}^", cwd=up.bare).strip() == base
    assert git("fsck", "--connectivity-only", cwd=up.bare) == ""


async def test_a_second_worker_starts_while_the_first_jobs_completion_is_pending(
    tmp_path: Path, upstream: Upstream
):
    # Two worker processes on one machine: one data directory, two workspaces.
    first, second = Workspace(tmp_path / "data"), Workspace(tmp_path / "data")
    wt1 = await prepare(first, upstream, "job1")
    wt2 = await prepare(second, upstream, "job2", "pact/code/other")  # shallow still
    (wt2 / "b.py").write_text("B = 1\n")
    await second.commit(wt2, "b")

    # the first job ends (its completion) while the second pushes
    await asyncio.gather(
        first.remove(wt1), second.push(wt2, upstream.url, TOKEN, "pact/code/other")
    )
    assert not shallow(first)
    (wt2 / "c.py").write_text("C = 1\n")
    sha = await second.commit(wt2, "c")
    await second.push(wt2, upstream.url, TOKEN, "pact/code/other")
    await second.remove(wt2)

    assert upstream.sha("pact/code/other") == sha
    assert git("fsck", "--connectivity-only", cwd=upstream.bare) == ""
    assert commits_in(second.mirror_path("acme/demo"), "refs/remotes/origin/pact/code/other") == 7
    assert git("fsck", "--connectivity-only", cwd=second.mirror_path("acme/demo")) == ""


async def test_the_spare_taken_after_main_moved_starts_the_job_at_the_new_tip(
    tmp_path: Path, upstream: Upstream
):
    ws = Workspace(tmp_path / "data")
    await ws.update_mirror("acme/demo", upstream.url, TOKEN)  # the spare: main as it was
    new = upstream.commit({"notes.txt": "version 5\n"}, message="v5")

    wt = await prepare(ws, upstream, "job1")  # fetches again

    assert await ws.head(wt) == new
    assert (wt / "notes.txt").read_text() == "version 5\n"
    assert git("status", "--porcelain", cwd=wt) == ""
