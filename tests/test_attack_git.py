"""Attacks on the host through git: what the agent plants in its tree never runs outside
the sandbox, and undoing setup never deletes through a symlink the agent put in place.

Every plant goes through the real bash tool (bubblewrap); the host side is the real
workspace, the tools' post-command `git status`, and whole jobs on the simulators. A
planted command would write the host's environment into a marker file outside the tree.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from bwrap_support import needs_bwrap
from sim.anthropic import AnthropicSim
from sim.bot import InProcessBot, bot  # noqa: F401
from sim.github import GitHubSim
from sim.policies import SpecCoderPolicy
from test_workspace import TOKEN, Upstream, git

from pact_bot.agent.tools import build_tools
from pact_bot.jobs.model import JobState
from pact_bot.workspace import Workspace

pytestmark = needs_bwrap

SUB = "vendor/lib"  # a path the repository records as a submodule (a gitlink)
NESTED_GIT = "git -c user.name=a -c user.email=a@example.com"


def with_gitlink(up: Upstream) -> None:
    """Record `vendor/lib` as a submodule at some commit, as a repository with a vendored
    dependency does; a fresh worktree has it as an empty directory."""
    sha = up.sha("main")
    git("fetch", "--quiet", "origin", cwd=up.dev)
    git("checkout", "--quiet", "-B", "main", "origin/main", cwd=up.dev)
    git("update-index", "--add", "--cacheinfo", f"160000,{sha},{SUB}", cwd=up.dev)
    git("commit", "--quiet", "-m", "vendor lib", cwd=up.dev)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=up.dev)


def nested_repo(path: str, config: str, *, setup: str = "", after: str = "") -> str:
    """A shell script (run in the sandbox) making `path` a repository with one commit, then
    appending `config` to its `.git/config`."""
    return (
        f"set -e; mkdir -p {path}; cd {path}; git init -q .; echo data > f; {setup}"
        f"git add -A; {NESTED_GIT} commit -qm planted; "
        f"printf '%s\\n' {_sh(config)} >> .git/config; {after} echo planted"
    )


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def variants(marker: Path) -> dict[str, str]:
    leak = f"env >> {marker}"
    return {
        "fsmonitor": nested_repo(SUB, f'[core]\n\tfsmonitor = "{leak}; false"'),
        "hook": nested_repo(
            SUB,
            "[core]\n\tfsmonitor = .git/hooks/fsmonitor-watchman",
            after=(
                f"printf '#!/bin/sh\\n{leak}\\nexit 1\\n' > .git/hooks/fsmonitor-watchman; "
                "chmod +x .git/hooks/fsmonitor-watchman;"
            ),
        ),
        "filter": nested_repo(
            SUB,
            f'[filter "evil"]\n\tclean = "{leak}; cat"',
            setup="echo 'f filter=evil' > .gitattributes; ",
            after="touch -d '2001-01-01' f;",  # same size, new mtime: git reads it via the filter
        ),
        "include": nested_repo(SUB, "[include]\n\tpath = ../../../evil.cfg")
        + f"; printf '[core]\\n\\tfsmonitor = \"{leak}; false\"\\n' > /workspace/evil.cfg",
        "gitfile": (
            f"set -e; {NESTED_GIT} init -q --separate-git-dir=/workspace/evil.git {SUB}; "
            f"cd {SUB}; echo data > f; git add f; {NESTED_GIT} commit -qm x; "
            "echo 'gitdir: ../../evil.git' > .git; "
            f"printf '[core]\\n\\tfsmonitor = \"{leak}; false\"\\n' >> /workspace/evil.git/config; "
            "echo planted"
        ),
        "diff-external-and-pager": nested_repo(
            SUB,
            f'[diff]\n\texternal = "{leak}"\n[core]\n\tpager = "{leak}"\n'
            f'[pager]\n\tstatus = "{leak}"\n\tdiff = "{leak}"\n'
            f'[core]\n\tsshCommand = "{leak}"\n\teditor = "{leak}"',
            after="echo changed >> f;",
        ),
    }


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    up = Upstream(tmp_path)
    up.commit({"README.md": "# demo\n", "src/app.py": "print('hi')\n"}, message="init")
    with_gitlink(up)
    return up


@pytest.mark.parametrize(
    "variant", ["fsmonitor", "hook", "filter", "include", "gitfile", "diff-external-and-pager"]
)
async def test_config_planted_in_a_nested_repository_never_runs_on_the_host(
    variant: str, tmp_path: Path, upstream: Upstream
) -> None:
    marker = tmp_path / "host-marker"
    ws = Workspace(tmp_path / "data")
    wt = await ws.prepare("acme/demo", upstream.url, TOKEN, "main", "pact/code/x", "job1")
    assert (wt / SUB).is_dir() and not any((wt / SUB).iterdir())
    tools = build_tools(wt, sandbox=True)

    planted = await tools.run("bash", {"command": variants(marker)[variant]})
    assert not planted.is_error and "planted" in planted.content, planted.content
    again = await tools.run("bash", {"command": "echo more > notes.txt"})
    changes = await ws.changes(wt)
    await tools.run("bash", {"command": "true"})
    await ws.commit(wt, "work")
    await tools.run("bash", {"command": "true"})
    await ws.remove(wt)

    assert not again.is_error, again.content
    assert not marker.exists(), f"host ran planted git config: {marker.read_text()[:300]}"
    assert "notes.txt" in changes.paths
    assert not any(".git" in p.split("/") for p in changes.paths)


async def test_nested_repository_anywhere_is_neither_run_nor_committed(
    tmp_path: Path, upstream: Upstream
) -> None:
    """A repository planted at a new path: host git would add it as a gitlink, and then
    enter it on every later `git status`."""
    marker = tmp_path / "host-marker"
    ws = Workspace(tmp_path / "data")
    wt = await ws.prepare("acme/demo", upstream.url, TOKEN, "main", "pact/code/x", "job1")
    tools = build_tools(wt, sandbox=True)
    plant = nested_repo("tools/helper", f'[core]\n\tfsmonitor = "env >> {marker}; false"')

    assert not (await tools.run("bash", {"command": plant})).is_error
    changes = await ws.changes(wt)  # `git add -A`
    await tools.run("bash", {"command": "echo more > notes.txt"})
    sha = await ws.commit(wt, "work")

    assert not marker.exists(), f"host ran planted git config: {marker.read_text()[:300]}"
    tree = git("ls-tree", "-r", sha, cwd=wt)
    gitlinks = [line.split("\t")[1] for line in tree.splitlines() if line.startswith("160000")]
    assert gitlinks == [SUB]  # the recorded submodule only, no new one
    assert "tools/helper/f" in tree and "tools/helper/.git" not in tree
    assert "tools/helper/f" in changes.paths
    assert not (wt / "tools" / "helper" / ".git").exists()


async def test_symlinked_directory_does_not_let_setup_undo_delete_host_files(
    tmp_path: Path, upstream: Upstream
) -> None:
    """Setup wrote `build/out.txt`; the agent swaps `build` for a symlink to a host
    directory holding an `out.txt`. Putting setup's leftovers back must not follow it."""
    from pact_bot.pipeline.toolchain_run import run_setup, undo_setup

    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    (host_dir / "out.txt").write_text("precious\n")
    (host_dir / "README.md").write_text("also precious\n")
    ws = Workspace(tmp_path / "data")
    wt = await ws.prepare("acme/demo", upstream.url, TOKEN, "main", "pact/code/x", "job1")
    tools = build_tools(wt, sandbox=True)

    _, setup_paths = await run_setup(wt, ["mkdir -p build && echo built > build/out.txt"], tools)
    assert setup_paths == {"build/out.txt"}
    swap = await tools.run("bash", {"command": f"rm -rf build && ln -s {host_dir} build"})
    assert not swap.is_error, swap.content
    await undo_setup(wt, setup_paths, tools)

    assert (host_dir / "out.txt").read_text() == "precious\n"
    assert (host_dir / "README.md").read_text() == "also precious\n"


# --- through the product: a labelled issue, a scripted agent, a job --------------------

REPO = "acme/shop"
FILES = {
    "README.md": "# Shop\n",
    "docs/cart-spec.md": "# Cart service\n\n## API\n- `add(item, qty)` adds an item.\n",
    "src/__init__.py": "",
}


def _add_gitlink(github: GitHubSim) -> str:
    """Commit a gitlink at `vendor/lib` on the simulated repository's main branch."""
    bare = github.repo(REPO).git
    head = bare.rev("refs/heads/main")
    assert head is not None
    index = {"GIT_INDEX_FILE": str(bare.path / "pact-test-index")}
    bare.git("read-tree", head, env=index)
    bare.git("update-index", "--add", "--cacheinfo", f"160000,{head},{SUB}", env=index)
    tree = bare.git("write-tree", env=index).strip()
    ident = {
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    sha = bare.git("commit-tree", tree, "-p", head, "-m", "vendor lib", env=ident).strip()
    bare.git("update-ref", "refs/heads/main", sha, head)
    return head


async def test_job_whose_agent_plants_git_config_runs_nothing_on_the_host(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-canary-from-the-bot-environment")
    marker = tmp_path / "host-marker"
    owner, name = REPO.split("/")
    github_sim.add_repo(owner, name, files=FILES)
    github_sim.add_user("alice", "write")
    pinned = _add_gitlink(github_sim)
    plant = nested_repo(SUB, f'[core]\n\tfsmonitor = "env >> {marker}; false"')
    stray = nested_repo("tools/helper", f'[core]\n\tfsmonitor = "env >> {marker}; false"')
    anthropic_sim.set_policy(SpecCoderPolicy(bash_commands=[plant, stray, "ls"]))
    number = github_sim.open_issue(REPO, "Cart", body="Implement docs/cart-spec.md", user="alice")
    github_sim.label_issue(REPO, number, "pact:code", user="alice")

    jobs = await bot.process()

    assert not marker.exists(), f"host ran planted git config: {marker.read_text()[:300]}"
    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    branch = "pact/code/cart"
    assert github_sim.read_file(REPO, branch, "src/cart.py")
    bare = github_sim.repo(REPO).git
    tree = bare.git("ls-tree", "-r", f"refs/heads/{branch}")
    gitlinks = [line for line in tree.splitlines() if line.startswith("160000")]
    assert gitlinks == [f"160000 commit {pinned}\t{SUB}"]  # the submodule pin is untouched
    assert ".git/" not in tree and "tools/helper/f" in tree
    assert bot.worktrees() == []


def test_git_processes_only_start_in_the_runner() -> None:
    """No module but the runner starts processes that could be git (the sandbox's modules
    and doctor's host checks start bubblewrap or systemd-run only)."""
    src = Path(__file__).resolve().parents[1] / "src" / "pact_bot"
    found = subprocess.run(
        ["grep", "-rlE", "create_subprocess_exec|subprocess\\.(run|Popen|call|check_)", str(src)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    names = sorted(Path(f).relative_to(src).as_posix() for f in found)
    assert names == [
        "agent/tools/bash.py",
        "agent/tools/bwrap.py",
        "agent/tools/limits.py",
        "doctor_host.py",
        "workspace/git.py",
    ], names


# --- local mode: the user's own repository -----------------------------------------------


def test_local_run_removes_the_agents_nested_repository_and_keeps_the_users(
    tmp_path: Path, anthropic_sim: AnthropicSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pact-bot code` in a user's checkout: a repository the user already had (ignored,
    e.g. an editable install under .venv) stays; the one the agent planted goes, runs
    nothing, and is committed as plain files. The user's global identity still signs."""
    from test_local_mode import settings_for

    from pact_bot.pipeline.local import run_local

    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Global Dev\n\temail = global@example.com\n")
    monkeypatch.setenv("HOME", str(home))
    repo = tmp_path / "shop"
    repo.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=repo)
    (repo / "docs").mkdir()
    (repo / "docs" / "cart-spec.md").write_text("# Cart\n\n## API\n- `add(item)` adds.\n")
    (repo / ".gitignore").write_text(".venv/\n")
    git("add", "-A", cwd=repo)
    git("commit", "--quiet", "-m", "spec", cwd=repo)
    users = repo / ".venv" / "src" / "pkg"
    users.mkdir(parents=True)
    git("init", "--quiet", cwd=users)
    marker = tmp_path / "host-marker"
    plant = nested_repo("tools/helper", f'[core]\n\tfsmonitor = "env >> {marker}; false"')
    anthropic_sim.set_policy(SpecCoderPolicy(bash_commands=[plant]))

    code = run_local(settings_for(anthropic_sim), ["docs/cart-spec.md"], repo, "")

    assert code == 0
    assert not marker.exists(), f"host ran planted git config: {marker.read_text()[:300]}"
    assert (users / ".git" / "HEAD").is_file(), "the user's own nested repository was deleted"
    assert not (repo / "tools" / "helper" / ".git").exists()
    tree = git("ls-tree", "-r", "HEAD", cwd=repo)
    assert "tools/helper/f" in tree and "160000" not in tree
    author = git("log", "-1", "--format=%an <%ae>", cwd=repo).strip()
    assert author == "Global Dev <global@example.com>"
