"""Make docs/img/pr.png: a real pull request by pact-bot, as the README shows it.

Starts the GitHub and Anthropic simulators from tests/sim, creates a small repository with
`docs/greeting-spec.md`, opens an issue and labels it `pact:code`, and runs that one code job
with pact-bot's real pipeline in this process (the harness of tests/sim/bot.py: real SQLite
queue, real handler; the model is the scripted `SpecCoderPolicy`). Then headless Chromium
(Debian's /usr/bin/chromium through Playwright, no download) opens the pull request's
`html_url`, the simulator's GitHub-like page, and saves a full-page screenshot.

    .venv/bin/python docs/make_screenshot.py [--out docs/img/pr.png]

Needs the dev dependencies (`make venv`) and the `chromium` package. No network.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sim.anthropic import AnthropicSim, running_sim  # noqa: E402
from sim.bot import InProcessBot  # noqa: E402
from sim.github import GitHubSim  # noqa: E402
from sim.policies import SpecCoderPolicy  # noqa: E402
from sim.server import BackgroundServer  # noqa: E402

from pact_bot.jobs.model import JobState  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OWNER, NAME = "acme", "greeter"
SPEC = """# Greeting service

## Purpose
Greet a user by name, in their language.

## API
- `greet(name: str, lang: str = "en") -> str` returns `"Hello, <name>!"` for `en`,
  `"Bonjour, <name> !"` for `fr` and `"Hallo, <name>!"` for `de`.
- An unknown `lang` raises `ValueError` naming the language.
- A blank `name` raises `ValueError`.
"""
FILES = {
    "README.md": "# greeter\n\nSmall greeting service.\n",
    "docs/greeting-spec.md": SPEC,
    "src/__init__.py": "",
    "CLAUDE.md": "Python 3.11, type hints everywhere, pytest for tests.\n",
}


async def _accept(scope: Any, receive: Any, send: Any) -> None:
    """Webhook sink: the in-process bot reads deliveries from the simulator's log."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def run_code_job(github: GitHubSim, anthropic: AnthropicSim, data: Path) -> str:
    """Label an issue, run the job it makes to its end, return the pull request's URL."""
    github.add_repo(OWNER, NAME, files=FILES)
    github.add_user("alice", "write")
    anthropic.set_policy(SpecCoderPolicy())
    data.mkdir(parents=True)
    bot = InProcessBot(github, anthropic, data)
    await bot.queue.open()
    sink = BackgroundServer(_accept).start()
    github.set_webhook_url(f"{sink.url}/webhook")
    try:
        number = github.open_issue(
            f"{OWNER}/{NAME}",
            "Greeting service",
            body="Please implement `docs/greeting-spec.md`.",
            user="alice",
        )
        github.label_issue(f"{OWNER}/{NAME}", number, "pact:code", user="alice")
        jobs = await bot.process()
    finally:
        github.set_webhook_url(None)
        sink.stop()
        await bot.queue.close()
    if [j.state for j in jobs] != [JobState.succeeded] or not jobs[0].pr_url:
        raise SystemExit(f"the code job did not open a PR: {[(j.state, j.error) for j in jobs]}")
    return jobs[0].pr_url


def screenshot(url: str, out: Path, width: int, max_height: int) -> tuple[int, int]:
    """Save the page at ``url`` (full page, cut at ``max_height``); return its size."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(url, wait_until="load")
            height = int(page.evaluate("document.documentElement.scrollHeight"))
            clip = {"x": 0, "y": 0, "width": width, "height": min(height, max_height)}
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True, clip=clip)
        finally:
            browser.close()
    return width, min(height, max_height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "pr.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--max-height", type=int, default=2400)
    parser.add_argument("--max-kb", type=int, default=500)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory(prefix="pact-screenshot-") as tmp,
        GitHubSim(Path(tmp) / "github") as github,
        running_sim() as anthropic,
    ):
        url = asyncio.run(run_code_job(github, anthropic, Path(tmp) / "data"))
        size = screenshot(url, args.out, args.width, args.max_height)
    kb = args.out.stat().st_size / 1024
    print(f"{args.out}: {size[0]}x{size[1]} px, {kb:.0f} KB, from {url}")
    if kb > args.max_kb:
        print(f"larger than {args.max_kb} KB: lower --max-height", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
