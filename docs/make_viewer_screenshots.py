"""Make docs/img/setup-page.png, docs/img/viewer-jobs.png and docs/img/viewer-job.png.

Runs one real code job (the harness of docs/make_screenshot.py: the GitHub and Anthropic
simulators, pact-bot's pipeline in this process, the scripted `SpecCoderPolicy`), queues a
second one, then starts `pact-bot serve` on that database and data directory and lets
headless Chromium (Debian's /usr/bin/chromium through Playwright) sign in with GitHub (the
simulator's OAuth web flow) and photograph the home page, `/jobs` and the job's page.

    .venv/bin/python docs/make_viewer_screenshots.py [--out-dir docs/img]

Needs the dev dependencies (`make venv`) and the `chromium` package. No network.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "docs"))

from make_screenshot import CHROMIUM, CHROMIUM_ARGS, NAME, OWNER, run_code_job  # noqa: E402
from sim.anthropic import running_sim  # noqa: E402
from sim.github import GitHubSim  # noqa: E402
from test_setup_flow import Served  # noqa: E402

from pact_bot.jobs.model import Job, JobKind  # noqa: E402
from pact_bot.jobs.sqlite import SqliteQueue  # noqa: E402


async def queue_another(db: Path) -> None:
    async with SqliteQueue(db) as q:
        await q.enqueue(
            Job(
                kind=JobKind.revise,
                key=Job.key_for(f"{OWNER}/{NAME}", 2),
                repo=f"{OWNER}/{NAME}",
                number=2,
                delivery_id="d-screenshot",
                sender="alice",
                task={"trigger": "review", "fingerprint": "screenshot"},
            )
        )


def shoot(server_url: str, github: GitHubSim, out_dir: Path, width: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(f"{server_url}/")
            page.wait_for_selector("#checks", timeout=30_000)
            page.screenshot(path=str(out_dir / "setup-page.png"), full_page=True)
            page.goto(f"{server_url}/jobs")
            page.fill("#login", "alice")
            page.click("#authorize")
            page.wait_for_url(f"{server_url}/jobs")
            page.set_viewport_size({"width": width, "height": 300})
            page.screenshot(path=str(out_dir / "viewer-jobs.png"), full_page=True)
            page.set_viewport_size({"width": width, "height": 800})
            page.click("tbody tr:last-child a")
            page.wait_for_selector("#transcript")
            page.evaluate(
                "document.querySelectorAll('#transcript details.tool')"
                ".forEach((d, i) => { if (i < 3) d.open = true; })"
            )
            height = int(page.evaluate("document.documentElement.scrollHeight"))
            clip = {"x": 0, "y": 0, "width": width, "height": min(height, 2400)}
            page.screenshot(path=str(out_dir / "viewer-job.png"), full_page=True, clip=clip)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--width", type=int, default=1100)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="pact-viewer-") as tmp,
        GitHubSim(Path(tmp) / "github") as github,
        running_sim() as anthropic,
    ):
        data = Path(tmp) / "data"
        asyncio.run(run_code_job(github, anthropic, data))
        asyncio.run(queue_another(data / "pact.db"))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "PACT_", "ANTHROPIC_"))
        }
        env |= github.env() | {
            "GITHUB_CLIENT_ID": github.app.client_id,
            "GITHUB_CLIENT_SECRET": github.app.client_secret,
            "ANTHROPIC_API_KEY": anthropic.api_key,
            "ANTHROPIC_BASE_URL": anthropic.base_url,
            "PACT_WORKERS": "0",
            "PACT_DATABASE_URL": f"sqlite:///{data / 'pact.db'}",
            "PACT_DATA_DIR": str(data),
        }
        server = Served(Path(tmp), env)
        try:
            github.set_oauth_callback(f"{server.url}/auth/callback")
            shoot(server.url, github, args.out_dir, args.width)
        finally:
            server.stop()
    for name in ("setup-page.png", "viewer-jobs.png", "viewer-job.png"):
        path = args.out_dir / name
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
