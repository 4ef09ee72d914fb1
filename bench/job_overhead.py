"""Job overhead benchmark: webhook → PR opened on a large repository, against plain git.

One code job runs end to end on the simulators: the GitHub simulator holds a generated
repository of realistic size (default 6,000 files, ~60 MB packed history; built once with
`git fast-import` and cached under `bench/.cache/`), the Anthropic simulator plays
`SpecCoderPolicy` with zero latency, and a real `pact-bot serve` subprocess (PACT_WORKERS=1,
SQLite) gets the signed `issues.labeled` delivery. The clock runs from the label (the
simulator sends the delivery) until the PR shows up in the simulator.

Each round uses a fresh copy of the repository in the simulator and a fresh bot process:

- **floor**: what any bot must do at least, over the same simulator's smart HTTP with an
  installation token sent as `http.extraHeader` from the environment (as the bot sends it):
  `git clone --mirror`, `git worktree add` of a new branch, commit of one file, `git push`
  of that branch.
- **job 1**: a cold bot (empty PACT_DATA_DIR: the mirror is cloned). Target ≤ 1.5× floor.
- **job 2**: a second issue and spec on the same repository once job 1 has finished
  (mirror warm and, after job 1 completed its history, full). Target ≤ 0.5×
  job 1.

Per job, a breakdown from the bot's JSON log lines (`job started`, `mirror created|fetched`,
`worktree ready`, `agent stopped`, `pushed`, `job finished`): delivery → claim, claim →
mirror, mirror → worktree, worktree → agent stopped (repository map, first message, agent
turns), agent → pushed (checks, commit, push), pushed → PR seen.

The bot runs with its bytecode cached (`bench/.cache/pycache`, filled by one untimed job
first), as an installed bot has it; `--no-pyc` measures imports compiled from source.

Run: `.venv/bin/python bench/job_overhead.py [--files 6000] [--commits 500]
[--touched 25] [--blob-kb 5] [--rounds 3] [--keep] [--no-pyc]`; medians over the rounds.
Sizes are part of the cache key.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
sys.path.insert(0, str(ROOT / "tests"))

from sim.anthropic import AnthropicSim, running_sim  # noqa: E402
from sim.github import GitHubSim  # noqa: E402
from sim.policies import SpecCoderPolicy  # noqa: E402

OWNER, NAME = "acme", "monolith"
GENERATOR_VERSION = 1
SPEC = """# {title} service

## Purpose
Keep a {noun} per user, for the benchmark.

## API
- `add(item, qty)` adds an item.
- `total()` returns the sum.
"""
SPECS = {"docs/ledger-spec.md": ("Ledger", "ledger"), "docs/basket-spec.md": ("Basket", "basket")}


# --- the repository -----------------------------------------------------------------


@dataclass(frozen=True)
class RepoShape:
    files: int = 6000
    commits: int = 500
    touched: int = 25  # files rewritten per commit
    blob_kb: int = 5  # size of a rewritten file

    @property
    def key(self) -> str:
        return (
            f"repo-v{GENERATOR_VERSION}-f{self.files}-c{self.commits}-t{self.touched}"
            f"-k{self.blob_kb}.git"
        )


def _paths(n: int) -> list[str]:
    """A source tree: packages of 40 modules, tests alongside, a few top-level files."""
    paths = ["README.md", "pyproject.toml", "CLAUDE.md"]
    i = 0
    while len(paths) < n:
        pkg, mod = divmod(i, 40)
        area = ("core", "api", "billing", "search", "infra")[pkg % 5]
        paths.append(f"src/{area}/pkg{pkg:03d}/mod{mod:02d}.py")
        if len(paths) < n and mod % 4 == 0:
            paths.append(f"tests/{area}/pkg{pkg:03d}/test_mod{mod:02d}.py")
        i += 1
    return paths[:n]


def _module(rng: random.Random, path: str, size: int) -> bytes:
    """Python-looking text around a base64 constant: compresses like real code would not."""
    head = f'"""{path}: generated for the job overhead benchmark."""\n\nDATA = (\n'
    blob = b64encode(rng.randbytes(size * 3 // 4)).decode()
    lines = "".join(f'    "{blob[i : i + 76]}"\n' for i in range(0, len(blob), 76))
    return (head + lines + ")\n").encode()


def _fast_import_stream(shape: RepoShape) -> Iterator[bytes]:
    rng = random.Random(20261126)
    paths = _paths(shape.files)
    when = 1_700_000_000

    def commit(n: int, changes: list[tuple[str, bytes]]) -> Iterator[bytes]:
        msg = f"Change {n}\n".encode()
        yield b"commit refs/heads/main\n"
        yield f"committer Dev <dev@example.com> {when + n * 3600} +0000\n".encode()
        yield b"data %d\n%s\n" % (len(msg), msg)
        for path, data in changes:
            yield b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data)

    first = [(p, _module(rng, p, 1500)) for p in paths]
    first[0] = ("README.md", b"# monolith\n\nA generated repository for bench/job_overhead.py.\n")
    first[2] = ("CLAUDE.md", b"Use type hints everywhere.\n")
    yield from commit(0, first)
    code = paths[3:]
    for n in range(1, shape.commits + 1):
        chosen = rng.sample(code, shape.touched)
        yield from commit(n, [(p, _module(rng, p, shape.blob_kb * 1024)) for p in chosen])


def generate_repo(shape: RepoShape, cache: Path = CACHE) -> Path:
    """The cached bare repository for `shape`, built (deterministically) when missing."""
    dest = cache / shape.key
    if (dest / "HEAD").exists():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gen-", dir=cache))
    env = _git_env()
    started = time.monotonic()
    subprocess.run(["git", "init", "--quiet", "--bare", str(tmp)], check=True, env=env)
    proc = subprocess.Popen(
        ["git", "--git-dir", str(tmp), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None
    for chunk in _fast_import_stream(shape):
        proc.stdin.write(chunk)
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    # One pack with bitmaps, as a hosting service keeps it.
    subprocess.run(
        ["git", "--git-dir", str(tmp), "repack", "-a", "-d", "-q", "--write-bitmap-index"],
        check=True,
        env=env,
    )
    tmp.rename(dest)
    print(f"generated {dest.name} in {time.monotonic() - started:.1f}s")
    return dest


def repo_stats(bare: Path) -> dict[str, Any]:
    env = _git_env()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(bare), *args], capture_output=True, text=True, env=env
        ).stdout

    packed = sum(p.stat().st_size for p in (bare / "objects" / "pack").glob("*.pack"))
    return {
        "files": len(git("ls-tree", "-r", "--name-only", "main").splitlines()),
        "commits": int(git("rev-list", "--count", "main").strip()),
        "objects": int(git("count-objects", "-v").split("in-pack: ")[1].split()[0]),
        "pack_mb": packed / 1e6,
    }


def load_into_sim(sim: GitHubSim, bare: Path, name: str = NAME) -> Any:
    """A simulated repository whose objects are the cached pack (hard links) and whose
    `main` is the cached history plus one commit adding the specs."""
    repo = sim.add_repo(OWNER, name)
    pack_dir = Path(repo.git.path) / "objects" / "pack"
    for f in (bare / "objects" / "pack").iterdir():
        try:
            os.link(f, pack_dir / f.name)
        except OSError:
            shutil.copy2(f, pack_dir / f.name)
    head = subprocess.run(
        ["git", "--git-dir", str(bare), "rev-parse", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    repo.git.git("update-ref", "refs/heads/main", head)
    files = {path: SPEC.format(title=t, noun=n) for path, (t, n) in SPECS.items()}
    sim.commit(repo, "main", files, "Add specs")
    return repo


# --- the floor ----------------------------------------------------------------------


def _git_env(url: str | None = None, token: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "floor",
            "GIT_AUTHOR_EMAIL": "floor@example.com",
            "GIT_COMMITTER_NAME": "floor",
            "GIT_COMMITTER_EMAIL": "floor@example.com",
        }
    )
    if url and token:
        basic = b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": f"http.{url}.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
    return env


def floor(sim: GitHubSim, repo: Any, work: Path, n: int) -> dict[str, float]:
    """clone --mirror, worktree add, commit one file, push one branch; seconds per step."""
    token = sim.create_token(repositories=[repo.full_name])
    env = _git_env(repo.clone_url, token)
    mirror, wt = work / f"floor{n}.git", work / f"floor{n}-wt"
    branch = f"bench/floor-{n}"
    steps = [
        ("clone", ["git", "clone", "--quiet", "--mirror", repo.clone_url, str(mirror)], work),
        ("worktree", ["git", "worktree", "add", "--quiet", "-b", branch, str(wt), "main"], mirror),
        ("commit", ["git", "commit", "--quiet", "-m", "floor"], None),
        ("push", ["git", "push", "--quiet", repo.clone_url, f"HEAD:refs/heads/{branch}"], None),
    ]
    times: dict[str, float] = {}
    start = time.monotonic()
    for name, cmd, cwd in steps:
        t = time.monotonic()
        if name == "commit":
            (wt / "FLOOR.md").write_text(f"floor run {n}\n")
            subprocess.run(["git", "add", "FLOOR.md"], cwd=wt, env=env, check=True)
        subprocess.run(cmd, cwd=cwd or wt, env=env, check=True)
        times[name] = time.monotonic() - t
    times["total"] = time.monotonic() - start
    shutil.rmtree(mirror, ignore_errors=True)
    shutil.rmtree(wt, ignore_errors=True)
    return times


# --- the bot ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bot:
    """`pact-bot serve` wired to both simulators, configured only by environment.

    With `pyc`, Python's bytecode goes to (and is read from) `bench/.cache/pycache`, as in
    the Docker image (`UV_COMPILE_BYTECODE=1`); without it, and with
    PYTHONDONTWRITEBYTECODE=1 in the environment, every module the bot imports is
    compiled from source in every process (githubkit's schemas alone ~0.3 s)."""

    def __init__(
        self, github: GitHubSim, anthropic: AnthropicSim, work: Path, *, pyc: bool = True
    ) -> None:
        data = work / "pact-data"
        data.mkdir(parents=True)
        self.log = work / "serve.log"
        self.url = f"http://127.0.0.1:{_free_port()}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "ANTHROPIC_", "PACT_"))
        }
        env.update(github.env())
        env.update(
            {
                "ANTHROPIC_BASE_URL": anthropic.base_url,
                "ANTHROPIC_API_KEY": anthropic.api_key,
                "PACT_DATA_DIR": str(data),
                "PACT_DATABASE_URL": f"sqlite:///{data / 'pact.db'}",
                "PACT_WORKERS": "1",
            }
        )
        if pyc:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
        exe = Path(sys.executable).with_name("pact-bot")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pact_bot.cli"]
        port = self.url.rsplit(":", 1)[1]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "serve", "--host", "127.0.0.1", "--port", port],
                env=env,
                cwd=work,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"pact-bot serve did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        github.set_webhook_url(f"{self.url}/webhook")

    def _listening(self) -> bool:
        return any(r.get("event") == "listening" for r in self.records())

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


MARKS = (
    ("claim", "job started"),
    ("mirror", ("mirror created", "mirror fetched")),
    ("worktree", "worktree ready"),
    ("agent", "agent stopped"),
    ("push", "pushed"),
)


def run_job(sim: GitHubSim, bot: Bot, repo: str, spec: str, timeout: float = 600) -> dict[str, Any]:
    """Open an issue naming `spec`, then time label → PR in the simulator."""
    number = sim.open_issue(
        repo, f"Implement {spec}", body=f"Please implement {spec}", user="alice"
    )
    sim.wait_for_deliveries(timeout=10)
    before = {p["number"] for p in sim.pulls(repo)}
    t0 = time.time()
    sim.label_issue(repo, number, "pact:code", user="alice")
    deadline = time.monotonic() + timeout
    pr = None
    while pr is None:
        new = [p for p in sim.pulls(repo) if p["number"] not in before]
        if new:
            pr = new[0]
            break
        if time.monotonic() > deadline or bot.proc.poll() is not None:
            raise SystemExit(f"no PR within {timeout}s; log:\n{bot.log.read_text()[-4000:]}")
        time.sleep(0.02)
    t_pr = time.time()
    total = t_pr - t0
    # The job goes on after the PR (check run, progress comment, clean-up; on a new mirror
    # the history's completion): the next job starts once it has finished.
    recs: list[dict[str, Any]] = []
    while not any(r.get("event") == "job finished" for r in recs):
        if time.monotonic() > deadline or bot.proc.poll() is not None:
            raise SystemExit(f"job did not finish; log:\n{bot.log.read_text()[-4000:]}")
        time.sleep(0.05)
        job_recs = [r for r in bot.records() if r.get("event") == "job started"]
        job_id = job_recs[-1].get("job_id") if job_recs else None
        recs = [r for r in bot.records() if r.get("job_id") == job_id]
    marks: dict[str, float] = {}
    for name, msg in MARKS:
        msgs = (msg,) if isinstance(msg, str) else msg
        for r in recs:
            if str(r.get("event", "")).split(":")[0] in msgs and name not in marks:
                marks[name] = float(r["ts"])
    breakdown: dict[str, float] = {}
    prev = t0
    for name, _ in MARKS:
        if name in marks:
            breakdown[name] = marks[name] - prev
            prev = marks[name]
    breakdown["pr"] = t_pr - prev
    finished = [r for r in recs if r.get("event") == "job finished"]
    completed = [r for r in recs if r.get("event") == "mirror history completed"]
    after = {"history": float(completed[0]["ts"]) - t_pr} if completed else {}
    after["finished"] = float(finished[-1]["ts"]) - t_pr
    return {
        "spec": spec,
        "total": total,
        "breakdown": breakdown,
        "after": after,
        "pr": pr["html_url"],
        "outcome": finished[-1].get("outcome") if finished else "?",
    }


BREAKDOWN_LABELS = {
    "claim": "delivery → claimed",
    "mirror": "claim → mirror ready (API calls, clone/fetch)",
    "worktree": "mirror → worktree ready",
    "agent": "worktree → agent stopped (map, first message, turns)",
    "push": "agent → pushed (checks, commit, push)",
    "pr": "pushed → PR seen",
    "history": "(after the PR: shallow mirror's history completed)",
    "finished": "(after the PR: job finished)",
}


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(line.split()[1]) / 1024 / 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"nproc {os.cpu_count()} ({cpu}), {mem:.1f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {git}, load average {load}"
    )


def _line(label: str, t: dict[str, float]) -> str:
    steps = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "total")
    return f"{label}: {t['total']:.2f}s ({steps})"


def warm_bytecode(sim: GitHubSim, anthropic: AnthropicSim, work: Path) -> None:
    """One untimed job on a small repository, so every module a job imports has its
    bytecode cached before the first timed bot starts (a deployment compiles at install)."""
    files = {path: SPEC.format(title=t, noun=n) for path, (t, n) in SPECS.items()}
    repo = sim.add_repo(OWNER, f"{NAME}-warm", {"README.md": "# warm\n", **files})
    bot = Bot(sim, anthropic, work / "bot-warm")
    try:
        run_job(sim, bot, repo.full_name, next(iter(SPECS)))
    finally:
        bot.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=RepoShape.files)
    ap.add_argument("--commits", type=int, default=RepoShape.commits)
    ap.add_argument("--touched", type=int, default=RepoShape.touched)
    ap.add_argument("--blob-kb", type=int, default=RepoShape.blob_kb)
    ap.add_argument("--rounds", type=int, default=3, help="floor + fresh bot + 2 jobs, each")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    ap.add_argument(
        "--no-pyc",
        action="store_true",
        help="no bytecode cache for the bot (with PYTHONDONTWRITEBYTECODE=1: compile on import)",
    )
    args = ap.parse_args()
    shape = RepoShape(args.files, args.commits, args.touched, args.blob_kb)
    bare = generate_repo(shape)
    stats = repo_stats(bare)
    print(
        f"repository: {stats['files']:,} files, {stats['commits']:,} commits, "
        f"{stats['objects']:,} objects, {stats['pack_mb']:.1f} MB packed"
    )
    print(f"machine at start: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="job-overhead-"))
    floors: list[float] = []
    firsts: list[float] = []
    seconds: list[float] = []
    try:
        with GitHubSim(work / "sim") as sim, running_sim() as model:
            model.set_policy(SpecCoderPolicy())
            sim.add_user("alice", "write")
            if not args.no_pyc:
                warm_bytecode(sim, model, work)
            for r in range(1, args.rounds + 1):
                repo = load_into_sim(sim, bare, f"{NAME}-{r}")
                os.sync()  # the last round's writeback would slow whichever step comes next
                f = floor(sim, repo, work, r)
                print(_line(f"round {r} floor", f))
                floors.append(f["total"])
                bot = Bot(sim, model, work / f"bot-{r}", pyc=not args.no_pyc)
                try:
                    jobs = []
                    for spec in SPECS:
                        os.sync()
                        jobs.append(run_job(sim, bot, repo.full_name, spec))
                finally:
                    bot.stop()
                for i, job in enumerate(jobs, 1):
                    mirror = "cold" if i == 1 else "warm"
                    print(
                        f"round {r} job {i} ({mirror} mirror): {job['total']:.2f}s webhook → PR "
                        f"[{job['outcome']}]"
                    )
                    for k, v in {**job["breakdown"], **job["after"]}.items():
                        print(f"    {BREAKDOWN_LABELS[k]:<52} {v:6.2f}s")
                firsts.append(jobs[0]["total"])
                seconds.append(jobs[1]["total"])
        floor_s, first, second = (statistics.median(x) for x in (floors, firsts, seconds))
        r1, r2 = first / floor_s, second / first
        print(
            f"medians of {args.rounds}: floor {floor_s:.2f}s, job 1 {first:.2f}s, "
            f"job 2 {second:.2f}s"
        )
        print(f"job 1 / floor: {r1:.2f}x (target <= 1.5x) {'met' if r1 <= 1.5 else 'MISSED'}")
        print(f"job 2 / job 1: {r2:.2f}x (target <= 0.5x) {'met' if r2 <= 0.5 else 'MISSED'}")
        print(f"machine at end: {machine()}")
    finally:
        if args.keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
