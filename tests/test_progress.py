"""The progress comment: one comment, edits throttled, phase changes and final at once."""

from __future__ import annotations

import asyncio

from pact_bot.pipeline.progress import ProgressComment


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, str]] = []

    async def post(self, body: str) -> int:
        self.calls.append(("post", None, body))
        return 42

    async def edit(self, cid: int, body: str) -> None:
        self.calls.append(("edit", cid, body))


async def test_first_show_posts_then_edits_are_throttled_with_trailing_edit() -> None:
    rec = Recorder()
    pc = ProgressComment(rec.post, rec.edit, min_interval=0.2)
    await pc.show("a")
    for i in range(10):
        await pc.show(f"turn {i}")
    assert rec.calls == [("post", None, "a")]
    await asyncio.sleep(0.3)
    assert rec.calls == [("post", None, "a"), ("edit", 42, "turn 9")]
    await pc.close()


async def test_forced_updates_go_out_at_once_and_drop_the_pending_one() -> None:
    rec = Recorder()
    pc = ProgressComment(rec.post, rec.edit, min_interval=10)
    await pc.show("a")
    await pc.show("b")
    await pc.show("final", force=True)
    await pc.close()
    await asyncio.sleep(0.05)
    assert [c[2] for c in rec.calls] == ["a", "final"]


async def test_same_text_is_not_written_twice_and_existing_comment_is_edited() -> None:
    rec = Recorder()
    pc = ProgressComment(rec.post, rec.edit, comment_id=7, min_interval=0)
    await pc.show("x")
    await pc.show("x")
    await pc.show("x", force=True)
    assert rec.calls == [("edit", 7, "x")]
