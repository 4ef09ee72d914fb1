"""Host-side reads of repository content stay inside the repository.

Spec paths from commands and issue bodies, committed symlinks (CLAUDE.md, specs) and files the
agent leaves behind are all hostile: none may put a host file (another installation's parked
checkout, a key on the host) into the model's prompt or onto GitHub. Each attack runs through
the product: the GitHub simulator, the Anthropic simulator and a scripted model.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from sim.anthropic import AnthropicSim, Turn, text, tool_use
from sim.bot import InProcessBot, bot, without_acks  # noqa: F401
from sim.github import GitHubSim
from sim.policies import Conversation, RevisePolicy, Script, ScriptPolicy, SpecCoderPolicy
from test_code_pipeline import bot_comments, label
from test_code_pipeline import setup_repo as setup_shop

from pact_bot.confined import NotFound, Refused, read_present, read_text
from pact_bot.jobs.model import Job, JobState

REPO = "acme/shop"
SECRET = "TOP-SECRET-other-installation-7f3a9c"
SPEC = "# Cart service\n\n## API\n- `add(item, qty)` adds an item.\n"
FILES = {
    "README.md": "# Shop\n",
    "docs/cart-spec.md": SPEC,
    "src/__init__.py": "",
    "AGENTS.md": "Use type hints everywhere.\n",
}


def setup_repo(github: GitHubSim) -> None:
    """The shop with FILES, alice who may write and mallory who may only read."""
    setup_shop(github, FILES)
    github.add_user("mallory", "read")


def commit_symlink(github: GitHubSim, path: str, target: str, branch: str = "main") -> None:
    """Commit `path` as a symlink to `target` on `branch` (mode 120000), as a push would."""
    git = github.repo(REPO).git
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git.git("read-tree", f"refs/heads/{branch}", env=env)
        blob = git.git("hash-object", "-w", "--stdin", input=target.encode()).strip()
        git.git("update-index", "--add", "--cacheinfo", f"120000,{blob},{path}", env=env)
        tree = git.git("write-tree", env=env).strip()
    ident = {
        k: "mallory" if k.endswith("NAME") else "mallory@example.com"
        for k in (
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "GIT_COMMITTER_NAME",
            "GIT_COMMITTER_EMAIL",
        )
    }
    parent = git.rev(f"refs/heads/{branch}")
    assert parent
    sha = git.git("commit-tree", tree, "-p", parent, "-m", f"link {path}", env=ident).strip()
    git.git("update-ref", f"refs/heads/{branch}", sha, parent)


def parked_secret(bot: InProcessBot) -> str:  # noqa: F811
    """Another installation's parked checkout next to ours, holding a confidential spec;
    returns its path relative to a job's worktree (`<data>/worktrees/<job id>`)."""
    spare = bot.data_dir / "mirrors" / "other" / "secret.spare" / "docs"
    spare.mkdir(parents=True)
    (spare / "x-spec.md").write_text(f"# Confidential\n{SECRET}\n")
    return "../../mirrors/other/secret.spare/docs/x-spec.md"


def host_secret(tmp_path: Path) -> Path:
    host = tmp_path / "host"
    host.mkdir(exist_ok=True)
    (host / "secret.md").write_text(f"# Host file\n{SECRET}\n")
    (host / "__init__.py").write_text(f"KEY = '{SECRET}'\n")
    return host


def model_saw_secret(anthropic: AnthropicSim) -> bool:
    return any(SECRET in json.dumps(r) for r in anthropic.requests)


def on_github(github: GitHubSim, number: int) -> str:
    """Everything the bot wrote on GitHub: comments on the issue and PRs, PRs, check runs."""
    numbers = [number, *(p["number"] for p in github.pulls(REPO))]
    texts = [b for n in numbers for b in bot_comments(github, n)]
    texts += [str(p.get("body")) for p in github.pulls(REPO)]
    texts += [str(r) for r in github.check_runs(REPO)]
    return "\n".join(texts)


def code_jobs(jobs: list[Job]) -> list[Job]:
    return without_acks(jobs)


def labelled_issue(
    github: GitHubSim,
    anthropic: AnthropicSim,
    policy: ScriptPolicy,
    body: str = "docs/cart-spec.md",
    title: str = "Cart",
    by: str = "alice",
) -> int:
    """An issue by `by`, labelled for a code job by alice, the model scripted as `policy`;
    its number."""
    anthropic.set_policy(policy)
    return label(github, body, title, by)


async def fails_unseen(bot: InProcessBot, number: int) -> list[str]:  # noqa: F811
    """Runs the job, which must fail without the secret reaching the model or GitHub; the
    bot's comments on `number`."""
    jobs = await bot.process()
    assert not model_saw_secret(bot.anthropic)
    assert [j.state for j in jobs] == [JobState.failed], [j.error for j in jobs]
    assert SECRET not in on_github(bot.github, number)
    return bot_comments(bot.github, number)


# --- (a) a command's spec path leaving the repository -------------------------------------


@pytest.mark.parametrize("with_valid", [False, True], ids=["alone", "next-to-a-valid-spec"])
async def test_command_spec_path_into_another_checkout_is_refused_in_a_comment(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    with_valid: bool,
) -> None:
    setup_repo(github_sim)
    anthropic_sim.set_policy(SpecCoderPolicy())
    escape = parked_secret(bot)
    number = github_sim.open_issue(REPO, "Cart", body="The cart.", user="alice")
    args = f"docs/cart-spec.md {escape}" if with_valid else escape
    github_sim.comment(REPO, number, f"/pact code {args}", user="alice")

    jobs = code_jobs(await bot.process())

    assert not model_saw_secret(anthropic_sim)
    assert [j.state for j in jobs] == [JobState.failed], [j.error for j in jobs]
    assert anthropic_sim.requests == []  # nothing half done with the valid spec either
    assert github_sim.pulls(REPO) == []
    comments = [c for c in bot_comments(github_sim, number) if "refused" in c]
    assert len(comments) == 1, bot_comments(github_sim, number)
    assert f"`{escape}` (points outside the repository)" in comments[0]
    assert SECRET not in on_github(github_sim, number)
    assert bot.worktrees() == []


# --- (b) a committed CLAUDE.md symlink to a host file --------------------------------------


async def test_committed_claude_md_symlink_to_a_host_file_stays_out_of_the_prompt(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup_repo(github_sim)
    commit_symlink(github_sim, "CLAUDE.md", str(host_secret(tmp_path) / "secret.md"))
    number = labelled_issue(github_sim, anthropic_sim, SpecCoderPolicy())

    with caplog.at_level(logging.WARNING, logger="pact_bot"):
        jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    assert anthropic_sim.requests
    assert not model_saw_secret(anthropic_sim)
    first = json.dumps(anthropic_sim.requests[0])
    assert "Use type hints everywhere." in first  # AGENTS.md, a plain file, still read
    assert 'repository_instructions path=\\"CLAUDE.md\\"' not in first
    skipped = [r for r in caplog.records if getattr(r, "path", None) == "CLAUDE.md"]
    assert skipped and "symlink" in str(getattr(skipped[0], "reason", ""))
    assert SECRET not in on_github(github_sim, number)


async def test_claude_md_symlink_inside_the_repository_is_followed(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup_repo(github_sim)
    commit_symlink(github_sim, "CLAUDE.md", "AGENTS.md")  # a common layout
    labelled_issue(github_sim, anthropic_sim, SpecCoderPolicy())

    jobs = await bot.process()

    assert [j.state for j in jobs] == [JobState.succeeded], [j.error for j in jobs]
    first = json.dumps(anthropic_sim.requests[0])
    assert 'repository_instructions path=\\"CLAUDE.md\\"' in first


# --- (c) an issue body by a read-only user, labelled by a writer ---------------------------


async def test_issue_body_spec_ref_leaving_the_repository_is_refused(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    setup_repo(github_sim)
    escape = "docs/../.." + parked_secret(bot).removeprefix("..")  # matches docs/**/*-spec.md
    body = f"Please implement {escape} for the cart."
    number = labelled_issue(github_sim, anthropic_sim, SpecCoderPolicy(), body, by="mallory")

    comments = await fails_unseen(bot, number)

    assert anthropic_sim.requests == []
    assert len(comments) == 1
    assert f"`{escape}` (points outside the repository)" in comments[0]


# --- (d) a committed spec that is a symlink to a host file ---------------------------------


async def test_committed_spec_symlink_to_a_host_file_is_refused(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    tmp_path: Path,
) -> None:
    setup_repo(github_sim)
    commit_symlink(github_sim, "docs/x-spec.md", str(host_secret(tmp_path) / "secret.md"))
    body = "Implement docs/x-spec.md"
    number = labelled_issue(github_sim, anthropic_sim, SpecCoderPolicy(), body, title="X")

    comments = await fails_unseen(bot, number)

    assert anthropic_sim.requests == []
    assert len(comments) == 1
    assert "`docs/x-spec.md` (a symlink on the way points outside the repository)" in comments[0]
    assert bot.worktrees() == []


# --- revise jobs: the PR body's spec refs and the branch's summary ---------------------------

BRANCH = "pact/code/cart"


def open_bot_pr(github: GitHubSim, body: str) -> int:
    setup_repo(github)
    github.commit(
        REPO,
        BRANCH,
        {"src/cart.py": "X = 1\n", "docs/implementation-summary-cart.md": "# Summary\n"},
        "Implement cart",
        user=github.bot_login,
    )
    repo = github.repo(REPO)
    return github.create_pull(repo, BRANCH, "main", "Implement cart", body, github.bot_login).number


async def test_revise_refuses_a_pr_body_spec_ref_leaving_the_repository(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    escape = "docs/../.." + parked_secret(bot).removeprefix("..")
    number = open_bot_pr(github_sim, f"Implements `{escape}`.")
    anthropic_sim.set_policy(RevisePolicy())
    github_sim.submit_review(REPO, number, "alice", "REQUEST_CHANGES", body="Rename X.")

    comments = await fails_unseen(bot, number)

    assert any(f"`{escape}` (points outside the repository)" in c for c in comments), comments


async def test_revise_skips_a_summary_linked_to_a_host_file(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    tmp_path: Path,
) -> None:
    number = open_bot_pr(github_sim, "Implements `docs/cart-spec.md`.")
    secret = host_secret(tmp_path) / "secret.md"
    commit_symlink(github_sim, "docs/implementation-summary-cart.md", str(secret), BRANCH)
    anthropic_sim.set_policy(RevisePolicy())
    github_sim.submit_review(REPO, number, "alice", "REQUEST_CHANGES", body="Rename X.")

    jobs = await bot.process()

    assert anthropic_sim.requests  # the revision ran, with the spec but not the host file
    assert not model_saw_secret(anthropic_sim)
    assert "Cart service" in json.dumps(anthropic_sim.requests[0])
    assert len(jobs) == 1


# --- the agent's own leftovers: a summary or a directory swapped for a link out ----------


def _sandbox() -> None:
    from pact_bot.agent.tools.bwrap import sandbox_available

    ok, why = sandbox_available()
    if not ok:
        pytest.skip(why)


async def test_summary_the_agent_links_to_a_host_file_is_not_published(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
) -> None:
    _sandbox()
    setup_repo(github_sim)
    other = bot.data_dir / "mirrors" / "other" / "secret.spare" / "docs"
    other.mkdir(parents=True)
    summary = other / "implementation-summary-x.md"  # another installation's parked summary
    summary.write_text(f"## Assumptions\n- {SECRET}\n\n## For the Test Engineer\n{SECRET}\n")
    link = f"ln -s {summary} docs/implementation-summary-cart.md"
    number = labelled_issue(github_sim, anthropic_sim, SpecCoderPolicy(bash_commands=[link]))

    jobs = await bot.process()

    assert len(jobs) == 1 and jobs[0].state is JobState.failed
    assert github_sim.pulls(REPO) == []  # a linked summary is no summary (before: PR opened)
    assert SECRET not in on_github(github_sim, number)  # old: PR body and handoff quoted it


class _GrepThroughLink(ScriptPolicy):
    """Swaps the tracked `src/` for a link to a host directory, then greps for the secret."""

    def __init__(self, host: Path) -> None:
        self.host = host

    def script(self, convo: Conversation) -> Script:
        assert convo.bash
        yield Turn([tool_use(convo.bash, {"command": f"rm -rf src && ln -s {self.host} src"})])
        yield Turn([tool_use("grep", {"pattern": "KEY"})])
        yield Turn([text("Done.")])


async def test_grep_does_not_follow_a_directory_the_agent_swapped_for_a_link_out(
    bot: InProcessBot,  # noqa: F811
    github_sim: GitHubSim,
    anthropic_sim: AnthropicSim,
    tmp_path: Path,
) -> None:
    _sandbox()
    setup_repo(github_sim)
    labelled_issue(github_sim, anthropic_sim, _GrepThroughLink(host_secret(tmp_path)))

    await bot.process()

    assert len(anthropic_sim.requests) >= 3  # the grep ran and its result went back
    assert not model_saw_secret(anthropic_sim)


# --- (e) the reader itself -------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "AGENTS.md").write_text("agents")
    (root / "docs" / "a-spec.md").write_text("spec")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]")
    (root / "docs" / "sub" / ".Git").mkdir()
    (root / "docs" / "sub" / ".Git" / "HEAD").write_text("ref")
    (tmp_path / "outside.md").write_text(SECRET)
    return root


@pytest.mark.parametrize(
    ("link", "target", "read"),
    [
        ("CLAUDE.md", "AGENTS.md", "CLAUDE.md"),
        ("docs/up", "..", "docs/up/AGENTS.md"),
        ("docs/alias", "sub/../a-spec.md", "docs/alias"),
    ],
)
def test_symlinks_inside_the_root_are_followed(
    tree: Path, link: str, target: str, read: str
) -> None:
    os.symlink(target, tree / link)
    assert read_text(tree, read) in ("agents", "spec")


@pytest.mark.parametrize(
    ("link", "target", "read"),
    [
        ("abs.md", "{outside}", "abs.md"),  # absolute target
        ("rel.md", "../outside.md", "rel.md"),  # relative target climbing out
        ("docs/out", "../..", "docs/out/outside.md"),  # a directory on the way
        ("docs/deep", "sub/../../../outside.md", "docs/deep"),  # in then out
        ("gitlink", ".git/config", "gitlink"),  # into .git through a link
    ],
)
def test_symlinks_leaving_the_root_or_into_git_are_refused(
    tree: Path, link: str, target: str, read: str
) -> None:
    os.symlink(target.format(outside=tree.parent / "outside.md"), tree / link)
    with pytest.raises(Refused) as e:
        read_text(tree, read)
    assert not isinstance(e.value, NotFound)
    assert "outside the repository" in e.value.reason or ".git" in e.value.reason


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../outside.md", "points outside the repository"),
        ("docs/../../outside.md", "points outside the repository"),
        ("/etc/passwd", "absolute paths are not allowed"),
        (".git/config", "inside .git"),
        ("docs/sub/.Git/HEAD", "inside .git"),
        ("docs/.GIT", "inside .git"),
        ("", "empty path"),
        ("a\x00b", "NUL"),
    ],
)
def test_paths_are_checked_before_any_io(tree: Path, path: str, reason: str) -> None:
    with pytest.raises(Refused) as e:
        read_text(tree, path)
    assert reason in e.value.reason


def test_missing_files_directories_fifos_and_loops(tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    os.symlink("loop-b", tree / "loop-a")
    os.symlink("loop-a", tree / "loop-b")
    for path in ("nope.md", "docs", "fifo", "AGENTS.md/x"):
        with pytest.raises(NotFound):
            read_text(tree, path)
    with pytest.raises(Refused, match="too many symlinks"):
        read_text(tree, "loop-a")


def test_size_limit(tree: Path) -> None:
    (tree / "big.md").write_text("x" * 101)
    assert read_text(tree, "big.md", limit=101) == "x" * 101
    with pytest.raises(Refused, match="larger than 100 bytes"):
        read_text(tree, "big.md", limit=100)


def test_read_present_skips_missing_quietly_and_reports_refused(tree: Path) -> None:
    os.symlink(tree.parent / "outside.md", tree / "CLAUDE.md")
    refused: list[Refused] = []
    found = read_present(tree, ["CLAUDE.md", "AGENTS.md", "MISSING.md"], refused=refused)
    assert found == [("AGENTS.md", "agents")]
    assert [r.path for r in refused] == ["CLAUDE.md"]


def test_a_link_swapped_in_mid_walk_is_not_followed(tree: Path) -> None:
    """The walk opens each component relative to the last one without following links:
    a directory replaced by a link out after the path was checked still cannot be read."""
    (tree / "docs" / "sub" / "x-spec.md").write_text("inside")
    assert read_text(tree, "docs/sub/x-spec.md") == "inside"
    subprocess.run(["rm", "-rf", str(tree / "docs" / "sub")], check=True)
    (tree.parent / "evil").mkdir()
    (tree.parent / "evil" / "x-spec.md").write_text(SECRET)
    os.symlink(tree.parent / "evil", tree / "docs" / "sub")
    with pytest.raises(Refused, match="outside the repository"):
        read_text(tree, "docs/sub/x-spec.md")


def test_agent_definition_override_linked_out_or_into_git_is_refused(tree: Path) -> None:
    from pact_bot.agent.definition import REPO_OVERRIDE, DefinitionError, load_definition

    (tree / ".claude" / "agents").mkdir(parents=True)
    (tree / ".git" / "agent.md").write_text("---\nname: git\n---\nFrom .git\n")
    os.symlink("../../.git/agent.md", tree / REPO_OVERRIDE)
    with pytest.raises(DefinitionError, match=r"inside \.git"):
        load_definition(tree)
    os.unlink(tree / REPO_OVERRIDE)
    os.symlink("../../AGENTS.md", tree / REPO_OVERRIDE)  # inside: read, then parsed
    with pytest.raises(DefinitionError, match="no YAML frontmatter"):
        load_definition(tree)


# --- local mode: a cloned repository's links --------------------------------------------------


def _local_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "clone"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "cart-spec.md").write_text(SPEC)
    os.symlink(host_secret(tmp_path) / "secret.md", repo / "CLAUDE.md")
    (repo / ".github").mkdir()
    os.symlink(host_secret(tmp_path) / "secret.md", repo / ".github" / "pact.yml")
    for args in (
        ["init", "-q", "--initial-branch=main"],
        ["add", "-A"],
        ["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "spec"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return repo


def test_local_mode_refuses_a_config_linked_out_and_skips_such_a_claude_md(
    tmp_path: Path, anthropic_sim: AnthropicSim
) -> None:
    from pydantic import SecretStr

    from pact_bot.pipeline.local import run_local
    from pact_bot.settings import Settings

    repo = _local_repo(tmp_path)
    anthropic_sim.set_policy(SpecCoderPolicy())
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        anthropic_api_key=SecretStr(anthropic_sim.api_key),
        anthropic_base_url=anthropic_sim.base_url,
        pact_model=None,
    )
    out = io.StringIO()
    assert run_local(settings, ["docs/cart-spec.md"], repo, "", out=out) == 2
    assert "refused to read .github/pact.yml: a symlink on the way points outside" in (
        out.getvalue()
    )
    assert anthropic_sim.requests == []

    os.unlink(repo / ".github" / "pact.yml")
    subprocess.run(
        ["git", "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qam", "rm"],
        cwd=repo,
        check=True,
    )
    code = run_local(settings, ["docs/cart-spec.md"], repo, "", out=io.StringIO())

    assert code == 0
    assert anthropic_sim.requests
    assert not model_saw_secret(anthropic_sim)
