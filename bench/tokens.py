"""Token cost of scripted coding tasks: pact-bot's agent loop against a modelled peer.

Both run the same scripted decisions (`tests/sim/reader.py`: view every module, note its
checksum, write the files) against the Anthropic simulator, whose prompt cache follows the
API's documented rules (reads at breakpoints with a 20-block lookback, writes above 1,024
tokens, 5-minute lifetime) and which refuses a prompt over 200,000 tokens with the API's 400.
Costs are the simulator's usage at `claude-sonnet-5-5` prices.

Tasks:
- **short**: read a spec (~8,000 characters), write a module and the summary (4 turns);
- **long**: read 12 modules of 48,000 characters (~12,000 tokens each), write notes;
- **huge**: the same with 24 modules (~290,000 tokens: more than the window holds).

Agents:
- **pact-bot**: `run_agent` as the pipeline runs it (the real system prompt and tools, the
  editor's default `max_characters`, context management on, `max_tokens` 16,000).
- **peer** (a model of Claude Code, not Claude Code): the same loop and decisions with what
  its documentation and the review measured: system prompt + tool definitions twice
  pact-bot's (padded), files read whole in one turn (its Read returns up to 2,000 lines),
  no clearing of tool results, and compaction by summary when the prompt plus `max_tokens`
  passes 95 % of the window (Claude Code's auto-compact, "near the limit").

Also printed: the view limit sweep (the long task at several `max_characters`), the cost of
the `%6d\\t` line numbers in a view, and the size of the pipeline's repository map.

Run: `.venv/bin/python bench/tokens.py [--tasks short,long,huge] [--sweep] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sim.anthropic import AnthropicSim, estimate_tokens, running_sim  # noqa: E402
from sim.reader import ModuleReaderPolicy, checksum, module_source  # noqa: E402

from pact_bot.agent.budget import Budget  # noqa: E402
from pact_bot.agent.context import ContextLimits  # noqa: E402
from pact_bot.agent.cost import context_window  # noqa: E402
from pact_bot.agent.definition import load_definition, system_prompt  # noqa: E402
from pact_bot.agent.loop import run_agent  # noqa: E402
from pact_bot.agent.retry import RetryPolicy  # noqa: E402
from pact_bot.agent.tools import build_tools  # noqa: E402
from pact_bot.agent.tools.editor import VIEW_MAX_CHARACTERS  # noqa: E402
from pact_bot.agent.transcript import Transcript  # noqa: E402
from pact_bot.model_catalog import DEFAULT_PRICES  # noqa: E402
from pact_bot.pipeline.prompts import repo_map  # noqa: E402

MODEL = "claude-sonnet-5-5"
MAX_TOKENS = 16_000
MODULE_CHARS = 48_000
PEER_READ_CHARS = 2_000 * 125  # 2,000 lines of up to ~125 characters
PEER_COMPACT_AT = 0.95
PEER_PREFIX_FACTOR = 2.0
NOTES = "/workspace/docs/notes.md"


@dataclass(frozen=True)
class Task:
    name: str
    modules: int
    module_chars: int
    writes: dict[str, str]


TASKS = {
    "short": Task(
        "short",
        1,
        8_000,
        {"/workspace/src/ledger.py": "def total(entries):\n    return sum(entries)\n" * 60},
    ),
    "long": Task("long", 12, MODULE_CHARS, {}),
    "huge": Task("huge", 24, MODULE_CHARS, {}),
}


@dataclass(frozen=True)
class Agent:
    name: str
    max_characters: int
    limits: ContextLimits | None
    prefix_factor: float = 1.0


@dataclass
class Outcome:
    task: str
    agent: str
    ok: bool
    stop: str
    cost_usd: float
    turns: int
    cache_read_share: float
    largest_prompt: int
    refused_too_long: int
    compactions: int
    cleared_results: int


def paths(task: Task) -> list[str]:
    if task.name == "short":
        return ["/workspace/docs/ledger-spec.md"]
    return [f"/workspace/src/pkg/mod_{i:02d}.py" for i in range(task.modules)]


def make_repo(root: Path, task: Task) -> Path:
    wt = root / "wt"
    for p in paths(task):
        f = wt / p.removeprefix("/workspace/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(module_source(p, task.module_chars))
    subprocess.run(["git", "init", "-q"], cwd=wt, check=True)
    return wt


def task_text(task: Task) -> str:
    listed = "\n".join(f"- {p}" for p in paths(task))
    return (
        f"Read these files completely:\n{listed}\n\nThen write {NOTES} with each file's "
        "CHECKSUM value" + (" and the module the spec asks for." if task.writes else ".")
    )


def base_system() -> str:
    return system_prompt(load_definition(None), component="ledger", bash_available=False)


def prefix_tokens(system: str, tools: list[dict[str, Any]]) -> int:
    """System + tool definitions as the simulator counts them."""
    return estimate_tokens({"type": "text", "text": system}) + sum(
        estimate_tokens(t) for t in tools
    )


def padded_system(factor: float) -> str:
    """The peer's system prompt: pact-bot's, padded so system + tools are `factor` times."""
    system = base_system()
    tools = build_tools(Path("/nonexistent"), sandbox=False).definitions
    target = int(prefix_tokens(system, tools) * factor)
    filler = "Guidance the peer's larger prompt carries (padding of the model). "
    pad = ""
    while prefix_tokens(system + pad, tools) < target:
        pad += filler * 50
    return system + "\n\n" + pad


async def run_task(sim: AnthropicSim, task: Task, agent: Agent, tmp: Path) -> Outcome:
    sim.reset()
    modules = paths(task)
    sim.set_policy(ModuleReaderPolicy(modules, NOTES, writes=task.writes))
    repo = make_repo(tmp / f"{task.name}-{agent.name}", task)
    system = base_system() if agent.prefix_factor == 1.0 else padded_system(agent.prefix_factor)
    async with sim.async_client() as client:
        result = await run_agent(
            client=client,
            model=MODEL,
            system=system,
            user_message=task_text(task),
            tools=build_tools(repo, sandbox=False, max_characters=agent.max_characters),
            budget=Budget(max_turns=300, max_cost_usd=100.0, max_seconds=900),
            prices=DEFAULT_PRICES,
            transcript=Transcript(repo.parent / "transcript.jsonl", [sim.api_key]),
            retry=RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.01),
            max_tokens=MAX_TOKENS,
            context=agent.limits,
        )
    notes = repo / NOTES.removeprefix("/workspace/")
    want = [f"{p}: {checksum(p)}" for p in modules]
    ok = result.stop == "end_turn" and notes.exists() and notes.read_text().splitlines() == want
    too_long = [c for c in sim.calls if c.status == 400 and c.error_type == "invalid_request_error"]
    return Outcome(
        task=task.name,
        agent=agent.name,
        ok=ok,
        stop=result.stop,
        cost_usd=round(sim.total_cost(DEFAULT_PRICES), 4),
        turns=result.turns,
        cache_read_share=round(result.usage.cached_share, 3),
        largest_prompt=sim.largest_prompt,
        refused_too_long=len(too_long),
        compactions=result.compactions,
        cleared_results=result.cleared_results,
    )


def agents() -> tuple[Agent, Agent]:
    window = context_window(MODEL)
    pact = Agent("pact-bot", VIEW_MAX_CHARACTERS, None)
    peer = Agent(
        "peer",
        PEER_READ_CHARS,
        ContextLimits(window=window, compact_at=PEER_COMPACT_AT, keep_recent=10**9),
        PEER_PREFIX_FACTOR,
    )
    return pact, peer


def line_number_cost() -> dict[str, Any]:
    """Tokens of one module's view with `%6d\\t` numbers against `%d\\t` and none."""
    text = module_source("/workspace/src/pkg/mod_00.py", MODULE_CHARS)
    lines = text.split("\n")
    six = "\n".join(f"{i + 1:6}\t{line}" for i, line in enumerate(lines))
    bare = "\n".join(f"{i + 1}\t{line}" for i, line in enumerate(lines))
    return {
        "lines": len(lines),
        "tokens_%6d": estimate_tokens(six),
        "tokens_%d": estimate_tokens(bare),
        "tokens_plain": estimate_tokens(text),
    }


def repo_map_cost() -> dict[str, Any]:
    """The repository map's size for a 6,000-file repository (the job_overhead bench's)."""
    files = [
        f"src/pkg{d:02d}/sub{s:02d}/module_{f:03d}.py"
        for d in range(30)
        for s in range(10)
        for f in range(20)
    ]
    text = repo_map(files)
    return {"files": len(files), "lines": text.count("\n") + 1, "tokens": estimate_tokens(text)}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pact, peer = agents()
    out: dict[str, Any] = {"machine": machine(), "tasks": [], "sweep": []}
    with tempfile.TemporaryDirectory() as d, running_sim() as sim:
        tmp = Path(d)
        for name in args.tasks.split(","):
            task = TASKS[name]
            mine = await run_task(sim, task, pact, tmp)
            theirs = await run_task(sim, task, peer, tmp)
            ratio = mine.cost_usd / theirs.cost_usd if theirs.cost_usd else float("nan")
            out["tasks"].append(
                {"pact": asdict(mine), "peer": asdict(theirs), "ratio": round(ratio, 3)}
            )
        if args.sweep:
            for limit in (16_000, 50_000, VIEW_MAX_CHARACTERS, 200_000):
                agent = Agent(f"pact-bot view={limit}", limit, None)
                out["sweep"].append(asdict(await run_task(sim, TASKS["long"], agent, tmp)))
    out["line_numbers"] = line_number_cost()
    out["repo_map"] = repo_map_cost()
    return out


def report(out: dict[str, Any]) -> str:
    rows = [
        f"machine: {out['machine']['nproc']} cpus, {out['machine']['cpu']}",
        "",
        "| task | agent | ok | cost | turns | cache-read share | largest prompt | 400s | "
        "compactions | cleared | ratio |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in out["tasks"]:
        for who in ("pact", "peer"):
            o = t[who]
            ratio = f"{t['ratio']:.2f}×" if who == "pact" else ""
            rows.append(
                f"| {o['task']} | {o['agent']} | {'yes' if o['ok'] else 'NO'} | "
                f"${o['cost_usd']:.3f} | {o['turns']} | {o['cache_read_share']:.0%} | "
                f"{o['largest_prompt']:,} | {o['refused_too_long']} | {o['compactions']} | "
                f"{o['cleared_results']} | {ratio} |"
            )
    if out["sweep"]:
        rows += ["", "| long task, view limit | cost | turns | cache-read share | largest prompt |"]
        rows.append("| --- | ---: | ---: | ---: | ---: |")
        for o in out["sweep"]:
            rows.append(
                f"| {o['agent']} | ${o['cost_usd']:.3f} | {o['turns']} | "
                f"{o['cache_read_share']:.0%} | {o['largest_prompt']:,} |"
            )
    ln, rm = out["line_numbers"], out["repo_map"]
    rows += [
        "",
        f"line numbers, one {ln['lines']}-line module: %6d\\t {ln['tokens_%6d']:,} tokens, "
        f"%d\\t {ln['tokens_%d']:,}, none {ln['tokens_plain']:,}",
        f"repository map, {rm['files']:,} files: {rm['lines']} lines, {rm['tokens']:,} tokens",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="short,long,huge")
    parser.add_argument("--sweep", action="store_true", help="the long task at several view limits")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    print(json.dumps(out, indent=2) if args.json else report(out))


if __name__ == "__main__":
    main()
