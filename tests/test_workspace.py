"""Workspace against real git: a bare upstream served over file:// (no auth involved).

Auth, token scoping and protected branches are covered against the GitHub simulator in
tests/test_github_client.py.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from pathlib import Path

import pytest
from unidiff import PatchSet

from pact_bot.workspace import (
    GitError,
    PushRejected,
    RebaseConflict,
    Workspace,
    WorkspaceBusy,
    WorkspaceError,
)

TOKEN = "ghs_test0123456789abcdefTOKEN"
BRANCH = "pact/code/widget"


def subcommand(argv: tuple[str, ...]) -> str:
    """`fetch` of `git -c k=v … fetch …`."""
    args = iter(argv[1:])
    for arg in args:
        if arg != "-c":
            return arg
        next(args)
    return ""


def auth_value(value: str) -> str:
    """The token as git's environment holds it (a Basic auth header), decoded."""
    if value.startswith("Authorization: Basic "):
        return base64.b64decode(value.removeprefix("Authorization: Basic ")).decode()
    return value


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


class Upstream:
    """A bare repository standing in for GitHub, plus a clone people push from."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "upstream.git"
        self.dev = root / "dev"
        git("init", "--quiet", "--bare", "-b", "main", str(self.bare), cwd=root)
        git("clone", "--quiet", str(self.bare), str(self.dev), cwd=root)
        git("checkout", "--quiet", "-b", "main", cwd=self.dev)
        self.url = self.bare.as_uri()

    def commit(self, files: dict[str, str], branch: str = "main", message: str = "dev") -> str:
        git("fetch", "--quiet", "origin", cwd=self.dev)
        exists = git("ls-remote", "--heads", "origin", branch, cwd=self.dev).strip()
        if exists:
            git("checkout", "--quiet", "-B", branch, f"origin/{branch}", cwd=self.dev)
        else:
            git("checkout", "--quiet", "-B", branch, cwd=self.dev)
        for path, text in files.items():
            p = self.dev / path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        git("add", "-A", cwd=self.dev)
        git("commit", "--quiet", "-m", message, cwd=self.dev)
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=self.dev)
        return self.sha(branch)

    def sha(self, branch: str) -> str:
        return git("rev-parse", f"refs/heads/{branch}", cwd=self.bare).strip()

    def show(self, ref: str, path: str) -> str:
        return git("show", f"{ref}:{path}", cwd=self.bare)


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    up = Upstream(tmp_path)
    up.commit({"README.md": "# demo\n", "src/app.py": "print('hi')\n"}, message="init")
    return up


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "data")


async def prepare(ws: Workspace, up: Upstream, job: str = "job1", **kw: object) -> Path:
    return await ws.prepare("acme/demo", up.url, TOKEN, "main", BRANCH, job, **kw)  # type: ignore[arg-type]


async def test_prepare_checks_out_a_new_branch_from_base(ws: Workspace, upstream: Upstream):
    wt = await prepare(ws, upstream)

    assert wt == ws.data_dir / "worktrees" / "job1"
    assert (wt / "src" / "app.py").read_text() == "print('hi')\n"
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=wt).strip() == BRANCH
    assert await ws.head(wt) == upstream.sha("main")
    assert ws.tracked_files(wt) == ["README.md", "src/app.py"]
    assert (ws.data_dir / "mirrors" / "acme" / "demo.git").is_dir()


async def test_second_job_fetches_the_existing_mirror(ws: Workspace, upstream: Upstream):
    wt1 = await prepare(ws, upstream, "job1")
    mirror = ws.mirror_path("acme/demo")
    marker = mirror / "pact-marker"
    marker.write_text("the same mirror")
    new = upstream.commit({"NEWS.md": "news\n"})

    wt2 = await ws.prepare("acme/demo", upstream.url, TOKEN, "main", "pact/code/other", "job2")

    assert marker.exists(), "mirror was re-created instead of fetched"
    assert await ws.head(wt2) == new
    assert (wt2 / "NEWS.md").exists() and not (wt1 / "NEWS.md").exists()


async def test_token_never_lands_on_disk_or_in_argv(
    ws: Workspace, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
):
    seen: list[tuple[str, ...]] = []
    with_token: list[str] = []
    real = asyncio.create_subprocess_exec

    async def spy(*args: str, **kw: object) -> asyncio.subprocess.Process:
        seen.append(args)
        env = kw.get("env")
        if isinstance(env, dict) and any(TOKEN in auth_value(v) for v in env.values()):
            with_token.append(subcommand(args))
        return await real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    await ws.update_mirror("acme/demo", upstream.url, TOKEN)  # shallow, and the spare
    wt = await prepare(ws, upstream)
    (wt / "new.txt").write_text("x\n")
    await ws.commit(wt, "add")
    await ws.push(wt, upstream.url, TOKEN, BRANCH)
    await ws.remove(wt)  # the history's completion

    assert seen and not any(TOKEN in " ".join(a) for a in seen)
    # only the processes that talk to the remote get it, in their environment
    assert set(with_token) == {"fetch", "ls-remote", "push"}
    assert with_token.count("fetch") >= 3  # the first fetch, prepare's, the completion
    for path in ws.data_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


async def test_prepare_twice_with_the_same_job_id_starts_clean(ws: Workspace, upstream: Upstream):
    wt = await prepare(ws, upstream)
    (wt / "half-done.txt").write_text("from the crashed attempt\n")
    (wt / "README.md").write_text("scribbled\n")

    again = await prepare(ws, upstream)

    assert again == wt
    assert not (wt / "half-done.txt").exists()
    assert (wt / "README.md").read_text() == "# demo\n"


async def test_retry_after_a_crash_reclaims_the_dead_jobs_worktree(
    tmp_path: Path, upstream: Upstream
):
    first = Workspace(tmp_path / "data")
    await prepare(first, upstream, "job1")
    # The worker died: its process (and so its job lock) is gone, the directory is not.
    first.jobs.release("job1")

    restarted = Workspace(tmp_path / "data")
    wt = await prepare(restarted, upstream, "job1")
    assert (wt / "README.md").exists()
    # Another job id on the same branch, with the first job dead, is fine as well.
    await restarted.remove(wt)
    await prepare(restarted, upstream, "job1")
    restarted.jobs.release("job1")
    wt3 = await prepare(Workspace(tmp_path / "data"), upstream, "job3")
    assert (wt3 / "README.md").exists()


async def test_locks_left_by_a_killed_git_do_not_wedge_the_mirror(
    ws: Workspace, upstream: Upstream
):
    wt = await prepare(ws, upstream, "job1")
    ws.jobs.release("job1")  # the worker was killed mid-job ...
    mirror = ws.mirror_path("acme/demo")
    for stale in (
        mirror / "packed-refs.lock",  # ... during a fetch
        mirror / "refs" / "remotes" / "origin" / "main.lock",
        mirror / "refs" / "heads" / f"{BRANCH}.lock",  # ... during a commit
    ):
        stale.write_text("")
    new = upstream.commit({"NEWS.md": "news\n"})

    again = await prepare(ws, upstream, "job1")

    assert again == wt and await ws.head(again) == new


async def test_cancelled_first_clone_leaves_no_mirror_behind(
    ws: Workspace, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
):
    fetching = asyncio.Event()
    real_git = ws._git

    async def hanging_fetch(args, cwd, **kw):  # type: ignore[no-untyped-def]
        if args and args[0] == "fetch":
            fetching.set()
            await asyncio.Event().wait()  # a fetch that never ends
        return await real_git(args, cwd, **kw)

    monkeypatch.setattr(ws, "_git", hanging_fetch)
    update = asyncio.create_task(ws.update_mirror("acme/demo", upstream.url, TOKEN))
    await asyncio.wait_for(fetching.wait(), 10)
    mirror = ws.mirror_path("acme/demo")
    assert mirror.with_name(mirror.name + ".tmp").is_dir()  # the clone is staged ...

    update.cancel()
    with pytest.raises(asyncio.CancelledError):
        await update

    assert not mirror.exists()  # ... and dropped, not left half-made
    assert not mirror.with_name(mirror.name + ".tmp").exists()
    monkeypatch.undo()
    assert await ws.update_mirror("acme/demo", upstream.url, TOKEN) == mirror
    wt = await prepare(ws, upstream, fetch=False)
    assert await ws.head(wt) == upstream.sha("main")


async def test_the_update_ahead_of_a_first_job_checks_its_files_out_for_it(
    ws: Workspace, upstream: Upstream
):
    await ws.update_mirror("acme/demo", upstream.url, TOKEN)
    spare = ws.spare_path("acme/demo")
    assert (spare / "src" / "app.py").read_text() == "print('hi')\n"

    wt = await prepare(ws, upstream, fetch=False)

    assert not spare.exists(), "the job took the checkout"
    assert await ws.head(wt) == upstream.sha("main")
    assert (wt / "src" / "app.py").read_text() == "print('hi')\n"
    assert git("symbolic-ref", "HEAD", cwd=wt).strip() == f"refs/heads/{BRANCH}"
    assert git("status", "--porcelain", cwd=wt) == ""


async def test_a_cancelled_update_leaves_no_half_checked_out_spare(
    ws: Workspace, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
):
    adding = asyncio.Event()
    real_git = ws._git

    async def hanging_checkout(args, cwd, **kw):  # type: ignore[no-untyped-def]
        if "worktree" in args and "add" in args:
            adding.set()
            await asyncio.Event().wait()  # a checkout that never ends
        return await real_git(args, cwd, **kw)

    monkeypatch.setattr(ws, "_git", hanging_checkout)
    update = asyncio.create_task(ws.update_mirror("acme/demo", upstream.url, TOKEN))
    await asyncio.wait_for(adding.wait(), 10)
    update.cancel()
    with pytest.raises(asyncio.CancelledError):
        await update
    monkeypatch.undo()

    assert not ws.spare_path("acme/demo").exists()
    wt = await prepare(ws, upstream, fetch=False)
    assert await ws.head(wt) == upstream.sha("main")
    assert (wt / "src" / "app.py").read_text() == "print('hi')\n"


@pytest.mark.parametrize(
    "name",
    [
        *("--upload-pack=touch${IFS}pwned", "a/../../../HEAD", "main@{1}", "main^{/v}"),
        *(".hidden", "main --upload-pack=x", "-x", "x/-y", "x.lock", "x//y"),
    ],
)
async def test_a_default_branch_name_a_hostile_server_sends_never_reaches_gits_argv(
    ws: Workspace, upstream: Upstream, monkeypatch: pytest.MonkeyPatch, name: str
):
    real_git = ws._git
    argv: list[list[str]] = []

    async def hostile_server(args, cwd, **kw):  # type: ignore[no-untyped-def]
        if "ls-remote" in args and "--symref" in args:
            sha = upstream.sha("main")
            return 0, f"ref: refs/heads/{name}\tHEAD\n{sha}\tHEAD\n", ""
        argv.append(list(args))
        return await real_git(args, cwd, **kw)

    monkeypatch.setattr(ws, "_git", hostile_server)
    await ws.update_mirror("acme/demo", upstream.url, TOKEN)

    assert not ws.spare_path("acme/demo").exists()
    assert not [a for a in argv if any(name in arg for arg in a)]
    wt = await prepare(ws, upstream, fetch=False)  # the job checks out as it would have
    assert await ws.head(wt) == upstream.sha("main")
    assert (wt / "src" / "app.py").read_text() == "print('hi')\n"


async def test_a_default_branch_with_slashes_is_checked_out_as_the_spare(
    ws: Workspace, upstream: Upstream
):
    sha = upstream.commit({"src/app.py": "print('release')\n"}, "release/2.x", "r2")
    git("symbolic-ref", "HEAD", "refs/heads/release/2.x", cwd=upstream.bare)

    await ws.update_mirror("acme/demo", upstream.url, TOKEN)

    spare = ws.spare_path("acme/demo")
    assert git("rev-parse", "HEAD", cwd=spare).strip() == sha
    assert (spare / "src" / "app.py").read_text() == "print('release')\n"


async def test_prepare_without_fetch_uses_the_mirror_as_updated(ws: Workspace, upstream: Upstream):
    # No mirror yet: prepare clones it whatever `fetch` says.
    wt = await prepare(ws, upstream, "job1", fetch=False)
    assert await ws.head(wt) == upstream.sha("main")
    await ws.remove(wt)
    new = upstream.commit({"NEWS.md": "news\n"})

    await ws.update_mirror("acme/demo", upstream.url, TOKEN)
    wt = await prepare(ws, upstream, "job2", fetch=False)

    assert await ws.head(wt) == new


async def test_a_live_job_on_the_same_branch_is_refused(tmp_path: Path, upstream: Upstream):
    one = Workspace(tmp_path / "data")
    await prepare(one, upstream, "job1")
    two = Workspace(tmp_path / "data")

    with pytest.raises(WorkspaceBusy, match="in use by another job"):
        await prepare(two, upstream, "job2")
    with pytest.raises(WorkspaceBusy, match="already running"):
        await prepare(two, upstream, "job1")


async def test_existing_remote_branch_is_continued(ws: Workspace, upstream: Upstream):
    tip = upstream.commit({"docs/implementation-summary-widget.md": "v1\n"}, branch=BRANCH)

    wt = await prepare(ws, upstream)

    assert await ws.head(wt) == tip
    assert (wt / "docs" / "implementation-summary-widget.md").read_text() == "v1\n"


async def test_reuse_branch_requires_the_remote_branch(ws: Workspace, upstream: Upstream):
    with pytest.raises(WorkspaceError, match="does not exist on the remote"):
        await prepare(ws, upstream, reuse_branch=True)
    # The failed attempt left nothing behind that blocks a retry.
    wt = await prepare(ws, upstream)
    assert wt.exists()


async def test_unknown_base_branch_is_a_clear_error(ws: Workspace, upstream: Upstream):
    with pytest.raises(WorkspaceError, match="base branch 'nope' does not exist"):
        await ws.prepare("acme/demo", upstream.url, TOKEN, "nope", BRANCH, "job1")


async def test_base_can_be_a_full_ref_or_a_sha(ws: Workspace, upstream: Upstream):
    spec_tip = upstream.commit({"docs/widget-spec.md": "# spec\n"}, branch="spec/widget")
    main_tip = upstream.sha("main")

    wt = await ws.prepare(
        "acme/demo", upstream.url, TOKEN, "refs/heads/spec/widget", "pact/code/a", "job1"
    )
    assert await ws.head(wt) == spec_tip
    wt2 = await ws.prepare("acme/demo", upstream.url, TOKEN, main_tip, "pact/code/b", "job2")
    assert await ws.head(wt2) == main_tip


async def test_base_can_be_a_pull_request_ref_not_on_any_branch(ws: Workspace, upstream: Upstream):
    tip = upstream.commit({"docs/fork-spec.md": "# from a fork\n"}, branch="tmp")
    git("update-ref", "refs/pull/7/head", tip, cwd=upstream.bare)
    git("update-ref", "-d", "refs/heads/tmp", cwd=upstream.bare)

    wt = await ws.prepare("acme/demo", upstream.url, TOKEN, "refs/pull/7/head", BRANCH, "job1")
    assert await ws.head(wt) == tip
    wt2 = await ws.prepare("acme/demo", upstream.url, TOKEN, tip, "pact/code/b", "job2")
    assert await ws.head(wt2) == tip
    with pytest.raises(WorkspaceError):
        await ws.prepare("acme/demo", upstream.url, TOKEN, "f" * 40, "pact/code/c", "job3")


async def test_changes_lists_files_and_a_diff_unidiff_reads(ws: Workspace, upstream: Upstream):
    wt = await prepare(ws, upstream)
    assert (await ws.changes(wt)).empty

    (wt / "src" / "app.py").write_text("print('hello')\n")
    (wt / "README.md").unlink()
    (wt / "src" / "widget.py").write_text("def widget():\n    return 1\n")

    changes = await ws.changes(wt)

    assert {(f.path, f.status) for f in changes.files} == {
        ("src/app.py", "M"),
        ("README.md", "D"),
        ("src/widget.py", "A"),
    }
    patch = PatchSet(changes.diff)
    by_path = {p.path: p for p in patch}
    assert by_path["src/widget.py"].added == 2
    assert by_path["README.md"].removed == 1


async def test_commit_has_bot_author_and_co_author_trailers(ws: Workspace, upstream: Upstream):
    wt = await prepare(ws, upstream)
    (wt / "src" / "widget.py").write_text("x = 1\n")

    sha = await ws.commit(
        wt, "Implement widget", co_authors=[("Ada", "ada@example.com"), "Bob <bob@example.com>"]
    )

    out = git("log", "-1", "--format=%an|%ae|%cn%n%B", sha, cwd=wt)
    head, body = out.split("\n", 1)
    assert head == "pact-bot[bot]|pact-bot[bot]@users.noreply.github.com|pact-bot[bot]"
    assert body.strip().splitlines() == [
        "Implement widget",
        "",
        "Co-authored-by: Ada <ada@example.com>",
        "Co-authored-by: Bob <bob@example.com>",
    ]


async def test_commit_with_nothing_changed_says_so(ws: Workspace, upstream: Upstream):
    wt = await prepare(ws, upstream)
    with pytest.raises(WorkspaceError, match="nothing to commit"):
        await ws.commit(wt, "empty")


async def test_push_publishes_the_branch(ws: Workspace, upstream: Upstream):
    wt = await prepare(ws, upstream)
    (wt / "src" / "widget.py").write_text("x = 1\n")
    sha = await ws.commit(wt, "Implement widget")

    assert not await ws.remote_branch_exists("acme/demo", BRANCH)
    await ws.push(wt, upstream.url, TOKEN, BRANCH)

    assert upstream.sha(BRANCH) == sha
    assert upstream.show(BRANCH, "src/widget.py") == "x = 1\n"
    assert await ws.remote_branch_exists("acme/demo", BRANCH)
    assert await ws.remote_branch_exists("acme/demo", BRANCH, clone_url=upstream.url, token=TOKEN)
    assert not await ws.remote_branch_exists("acme/demo", "nope", clone_url=upstream.url)


async def test_non_fast_forward_push_is_rejected_then_rebase_and_push(
    ws: Workspace, upstream: Upstream
):
    upstream.commit({"docs/summary.md": "v1\n"}, branch=BRANCH)
    wt = await prepare(ws, upstream)
    (wt / "src" / "fix.py").write_text("fixed = True\n")
    mine = await ws.commit(wt, "Address review")
    theirs = upstream.commit({"docs/other.md": "someone else\n"}, branch=BRANCH)

    with pytest.raises(PushRejected) as info:
        await ws.push(wt, upstream.url, TOKEN, BRANCH)
    assert info.value.non_fast_forward
    assert "rejected" in info.value.reason
    assert upstream.sha(BRANCH) == theirs, "a rejected push must not change the remote"

    new_head = await ws.rebase_onto_remote(wt, BRANCH)
    assert new_head != mine
    await ws.push(wt, upstream.url, TOKEN, BRANCH)

    assert upstream.sha(BRANCH) == new_head
    assert git("rev-parse", f"{BRANCH}~1", cwd=upstream.bare).strip() == theirs
    assert upstream.show(BRANCH, "src/fix.py") == "fixed = True\n"


async def test_rebase_conflict_aborts_and_names_the_files(ws: Workspace, upstream: Upstream):
    upstream.commit({"src/widget.py": "base\n"}, branch=BRANCH)
    wt = await prepare(ws, upstream)
    (wt / "src" / "widget.py").write_text("ours\n")
    mine = await ws.commit(wt, "ours")
    upstream.commit({"src/widget.py": "theirs\n"}, branch=BRANCH)

    with pytest.raises(RebaseConflict) as info:
        await ws.rebase_onto_remote(wt, BRANCH, clone_url=upstream.url, token=TOKEN)

    assert info.value.files == ["src/widget.py"]
    assert await ws.head(wt) == mine, "the aborted rebase leaves our commit as it was"
    assert git("status", "--porcelain", cwd=wt) == ""


async def test_remove_discards_uncommitted_work_and_frees_the_branch(
    ws: Workspace, upstream: Upstream
):
    wt = await prepare(ws, upstream)
    (wt / "dirty.txt").write_text("uncommitted\n")
    (wt / "README.md").write_text("changed\n")

    await ws.remove(wt)

    assert not wt.exists()
    listed = git("worktree", "list", "--porcelain", cwd=ws.mirror_path("acme/demo"))
    assert str(wt) not in listed
    await ws.remove(wt)  # twice is fine
    again = await prepare(ws, upstream, "job2")  # the branch is free for the next job
    assert again.exists()


async def test_remove_of_a_half_deleted_worktree_is_safe(ws: Workspace, upstream: Upstream):
    wt = await prepare(ws, upstream)
    (wt / ".git").unlink()
    await ws.remove(wt)
    assert not wt.exists()
    await ws.remove(ws.data_dir / "worktrees" / "never-existed")


async def test_sweep_removes_only_dead_jobs_worktrees(tmp_path: Path, upstream: Upstream):
    crashed = Workspace(tmp_path / "data")
    dead = await crashed.prepare("acme/demo", upstream.url, TOKEN, "main", "pact/code/a", "dead")
    (dead / "junk.txt").write_text("left behind\n")
    crashed.jobs.release("dead")  # its process died
    live_ws = Workspace(tmp_path / "data")
    live = await live_ws.prepare("acme/demo", upstream.url, TOKEN, "main", "pact/code/b", "live")

    assert await Workspace(tmp_path / "data").sweep() == ["dead"]

    assert not dead.exists() and live.exists()
    listed = git("worktree", "list", "--porcelain", cwd=live_ws.mirror_path("acme/demo"))
    assert str(dead) not in listed and str(live) in listed


async def test_concurrent_jobs_on_one_repository(ws: Workspace, upstream: Upstream):
    paths = await asyncio.gather(
        *(
            ws.prepare("acme/demo", upstream.url, TOKEN, "main", f"pact/code/w{i}", f"job{i}")
            for i in range(4)
        )
    )
    for i, wt in enumerate(paths):
        (wt / f"f{i}.txt").write_text(f"{i}\n")
        await ws.commit(wt, f"job {i}")
    await asyncio.gather(
        *(ws.push(wt, upstream.url, TOKEN, f"pact/code/w{i}") for i, wt in enumerate(paths))
    )
    for i in range(4):
        assert upstream.show(f"pact/code/w{i}", f"f{i}.txt") == f"{i}\n"


async def test_mirror_update_waits_for_another_process_holding_the_lock(
    ws: Workspace, upstream: Upstream
):
    await prepare(ws, upstream, "job1")
    lock = ws.mirror_path("acme/demo").with_suffix(".lock")
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert await holder.stdout.readline() == b"locked\n"

    task = asyncio.create_task(
        ws.prepare("acme/demo", upstream.url, TOKEN, "main", "pact/code/b", "job2")
    )
    await asyncio.sleep(0.5)
    assert not task.done(), "the mirror was updated while another process held its lock"
    holder.stdin.write(b"go\n")
    await holder.stdin.drain()
    await holder.wait()
    wt = await asyncio.wait_for(task, 10)
    assert (wt / "README.md").exists()


async def test_fetch_failure_raises_git_error_without_the_token(ws: Workspace, tmp_path: Path):
    missing = (tmp_path / "nowhere.git").as_uri()
    with pytest.raises(GitError) as info:
        await ws.prepare("acme/demo", missing, TOKEN, "main", BRANCH, "job1")
    assert "fetch" in str(info.value)
    assert TOKEN not in str(info.value) and TOKEN not in " ".join(info.value.cmd)
    assert not ws.mirror_path("acme/demo").exists(), "no half-made mirror is kept"


def test_unsafe_names_are_refused(ws: Workspace):
    with pytest.raises(ValueError):
        ws.mirror_path("../etc")
    with pytest.raises(ValueError):
        ws.worktree_path("../../x")


async def test_next_job_reuses_the_finished_jobs_checkout_cleaned(
    ws: Workspace, upstream: Upstream
):
    wt = await prepare(ws, upstream)
    unchanged_inode = (wt / "src" / "app.py").stat().st_ino
    (wt / "README.md").write_text("changed\n")
    (wt / "untracked.txt").write_text("left by the agent\n")
    (wt / "build").mkdir()
    (wt / "build" / "out.o").write_text("ignored output\n")
    (wt / ".gitignore").write_text("build/\n")
    await ws.commit(wt, "job one's work")
    (wt / "dirty.txt").write_text("uncommitted\n")
    await ws.remove(wt)
    assert not wt.exists()
    new = upstream.commit({"NEWS.md": "news\n"})

    wt2 = await ws.prepare("acme/demo", upstream.url, TOKEN, "main", "pact/code/other", "job2")

    assert (wt2 / "src" / "app.py").stat().st_ino == unchanged_inode, "checkout was reused"
    assert await ws.head(wt2) == new
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=wt2).strip() == "pact/code/other"
    assert sorted(p.name for p in wt2.iterdir()) == [".git", "NEWS.md", "README.md", "src"]
    assert (wt2 / "README.md").read_text() == "# demo\n"
    assert git("status", "--porcelain", "--ignored", cwd=wt2) == ""
    assert not ws.spare_path("acme/demo").exists(), "the spare is in use"
    branches = git("branch", "--list", cwd=ws.mirror_path("acme/demo"))
    assert BRANCH not in branches, "the finished job's branch is deleted"


async def test_a_checkout_with_a_rewritten_git_file_is_not_reused(
    ws: Workspace, upstream: Upstream, tmp_path: Path
):
    wt = await prepare(ws, upstream)
    elsewhere = tmp_path / "elsewhere.git"
    git("init", "--quiet", "--bare", str(elsewhere), cwd=tmp_path)
    (wt / ".git").write_text(f"gitdir: {elsewhere}\n")  # e.g. from the job's sandbox

    await ws.remove(wt)

    assert not wt.exists() and not ws.spare_path("acme/demo").exists()
    wt2 = await prepare(ws, upstream, "job2")
    assert await ws.head(wt2) == upstream.sha("main")
    assert git("status", "--porcelain", cwd=wt2) == ""


def test_a_starting_worker_removes_a_killed_workers_worktrees(tmp_path: Path, upstream: Upstream):
    """`pact-bot worker` sweeps before claiming: a dead job's worktree (and its branch) go,
    a live job's (another process holds its lock) stays."""
    import os
    import time

    import pact_bot

    data = tmp_path / "data"

    async def setup() -> tuple[Path, Path, Workspace]:
        crashed = Workspace(data)
        dead = await crashed.prepare(
            "acme/demo", upstream.url, TOKEN, "main", "pact/code/a", "dead"
        )
        (dead / "junk.txt").write_text("left behind\n")
        crashed.jobs.release("dead")  # its worker was killed
        live_ws = Workspace(data)
        live = await live_ws.prepare(
            "acme/demo", upstream.url, TOKEN, "main", "pact/code/b", "live"
        )
        return dead, live, live_ws

    dead, live, live_ws = asyncio.run(setup())
    assert dead.is_dir()
    src = Path(pact_bot.__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACT_", "GITHUB_"))}
    env.update(PACT_DATA_DIR=str(data), PYTHONPATH=str(src))
    log = tmp_path / "worker.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("pact-bot")), "worker", "--log-format", "json"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        deadline = time.monotonic() + 30
        while '"worker started"' not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(20)

    assert not dead.exists(), "the dead job's worktree survived a worker start"
    assert live.is_dir() and (live / "README.md").exists()
    listed = git("worktree", "list", "--porcelain", cwd=live_ws.mirror_path("acme/demo"))
    assert str(dead) not in listed and str(live) in listed
    assert "dead jobs' worktrees removed" in log.read_text()
