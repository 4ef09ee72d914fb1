"""`serve` with PACT_WEB_PROCESSES=2: both processes answer on one port, a delivery is
recorded once whichever process gets it, and a SIGKILL keeps every 202."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
from test_durability import Server, comment_delivery, servers  # noqa: F401 - fixture

from pact_bot.jobs.sqlite import SqliteQueue


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _post_each_on_its_own_connection(
    url: str, deliveries: list[tuple[bytes, dict[str, str]]]
) -> list[httpx.Response]:
    async def post(body: bytes, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            return await c.post("/webhook", content=body, headers=headers)

    return await asyncio.gather(*(post(b, h) for b, h in deliveries))


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
async def test_two_web_processes_share_the_port_dedupe_and_survive_sigkill(
    tmp_path: Path,
    servers: list[Server],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PACT_WEB_PROCESSES", "2")
    server = Server(tmp_path, workers=1)
    servers.append(server)
    deadline = time.monotonic() + 30
    while sum(line.get("event") == "listening" for line in server.lines()) < 2:
        assert time.monotonic() < deadline, server.log.read_text()
        await asyncio.sleep(0.05)

    same = comment_delivery(1)
    answers = await _post_each_on_its_own_connection(server.url, [same] * 16)
    assert sorted(a.status_code for a in answers) == [200] * 15 + [202]
    assert sum(a.json().get("duplicate", False) for a in answers) == 15

    deliveries = [comment_delivery(2000 + n) for n in range(60)]
    answers = await _post_each_on_its_own_connection(server.url, deliveries)
    assert [a.status_code for a in answers] == [202] * 60
    accepted = {a.json()["job_id"] for a in answers}
    answered_by = {
        line["web_process"]
        for line in server.lines()
        if line.get("delivery_id") and line.get("status") == 202
    }
    assert answered_by == {0, 1}  # 76 connections, hashed over two sockets

    others = _children(server.proc.pid)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in others):  # the second web process dies with the first
        assert time.monotonic() < deadline, "a web process outlived the first one"
        await asyncio.sleep(0.05)

    monkeypatch.setenv("PACT_WEB_PROCESSES", "1")
    again = Server(tmp_path)
    servers.append(again)
    async with httpx.AsyncClient(base_url=again.url, timeout=10) as c:
        body, h = deliveries[0]
        redelivered = await c.post("/webhook", content=body, headers=h)
        assert redelivered.status_code == 200 and redelivered.json()["duplicate"] is True
    again.stop(signal.SIGTERM)
    async with SqliteQueue(tmp_path / "pact.db") as queue:
        jobs = await queue.list(limit=1000)
    sent = {h["X-GitHub-Delivery"] for _, h in [same, *deliveries]}
    ours = [j for j in jobs if j.delivery_id in sent]  # (the worker may add reply jobs)
    assert len(ours) == 61 and {j.delivery_id for j in ours} == sent
    assert accepted <= {j.id for j in ours}
