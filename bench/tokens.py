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
- **peer, fixed prefix**: the same peer with system + tools held at `--fixed-peer-prefix`
  tokens (default: the peer's size on 2026-12-04, before pact-bot's scaffolding was cut),
  since Claude Code's prompt does not shrink when pact-bot's does. Its ratio is the `vs fixed
  peer` column; the `ratio` column is against the peer above.

Also printed: what a short job's first request holds, part by part (the user's agent
definition, pact-bot's operating notes, each tool definition, the pipeline's task message),
the view limit sweep (the long task at several `max_characters`), the cost of the `%6d\\t`
line numbers in a view, and the size of the pipeline's repository map.

Run: `.venv/bin/python bench/tokens.py [--tasks short,long,huge] [--sweep] [--json]
[--fixed-peer-prefix N]`.
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
from pact_bot.agent.definition import (  # noqa: E402
    load_definition,
    operating_section,
    system_prompt,
)
from pact_bot.agent.loop import run_agent  # noqa: E402
from pact_bot.agent.retry import RetryPolicy  # noqa: E402
from pact_bot.agent.tools import bash as bash_tool  # noqa: E402
from pact_bot.agent.tools import build_tools, search  # noqa: E402
from pact_bot.agent.tools.editor import VIEW_MAX_CHARACTERS, EditorTool  # noqa: E402
from pact_bot.agent.transcript import Transcript  # noqa: E402
from pact_bot.model_catalog import DEFAULT_PRICES  # noqa: E402
from pact_bot.pipeline.prompts import first_message, repo_map  # noqa: E402

MODEL = "claude-sonnet-5-5"
MAX_TOKENS = 16_000
MODULE_CHARS = 48_000
PEER_READ_CHARS = 2_000 * 125  # 2,000 lines of up to ~125 characters
PEER_COMPACT_AT = 0.95
PEER_PREFIX_FACTOR = 2.0
# The peer's system + tool definitions as the bench modelled them on 2026-12-04, before
# pact-bot's scaffolding was cut (2x pact-bot's 3,688 tokens of that day, padded in whole
# chunks). Claude Code's own prompt does not shrink when pact-bot's does, so the `vs fixed
# peer` column holds the peer there; the `ratio` column keeps the peer at 2x pact-bot's
# current prompt, as modelled.
PEER_FIXED_PREFIX = 7_814
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
    prefix_tokens: int | None = None  # system + tools padded to this size, not to a factor


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


def padded_system(factor: float, fixed: int | None = None) -> str:
    """The peer's system prompt: pact-bot's, padded so system + tools are `factor` times
    pact-bot's (in whole chunks, as modelled since the bench began), or exactly `fixed`."""
    system = base_system()
    tools = build_tools(Path("/nonexistent"), sandbox=False).definitions
    target = fixed if fixed is not None else int(prefix_tokens(system, tools) * factor)
    filler = "Guidance the peer's larger prompt carries (padding of the model). "
    pad = ""
    while prefix_tokens(system + pad, tools) < target:
        pad += filler * 50
    if fixed is not None:
        while pad and prefix_tokens(system + "\n\n" + pad, tools) > fixed:
            pad = pad[:-1]
    return system + "\n\n" + pad


async def run_task(sim: AnthropicSim, task: Task, agent: Agent, tmp: Path) -> Outcome:
    sim.reset()
    modules = paths(task)
    sim.set_policy(ModuleReaderPolicy(modules, NOTES, writes=task.writes))
    repo = make_repo(tmp / f"{task.name}-{agent.name}", task)
    system = (
        base_system()
        if agent.prefix_factor == 1.0 and agent.prefix_tokens is None
        else padded_system(agent.prefix_factor, agent.prefix_tokens)
    )
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


def agents(fixed_prefix: int = PEER_FIXED_PREFIX) -> tuple[Agent, Agent, Agent]:
    """pact-bot, the peer (prefix 2x pact-bot's) and the same peer with its prefix fixed."""
    window = context_window(MODEL)
    pact = Agent("pact-bot", VIEW_MAX_CHARACTERS, None)
    limits = ContextLimits(window=window, compact_at=PEER_COMPACT_AT, keep_recent=10**9)
    peer = Agent("peer", PEER_READ_CHARS, limits, PEER_PREFIX_FACTOR)
    fixed = Agent("peer, fixed prefix", PEER_READ_CHARS, limits, prefix_tokens=fixed_prefix)
    return pact, peer, fixed


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


SMALL_REPO = [
    "README.md",
    "pyproject.toml",
    "Makefile",
    "docs/ledger-spec.md",
    "docs/architecture.md",
    *[f"src/ledger/{m}.py" for m in ("__init__", "app", "db", "models", "api", "settings")],
    *[f"tests/test_{m}.py" for m in ("app", "db", "models", "api")],
]


def text_tokens(text: str) -> int:
    """Tokens of `text` inside a block, as the simulator counts it (JSON-escaped)."""
    return -(-len(json.dumps(text, ensure_ascii=False)[1:-1]) // 4)


def first_request() -> dict[str, int]:
    """What a short code job's first request holds, part by part, in simulator tokens: the
    system prompt (the user's agent definition, then pact-bot's operating notes), the tool
    definitions with bash, and the pipeline's task message for one 8,000-character spec in
    a 15-file repository."""
    definition = load_definition(None)
    spec = ("docs/ledger-spec.md", module_source("/workspace/docs/ledger-spec.md", 8_000))
    summary = "docs/implementation-summary-ledger.md"
    context = "Requested by @alice on issue #1: Ledger"

    def message(specs: list[tuple[str, str]], files: list[str]) -> str:
        return first_message(
            specs=specs,
            context=context,
            instructions="",
            files=files,
            agent_docs=[],
            summary_file=summary,
        )

    whole = message([spec], SMALL_REPO)
    tools = [
        EditorTool(Path("/nonexistent")).definition(),
        search.GREP_DEFINITION,
        search.GLOB_DEFINITION,
        {"type": bash_tool.TYPE, "name": bash_tool.NAME},
    ]
    system = system_prompt(definition, component="ledger", bash_available=True)
    parts = {
        "system: agent definition body (the user's)": text_tokens(definition.body.strip()),
        "system: operating notes (pact-bot's)": text_tokens(operating_section("ledger", True)),
        **{f"tool: {t['name']}": estimate_tokens(t) for t in tools},
        "task: spec text": text_tokens(whole) - text_tokens(message([(spec[0], "")], SMALL_REPO)),
        f"task: repository map ({len(SMALL_REPO)} files)": text_tokens(whole)
        - text_tokens(message([spec], [])),
    }
    parts["task: the rest (request, tags, summary instruction)"] = (
        text_tokens(whole) - parts["task: spec text"] - parts[list(parts)[-1]]
    )
    parts["scaffolding (system + tools + task without spec and map)"] = (
        estimate_tokens({"type": "text", "text": system})
        - parts["system: agent definition body (the user's)"]
        + sum(estimate_tokens(t) for t in tools)
        + parts["task: the rest (request, tags, summary instruction)"]
    )
    parts["total, as the simulator counts the request"] = (
        estimate_tokens({"type": "text", "text": system})
        + sum(estimate_tokens(t) for t in tools)
        + estimate_tokens({"type": "text", "text": whole})
    )
    return parts


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
    pact, peer, fixed = agents(getattr(args, "fixed_peer_prefix", PEER_FIXED_PREFIX))
    out: dict[str, Any] = {"machine": machine(), "tasks": [], "sweep": []}
    with tempfile.TemporaryDirectory() as d, running_sim() as sim:
        tmp = Path(d)
        for name in args.tasks.split(","):
            task = TASKS[name]
            mine = await run_task(sim, task, pact, tmp)
            theirs = await run_task(sim, task, peer, tmp)
            pinned = await run_task(sim, task, fixed, tmp)
            out["tasks"].append(
                {
                    "pact": asdict(mine),
                    "peer": asdict(theirs),
                    "fixed_peer": asdict(pinned),
                    "ratio": _ratio(mine, theirs),
                    "ratio_fixed": _ratio(mine, pinned),
                }
            )
        if args.sweep:
            for limit in (16_000, 50_000, VIEW_MAX_CHARACTERS, 200_000):
                agent = Agent(f"pact-bot view={limit}", limit, None)
                out["sweep"].append(asdict(await run_task(sim, TASKS["long"], agent, tmp)))
    out["line_numbers"] = line_number_cost()
    out["repo_map"] = repo_map_cost()
    out["first_request"] = first_request()
    return out


def _ratio(mine: Outcome, theirs: Outcome) -> float:
    return round(mine.cost_usd / theirs.cost_usd, 3) if theirs.cost_usd else float("nan")


def report(out: dict[str, Any]) -> str:
    rows = [
        f"machine: {out['machine']['nproc']} cpus, {out['machine']['cpu']}",
        "",
        "| task | agent | ok | cost | turns | cache-read share | largest prompt | 400s | "
        "compactions | cleared | ratio | vs fixed peer |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in out["tasks"]:
        for who in ("pact", "peer", "fixed_peer"):
            o = t[who]
            ratio = f"{t['ratio']:.2f}× | {t['ratio_fixed']:.2f}×" if who == "pact" else " |"
            rows.append(
                f"| {o['task']} | {o['agent']} | {'yes' if o['ok'] else 'NO'} | "
                f"${o['cost_usd']:.4f} | {o['turns']} | {o['cache_read_share']:.0%} | "
                f"{o['largest_prompt']:,} | {o['refused_too_long']} | {o['compactions']} | "
                f"{o['cleared_results']} | {ratio} |"
            )
    rows += ["", "| a short job's first request | tokens |", "| --- | ---: |"]
    rows += [f"| {part} | {n:,} |" for part, n in out["first_request"].items()]
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
    parser.add_argument(
        "--fixed-peer-prefix",
        type=int,
        default=PEER_FIXED_PREFIX,
        help="system + tool tokens of the `vs fixed peer` column's peer",
    )
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    print(json.dumps(out, indent=2) if args.json else report(out))


if __name__ == "__main__":
    main()
