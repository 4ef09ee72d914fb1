"""The progress comment: one comment, edits throttled, phase changes and final at once."""

from __future__ import annotations

from pact_bot.clock import FakeClock, Interval
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
    clock = FakeClock()
    pc = ProgressComment(rec.post, rec.edit, every=Interval(3, clock))
    await pc.show("a")
    await clock.advance(1)
    for i in range(10):
        await pc.show(f"turn {i}")
    await clock.advance(1.9)  # 2.9 s after the post: still throttled
    assert rec.calls == [("post", None, "a")]
    await clock.advance(0.1)
    assert rec.calls == [("post", None, "a"), ("edit", 42, "turn 9")]
    await pc.show("turn 10")  # the interval counts from the trailing edit
    await clock.advance(2.9)
    assert rec.calls[-1] == ("edit", 42, "turn 9")
    await clock.advance(0.1)
    assert rec.calls[-1] == ("edit", 42, "turn 10") and len(rec.calls) == 3
    await pc.close()


async def test_an_update_after_a_quiet_interval_goes_out_at_once() -> None:
    rec = Recorder()
    clock = FakeClock()
    pc = ProgressComment(rec.post, rec.edit, every=Interval(3, clock))
    await pc.show("a")
    await clock.advance(3)
    await pc.show("b")
    assert rec.calls == [("post", None, "a"), ("edit", 42, "b")]
    await pc.close()


async def test_forced_updates_go_out_at_once_and_drop_the_pending_one() -> None:
    rec = Recorder()
    clock = FakeClock()
    pc = ProgressComment(rec.post, rec.edit, every=Interval(10, clock))
    await pc.show("a")
    await pc.show("b")
    await pc.show("final", force=True)
    await clock.advance(60)  # the dropped trailing edit never comes
    await pc.close()
    assert [c[2] for c in rec.calls] == ["a", "final"]


async def test_same_text_is_not_written_twice_and_existing_comment_is_edited() -> None:
    rec = Recorder()
    pc = ProgressComment(rec.post, rec.edit, comment_id=7, every=Interval(0))
    await pc.show("x")
    await pc.show("x")
    await pc.show("x", force=True)
    assert rec.calls == [("edit", 7, "x")]
