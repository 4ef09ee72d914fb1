"""Scripted models for the Anthropic simulator.

A policy is a callable `(request_body: dict) -> Turn` (see `tests/sim/anthropic.py`). The
server keeps no conversation state, so every policy here derives what to do next from the
conversation in the request: a script (a generator) is replayed over the request's assistant
turns, receiving each following user turn (tool results, text) as the answer to its yield,
and the next thing it yields is the answer. Retries of a call therefore get the same answer.
Write a new one by subclassing `ScriptPolicy` and its generator `script(convo)`: each
`fb = yield Turn(...)` gets a `Feedback` (`results` in call order, `result`, `failed`,
`text`); `Conversation` offers `first_user_text`, `editor`/`bash` (the tool names the
request offers, or None) and `thinking`. Helpers: `find_spec_paths`, `parse_review_comments`,
`cat_n_lines` (an editor `view` result as {line number: text}), `CLOSING`.

`ReplayPolicy(turns, by="conversation")`
    Plays recorded turns (each a `Turn`, a list of content blocks, a string, or a dict with
    `content` and optional `stop_reason`). With `by="conversation"` the turn played is the
    number of assistant turns already in the request (retry-safe); with `by="call"` it is the
    number of calls made to the policy. When exhausted it raises `PolicyError`, which the
    simulator answers with 500 `api_error` and `x-should-retry: false`.

`SpecCoderPolicy(...)`
    Plays the PACT backend coder on the pipeline's first user message. It finds the spec
    paths there (`docs/...-spec.md` or `/workspace/docs/...-spec.md`, anywhere in the text;
    the summary's component comes from a `docs/implementation-summary-<c>.md` named there,
    else from the first spec's name) and drives the text editor tool
    that the request offers (`str_replace_based_edit_tool`), with absolute paths under
    `root` (default `/workspace`):
    view each spec -> create a source and a test file per spec -> `str_replace` in the
    source (when the result says `No replacement was performed`, it views the file and
    retries with the line it actually holds) -> create `write_paths` -> run
    `bash_commands` when the request offers a bash tool -> create
    `docs/implementation-summary-<component>.md` (Summary, Files, "## Assumptions",
    "## For the Test Engineer") -> end with the seed agent's closing sentence.
    When asked again after its final message it writes the summary if missing, else
    repeats the closing sentence. A turn whose tool calls got no result, or only error
    results starting with "Not run" (the loop's answer to a call cut off at `max_tokens`),
    is made again (this holds for every scripted policy here).
    Options: `spec_paths` (instead of parsing), `component` (default: first spec's name
    without `-spec.md`), `source_path` / `test_path` (format strings with `{module}`
    and `{component}`; default `src/{module}.py`, `tests/test_{module}.py`), `root`,
    `stale_first_edit` (the first `str_replace` uses text that is not in the file, to
    exercise the retry), `write_paths` (extra files, e.g. `.github/workflows/x.yml`),
    `no_edits` (reads the specs, edits nothing, ends), `skip_summary` (forgets the summary
    until asked again), `turn_latency` (seconds before each answer), `max_turns_to_loop`
    (first views the spec that many times, one call per turn, e.g. 10**9 to exhaust budgets),
    `loop_padding` (characters of text added to each looping turn, to burn output tokens),
    `bash_commands`, `traceability` (end the summary with a `## Traceability` table, one row
    per id the task's traceability instruction lists), `omit_rows` (ids left out of that
    table until a follow-up mentioning "Traceability" asks, then the full table is written,
    unless `fill_when_asked=False`).
    When the request enables thinking, each turn starts with a short
    thinking block (the simulator signs it).

`TestEngineerPolicy(...)`
    Plays the PACT test engineer on `/pact test`: reads the requirement ids of the task's
    Traceability table (`| R1 | files | tests | status |`), creates `test_path` (default
    `tests/test_engineer_checks.py`) with one test per id, optionally changes `touch_path`
    (a file outside tests, e.g. to fix a bug it found), and ends with a `## Test report`
    table (every id `passed`, or `failed` for ids in `failing`) and a `### Bugs` list (one
    `bugs` entry per item, `path:line — why`). Options: `root`, `test_path`, `touch_path`,
    `failing`, `bugs`.

`RevisePolicy(...)`
    Plays the coder on a review. It reads the review comments from the first user message
    and, per comment, views the file and edits it (`str_replace`, or `insert`), then ends
    its final message with one line per comment, in the comments' order:

        REPLY <comment_id>: <what changed, or why no change>

    This is the contract the revise pipeline relies on; it asks the model for the format.
    A comment whose change cannot be made (missing file, failed edit) still gets its line,
    starting with "No change:".

    Comment formats it reads (mix freely; ids are integers):
      - one line per comment: `- Comment 123 on `src/x.py` line 12: text` (`lines 10-12`
        and `src/x.py:12` work too; text may continue on the following lines);
      - blocks of `id: 123` / `path: src/x.py` / `line: 12` / `body: text` lines;
      - a JSON list of objects with `id`, `path`, `line` and `body` (or `text`);
      - tags like the code pipeline's: `<comment id="123" path="src/x.py" line="12">text
        </comment>` (also `start_line="10"`, `line="10-12"`, `<review_comment>`; nested
        `<diff_hunk>...</diff_hunk>` is ignored).
    Fenced code in a comment (e.g. the `diff_hunk`) is ignored, except a ```suggestion
    block, whose text replaces the commented line(s).
    What it changes: a suggestion replaces the line(s); "rename `a` to `b`", "replace `a`
    with `b`" or "`a` -> `b`" swaps the text (on the commented line when it is there);
    a comment starting with "question:" or containing "no change" gets no edit and a reply
    saying why; anything else gets a comment line noting the request inserted after the
    commented line (`# Review: ...`, in the file's comment syntax).
    A comment without a path (e.g. the review body given an id) gets "No change: a general
    remark". With no comments at all (`/pact code <instructions>` on the PR), it appends a
    note with the `<instructions>` text (else the task's text) to the first source file the
    task names (else the first Markdown file) and ends without REPLY lines.
    Options: `root`, `turn_latency`, `summary_note` (also append a line to the implementation
    summary named in the message, when one is), `bash_commands` (run before the final
    message when the request offers bash).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .anthropic import PolicyError, Turn, text, thinking, tool_use

CLOSING = (
    "I have completed the backend implementation and created the testing documentation at "
    "{path}. The implementation is ready for the Test phase. An orchestrator should now direct "
    "the test engineer to read this file and begin comprehensive testing."
)
NO_REPLACEMENT = "No replacement was performed"

_SPEC = re.compile(r"(?<![\w/.-])/?(?:[\w.-]+/)*?docs/(?:[\w.-]+/)*[\w.-]+-spec\.md")
_SUMMARY = re.compile(r"docs/implementation-summary-([\w.-]+)\.md")
_CAT_N = re.compile(r"^\s*(\d+)\t(.*)$")


# ---- reading a conversation ----------------------------------------------------------------
@dataclass
class ToolResult:
    tool_use_id: str
    text: str
    is_error: bool


@dataclass
class Feedback:
    """What came back after one assistant turn: tool results in call order, and user text."""

    results: list[ToolResult] = field(default_factory=list)
    text: str = ""

    @property
    def result(self) -> ToolResult:
        return self.results[0] if self.results else ToolResult("", self.text, False)

    @property
    def failed(self) -> bool:
        r = self.result
        return r.is_error or NO_REPLACEMENT in r.text or r.text.startswith("Error")


@dataclass
class Conversation:
    request: dict[str, Any]
    first_user_text: str
    feedback: list[Feedback]
    editor: str | None
    bash: str | None
    thinking: bool

    @classmethod
    def of(cls, request: dict[str, Any]) -> Conversation:
        messages = request.get("messages") or []
        first = _text_of(messages[0].get("content")) if messages else ""
        feedback: list[Feedback] = []
        for i, msg in enumerate(messages):
            if msg.get("role") != "assistant":
                continue
            nxt = messages[i + 1] if i + 1 < len(messages) else None
            if nxt is None:
                break
            blocks = _blocks(nxt.get("content"))
            results = {
                b.get("tool_use_id"): ToolResult(
                    b.get("tool_use_id", ""), _text_of(b.get("content")), bool(b.get("is_error"))
                )
                for b in blocks
                if b.get("type") == "tool_result"
            }
            order = [
                b.get("id") for b in _blocks(msg.get("content")) if b.get("type") == "tool_use"
            ]
            ordered = [results[x] for x in order if x in results]
            ordered += [r for k, r in results.items() if k not in order]
            user_text = "\n".join(b["text"] for b in blocks if b.get("type") == "text")
            feedback.append(Feedback(ordered, user_text))
        editor = bash = None
        for tool in request.get("tools") or []:
            kind = str(tool.get("type") or "")
            if kind.startswith("text_editor_"):
                editor = tool.get("name")
            elif kind.startswith("bash_"):
                bash = tool.get("name")
        on = (request.get("thinking") or {}).get("type") in ("enabled", "adaptive", "between_tools")
        return cls(request, first, feedback, editor, bash, on)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _text_of(content: Any) -> str:
    return "\n".join(b.get("text", "") for b in _blocks(content) if b.get("type") == "text")


def find_spec_paths(task: str, root: str = "/workspace") -> list[str]:
    """Spec paths (`docs/...-spec.md`, relative to the repository) named in a task, in order
    of first mention; `/workspace/docs/x-spec.md` counts as `docs/x-spec.md`."""
    seen: list[str] = []
    for match in _SPEC.finditer(task):
        path = match.group(0).removeprefix(root.rstrip("/") + "/").lstrip("/")
        if path not in seen:
            seen.append(path)
    return seen


def cat_n_lines(output: str) -> dict[int, str]:
    """Line number -> text of an editor `view` result (`cat -n` format)."""
    lines: dict[int, str] = {}
    for raw in output.splitlines():
        m = _CAT_N.match(raw)
        if m:
            lines[int(m.group(1))] = m.group(2)
    return lines


# ---- scripted policies ---------------------------------------------------------------------
Script = Generator[Turn, Feedback, None]


class ScriptPolicy:
    """Base class: `script(convo)` yields turns; it is replayed over the conversation."""

    turn_latency: float = 0.0

    def script(self, convo: Conversation) -> Script:
        raise NotImplementedError
        yield  # pragma: no cover

    def __call__(self, request: dict[str, Any]) -> Turn:
        convo = Conversation.of(request)
        gen = self.script(convo)
        try:
            turn = next(gen)
            for fb in convo.feedback:
                if _unanswered(turn, fb):
                    continue  # the call never ran (cut off at max_tokens): make it again
                turn = gen.send(fb)
        except StopIteration:
            turn = Turn([text("I have nothing further to add.")])
        turn = Turn(list(turn.content), turn.stop_reason, turn.latency or self.turn_latency)
        if convo.thinking and not any(b.get("type") == "thinking" for b in turn.content):
            step = len(convo.feedback) + 1
            turn.content.insert(0, thinking(f"Step {step}: deciding the next action."))
        return turn


def _unanswered(turn: Turn, fb: Feedback) -> bool:
    if not any(b.get("type") == "tool_use" for b in turn.content):
        return False
    return all(r.is_error and r.text.startswith("Not run") for r in fb.results)


class ReplayPolicy:
    """Plays recorded turns; see the module docstring."""

    def __init__(self, turns: Iterable[Any], by: str = "conversation") -> None:
        if by not in ("conversation", "call"):
            raise ValueError("by must be 'conversation' or 'call'")
        self.turns = [_recorded(t) for t in turns]
        self.by = by
        self.calls = 0

    def __call__(self, request: dict[str, Any]) -> Turn:
        if self.by == "call":
            index = self.calls
        else:
            index = sum(1 for m in request.get("messages") or [] if m.get("role") == "assistant")
        self.calls += 1
        if index >= len(self.turns):
            raise PolicyError(f"ReplayPolicy exhausted: turn {index + 1} of {len(self.turns)}")
        turn = self.turns[index]
        return Turn([dict(b) for b in turn.content], turn.stop_reason, turn.latency)


def _recorded(item: Any) -> Turn:
    if isinstance(item, Turn):
        return item
    if isinstance(item, str):
        return Turn([text(item)])
    if isinstance(item, list):
        return Turn(list(item))
    if isinstance(item, dict) and "content" in item:
        return Turn(list(item["content"]), item.get("stop_reason"))
    raise TypeError(f"not a recorded turn: {item!r}")


def _module(component: str) -> str:
    return re.sub(r"\W+", "_", component).strip("_").lower() or "component"


def _title(component: str) -> str:
    return " ".join(w.capitalize() for w in re.split(r"[-_\s]+", component) if w)


class SpecCoderPolicy(ScriptPolicy):
    """The PACT backend coder implementing specs; options in the module docstring."""

    def __init__(
        self,
        *,
        spec_paths: Sequence[str] | None = None,
        component: str | None = None,
        source_path: str = "src/{module}.py",
        test_path: str = "tests/test_{module}.py",
        root: str = "/workspace",
        stale_first_edit: bool = False,
        write_paths: Sequence[str] = (),
        no_edits: bool = False,
        skip_summary: bool = False,
        turn_latency: float = 0.0,
        max_turns_to_loop: int = 0,
        loop_padding: int = 0,
        bash_commands: Sequence[str] = (),
        traceability: bool = False,
        omit_rows: Sequence[str] = (),
        fill_when_asked: bool = True,
    ) -> None:
        self.traceability = traceability
        self.fill_when_asked = fill_when_asked
        self.omit_rows = list(omit_rows)
        self.spec_paths = list(spec_paths) if spec_paths else None
        self.component = component
        self.source_path = source_path
        self.test_path = test_path
        self.root = root.rstrip("/")
        self.stale_first_edit = stale_first_edit
        self.write_paths = list(write_paths)
        self.no_edits = no_edits
        self.skip_summary = skip_summary
        self.turn_latency = turn_latency
        self.max_turns_to_loop = max_turns_to_loop
        self.loop_padding = loop_padding
        self.bash_commands = list(bash_commands)

    def abs(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    def summary_path(self, specs: Sequence[str]) -> str:
        return f"docs/implementation-summary-{self._component(specs[0])}.md"

    def _component(self, spec: str) -> str:
        if self.component:
            return self.component
        return spec.rsplit("/", 1)[-1].removesuffix("-spec.md")

    def _for_task(self, task: str) -> SpecCoderPolicy:
        """The pipeline names the summary file in its task; use that component then."""
        named = _SUMMARY.search(task)
        if self.component or named is None:
            return self
        clone = SpecCoderPolicy.__new__(SpecCoderPolicy)
        clone.__dict__.update(self.__dict__, component=named.group(1))
        return clone

    def script(self, convo: Conversation) -> Script:
        ed = convo.editor
        if ed is None:
            yield Turn([text("I need the text editor tool (str_replace_based_edit_tool).")])
            return
        specs = self.spec_paths or find_spec_paths(convo.first_user_text, self.root)
        if not specs:
            yield Turn([text("I could not find a spec path (docs/<name>-spec.md) in the task.")])
            return
        yield from self._for_task(convo.first_user_text)._work(convo, ed, specs)

    def _work(self, convo: Conversation, ed: str, specs: list[str]) -> Script:

        def edit(say: str, **args: Any) -> Turn:
            return Turn([text(say), tool_use(ed, args)])

        for n in range(self.max_turns_to_loop):
            pad = " " + "." * self.loop_padding if self.loop_padding else ""
            yield edit(
                f"Re-reading the spec ({n + 1}).{pad}", command="view", path=self.abs(specs[0])
            )

        notes: list[str] = []
        titles: dict[str, str] = {}
        for spec in specs:
            fb = yield edit(f"Reading {spec}.", command="view", path=self.abs(spec))
            if fb.failed:
                notes.append(f"`{spec}` could not be read ({fb.result.text.strip()[:200]}).")
            heading = next(
                (t for t in cat_n_lines(fb.result.text).values() if t.startswith("# ")), ""
            )
            titles[spec] = heading[2:].strip() or _title(self._component(spec))

        if self.no_edits:
            yield Turn([text("I reviewed the specification and decided not to change anything.")])
            return

        files: list[tuple[str, str]] = []
        for spec in specs:
            component = spec.rsplit("/", 1)[-1].removesuffix("-spec.md")
            module = _module(component)
            src = self.source_path.format(module=module, component=component)
            test = self.test_path.format(module=module, component=component)
            fb = yield edit(
                f"Creating {src}.",
                command="create",
                path=self.abs(src),
                file_text=_source_text(titles[spec], spec),
            )
            if fb.failed:
                notes.append(f"Creating `{src}` failed: {fb.result.text.strip()[:200]}")
            else:
                files.append((src, f"implementation of `{spec}`"))
            fb = yield edit(
                f"Creating {test}.",
                command="create",
                path=self.abs(test),
                file_text=_test_text(module),
            )
            if fb.failed:
                notes.append(f"Creating `{test}` failed: {fb.result.text.strip()[:200]}")
            else:
                files.append((test, "unit tests"))
            old = "STATUS = 'draft'" if self.stale_first_edit else 'STATUS = "draft"'
            new = 'STATUS = "implemented"'
            fb = yield edit(
                "Marking the implementation complete.",
                command="str_replace",
                path=self.abs(src),
                old_str=old,
                new_str=new,
            )
            if fb.failed:
                fb = yield edit(
                    "The replacement failed; viewing the file to see its actual text.",
                    command="view",
                    path=self.abs(src),
                )
                line = next(
                    (t for t in cat_n_lines(fb.result.text).values() if t.startswith("STATUS")),
                    None,
                )
                ok = False
                if line is not None:
                    fb = yield edit(
                        "Retrying with the exact text.",
                        command="str_replace",
                        path=self.abs(src),
                        old_str=line,
                        new_str=new,
                    )
                    ok = not fb.failed
                if not ok:
                    notes.append(f"Could not update the status line in `{src}`.")

        for path in self.write_paths:
            yield edit(
                f"Creating {path}.",
                command="create",
                path=self.abs(path),
                file_text=f"# written by the scripted coder for {specs[0]}\n",
            )
            files.append((path, "extra file"))

        for cmd in self.bash_commands:
            if convo.bash is None:
                notes.append(f"The bash tool was not offered, so `{cmd}` was not run.")
                continue
            fb = yield Turn([text(f"Running `{cmd}`."), tool_use(convo.bash, {"command": cmd})])
            status = "failed" if fb.result.is_error else "ran"
            notes.append(f"`{cmd}` {status}: {fb.result.text.strip()[:200]}")

        summary = self.summary_path(specs)
        body = _summary_text(self._component(specs[0]), specs, files, notes)
        full = body
        table = full_table = ""
        if self.traceability:
            ids = requirement_ids(convo.first_user_text)
            full_table = _trace_table(ids, files)
            table = _trace_table([i for i in ids if i not in self.omit_rows], files)
            full, body = body + full_table, body + table
        closing = Turn([text(CLOSING.format(path=summary))])
        if not self.skip_summary:
            fb = yield edit(
                f"Writing {summary}.", command="create", path=self.abs(summary), file_text=body
            )
            written = not fb.failed
        else:
            written = False
        fb = yield closing
        while True:
            if written and body != full and "Traceability" in fb.text and self.fill_when_asked:
                body = full  # asked for the missing rows: the whole table this time
                fb = yield edit(
                    f"Adding the missing rows to {summary}.",
                    command="str_replace",
                    path=self.abs(summary),
                    old_str=table,
                    new_str=full_table,
                )
            if not written:
                fb = yield edit(
                    f"Writing the missing {summary}.",
                    command="create",
                    path=self.abs(summary),
                    file_text=body,
                )
                written = not fb.failed
            fb = yield closing


_REQ_LINE = re.compile(r"^- ([A-Z][\w.-]*): ", re.M)


def requirement_ids(task: str) -> list[str]:
    """Requirement ids the pipeline's `## Traceability` instruction lists (`- R1: text`)."""
    start = task.find("## Traceability")
    return _REQ_LINE.findall(task[start:]) if start >= 0 else []


def _trace_table(ids: Sequence[str], files: Sequence[tuple[str, str]]) -> str:
    src = ", ".join(p for p, why in files if why.startswith("implementation")) or "-"
    tests = ", ".join(p for p, why in files if why == "unit tests") or "-"
    rows = "".join(f"| {i} | {src} | {tests} | implemented |\n" for i in ids)
    return (
        "\n## Traceability\n\n| Requirement | Files | Tests | Status |\n"
        "| --- | --- | --- | --- |\n" + rows
    )


def _source_text(title: str, spec: str) -> str:
    return (
        f'"""{title}.\n\nImplements `{spec}`.\n"""\n\n'
        "from __future__ import annotations\n\n"
        'STATUS = "draft"\n\n\n'
        "def describe() -> str:\n"
        '    """Report how far the implementation got."""\n'
        "    return STATUS\n"
    )


def _test_text(module: str) -> str:
    return (
        f"from {module} import describe\n\n\n"
        "def test_describe_reports_implemented() -> None:\n"
        '    assert describe() == "implemented"\n'
    )


def _summary_text(
    component: str, specs: Sequence[str], files: Sequence[tuple[str, str]], notes: Sequence[str]
) -> str:
    spec_list = ", ".join(f"`{s}`" for s in specs)
    file_lines = "\n".join(f"- `{p}`: {why}" for p, why in files) or "- (none)"
    assumptions = [
        "The public entry point is `describe()`, returning the implementation status.",
        *notes,
    ]
    tests = [p for p, why in files if why == "unit tests"]
    return (
        f"# Implementation Summary: {_title(component)}\n\n"
        f"## Summary\n\nImplemented {spec_list} as a small module with unit tests.\n\n"
        f"## Files\n\n{file_lines}\n\n"
        "## Assumptions\n\n" + "\n".join(f"- {a}" for a in assumptions) + "\n\n"
        "## For the Test Engineer\n\n"
        f"- Run `pytest {' '.join(tests) or 'tests'}`.\n"
        "- `describe()` must return `implemented`.\n"
        "- Edge cases to cover: import without side effects; repeated calls.\n"
    )


# ---- the test engineer -----------------------------------------------------------------------
_TABLE_ID = re.compile(r"^\|\s*([A-Z][\w.-]*)\s*\|", re.M)


class TestEngineerPolicy(ScriptPolicy):
    """The PACT test engineer; options in the module docstring."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        *,
        root: str = "/workspace",
        test_path: str = "tests/test_engineer_checks.py",
        touch_path: str | None = None,
        failing: Sequence[str] = (),
        bugs: Sequence[str] = (),
    ) -> None:
        self.root = root.rstrip("/")
        self.test_path = test_path
        self.touch_path = touch_path
        self.failing = list(failing)
        self.bugs = list(bugs)

    def script(self, convo: Conversation) -> Script:
        ed = convo.editor
        if ed is None:
            yield Turn([text("I need the text editor tool.")])
            return
        ids = [i for i in _TABLE_ID.findall(convo.first_user_text) if i != "Requirement"]
        body = "".join(
            f"\n\ndef test_{i.lower().replace('-', '_')}() -> None:\n    assert True\n" for i in ids
        )
        yield Turn(
            [
                text(f"Writing {self.test_path}."),
                tool_use(
                    ed,
                    {
                        "command": "create",
                        "path": f"{self.root}/{self.test_path}",
                        "file_text": '"""Tests per requirement."""' + body,
                    },
                ),
            ]
        )
        if self.touch_path:
            yield Turn(
                [
                    text(f"Fixing {self.touch_path} while I am at it."),
                    tool_use(
                        ed,
                        {
                            "command": "create",
                            "path": f"{self.root}/{self.touch_path}",
                            "file_text": "# changed by the test engineer\n",
                        },
                    ),
                ]
            )
        rows = "".join(
            f"| {i} | {self.test_path}::test_{i.lower().replace('-', '_')} | "
            f"{'failed: wrong total' if i in self.failing else 'passed'} |\n"
            for i in ids
        )
        bugs = "".join(f"- {b}\n" for b in self.bugs) or "None.\n"
        yield Turn(
            [
                text(
                    "I wrote and ran the tests.\n\n## Test report\n\n"
                    "| Requirement | Tests | Result |\n| --- | --- | --- |\n"
                    f"{rows}\n### Bugs\n\n{bugs}"
                )
            ]
        )


# ---- review revisions ----------------------------------------------------------------------
@dataclass
class ReviewComment:
    id: str
    path: str
    line: int | None
    body: str
    start_line: int | None = None


_HEADER = re.compile(
    r"comment\W{0,3}(?:id\W{0,3})?#?(?P<id>\d+)\b.*?`?(?P<path>[\w./-]+\.[A-Za-z0-9]+)`?"
    r"(?:(?::(?P<colon>\d+))|.*?\blines?\W{0,3}(?P<start>\d+)(?:\s*[-–]\s*(?P<end>\d+))?)?"
    r"\W*?(?:[:—–-]\s+(?P<rest>.*))?$",
    re.IGNORECASE,
)
_KV = re.compile(
    r"^\s*[-*]?\s*(?P<key>comment[ _]?id|id|path|line|start_line|body|text)"
    r"\s*[:=]\s*(?P<value>.*)$",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)


_TAG = re.compile(r"<(review_comment|comment)\b([^>]*)>(.*?)</\1>", re.DOTALL | re.IGNORECASE)
_ATTR = re.compile(r"([\w-]+)\s*=\s*\"([^\"]*)\"")
_INNER_TAG = re.compile(r"<(diff_hunk|hunk|code|context)\b[^>]*>.*?</\1>", re.DOTALL)


def _tagged_comments(task: str) -> list[ReviewComment]:
    out: list[ReviewComment] = []
    for _, attrs, inner in _TAG.findall(task):
        a = {k.lower().replace("-", "_"): v for k, v in _ATTR.findall(attrs)}
        cid = a.get("id") or a.get("comment_id")
        if not cid:
            continue
        line = re.findall(r"\d+", a.get("line", ""))
        start = a.get("start_line") or (line[0] if len(line) > 1 else None)
        body = _INNER_TAG.sub("", inner)
        body = re.sub(r"</?(body|text)>", "", body).strip()
        out.append(
            ReviewComment(
                cid,
                a.get("path", ""),
                int(line[-1]) if line else None,
                body,
                int(start) if start else None,
            )
        )
    return out


def parse_review_comments(task: str) -> list[ReviewComment]:
    """Review comments named in a task, in order (formats in the module docstring)."""
    tagged = _tagged_comments(task)
    if tagged:
        return tagged
    found: dict[str, ReviewComment] = {}
    for lang, inner in _FENCE.findall(task):
        if lang.lower() not in ("json", ""):
            continue
        try:
            data = json.loads(inner)
        except ValueError:
            continue
        items = data if isinstance(data, list) else [data]
        for item in items:
            if isinstance(item, dict) and "id" in item and "path" in item:
                line = item.get("line") or item.get("original_line")
                found[str(item["id"])] = ReviewComment(
                    str(item["id"]),
                    str(item["path"]),
                    int(line) if line else None,
                    str(item.get("body") or item.get("text") or ""),
                    int(item["start_line"]) if item.get("start_line") else None,
                )
    if found:
        return list(found.values())

    comments: list[ReviewComment] = []
    current: ReviewComment | None = None
    body: list[str] = []
    in_fence = False

    def close() -> None:
        if current is not None:
            current.body = (current.body + "\n" + "\n".join(body)).strip()
            comments.append(current)

    for raw in task.splitlines():
        if raw.strip().startswith("```"):
            in_fence = not in_fence
            body.append(raw)
            continue
        if in_fence:
            body.append(raw)
            continue
        kv = _KV.match(raw)
        header = None if kv else _HEADER.search(raw)
        if kv:
            key, value = kv.group("key").lower().replace(" ", "_"), kv.group("value").strip()
            if key in ("id", "comment_id", "commentid"):
                close()
                body = []
                current = ReviewComment(value.strip("`#"), "", None, "")
            elif current is not None and key == "path":
                current.path = value.strip("`")
            elif current is not None and key in ("line", "start_line"):
                digits = re.findall(r"\d+", value)
                if digits and key == "line":
                    current.line = int(digits[-1])
                    if len(digits) > 1:
                        current.start_line = int(digits[0])
                elif digits:
                    current.start_line = int(digits[0])
            elif current is not None:
                current.body = value
            continue
        if header:
            close()
            body = []
            end = header.group("end") or header.group("start") or header.group("colon")
            start = header.group("start") if header.group("end") else None
            current = ReviewComment(
                header.group("id"),
                header.group("path"),
                int(end) if end else None,
                (header.group("rest") or "").strip(),
                int(start) if start else None,
            )
            continue
        if current is not None:
            if raw.startswith("#") and raw.lstrip("#").strip().lower().startswith(
                ("review", "summary", "spec", "original")
            ):
                close()
                current = None
                body = []
                continue
            body.append(raw)
    close()
    return [c for c in comments if c.path or c.body]


_SUGGESTION = re.compile(r"```suggestion[^\n]*\n(.*?)```", re.DOTALL)
_RENAME = re.compile(
    r"(?:rename|replace|change)\s+`([^`]+)`\s+(?:to|with|into|by)\s+`([^`]+)`|`([^`]+)`\s*(?:->|→)\s*`([^`]+)`",
    re.IGNORECASE,
)
_COMMENT_SYNTAX = {
    ".py": "# {}",
    ".sh": "# {}",
    ".yml": "# {}",
    ".yaml": "# {}",
    ".toml": "# {}",
    ".rb": "# {}",
    ".md": "<!-- {} -->",
    ".html": "<!-- {} -->",
    ".sql": "-- {}",
}


def _prose(body: str) -> str:
    """A comment's text without fenced code (the diff hunk and such)."""
    return _FENCE.sub("", body).strip()


class RevisePolicy(ScriptPolicy):
    """The coder answering a review; the REPLY contract is in the module docstring."""

    def __init__(
        self,
        *,
        root: str = "/workspace",
        turn_latency: float = 0.0,
        summary_note: bool = False,
        bash_commands: Sequence[str] = (),
    ) -> None:
        self.root = root.rstrip("/")
        self.turn_latency = turn_latency
        self.summary_note = summary_note
        self.bash_commands = list(bash_commands)

    def abs(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    def script(self, convo: Conversation) -> Script:
        ed = convo.editor
        task = convo.first_user_text
        comments = parse_review_comments(task)
        if ed is None:
            yield Turn([text("I could not address the review: no text editor tool was offered.")])
            return

        def edit(say: str, **args: Any) -> Turn:
            return Turn([text(say), tool_use(ed, args)])

        if not comments:
            yield from self._instructions_only(task, edit)
            return

        replies: list[tuple[str, str]] = []
        for c in comments:
            prose = _prose(c.body)
            lowered = prose.lower()
            if not c.path:
                replies.append((c.id, "No change: a general remark; the line comments say what."))
                continue
            if lowered.startswith("question:") or "no change" in lowered:
                replies.append((c.id, "No change: this asks a question; answered here, no edit."))
                continue
            fb = yield edit(f"Viewing {c.path}.", command="view", path=self.abs(c.path))
            if fb.failed:
                replies.append((c.id, f"No change: could not open `{c.path}`."))
                continue
            lines = cat_n_lines(fb.result.text)
            plan = _plan_edit(c, prose, lines)
            if plan is None:
                replies.append((c.id, "No change: I could not locate the code this refers to."))
                continue
            args, done = plan
            fb = yield edit(f"Addressing comment {c.id}.", path=self.abs(c.path), **args)
            if fb.failed and args["command"] == "str_replace" and c.line:
                fb = yield edit(
                    "The replacement failed; adding a note instead.",
                    command="insert",
                    path=self.abs(c.path),
                    insert_line=min(c.line, max(lines, default=0)),
                    insert_text=_note(c.path, prose, lines.get(c.line, "")),
                )
                done = f"added a note at line {c.line} (the exact text was not found)"
            if fb.failed:
                replies.append((c.id, f"No change: the edit failed ({fb.result.text[:120]})."))
            else:
                replies.append((c.id, f"Changed `{c.path}`: {done}."))

        summaries = re.findall(r"docs/implementation-summary-[\w.-]+\.md", convo.first_user_text)
        if self.summary_note and summaries:
            fb = yield edit(
                "Recording the revision in the summary.",
                command="view",
                path=self.abs(summaries[0]),
            )
            if not fb.failed:
                last = max(cat_n_lines(fb.result.text), default=0)
                yield edit(
                    "Appending a revision note.",
                    command="insert",
                    path=self.abs(summaries[0]),
                    insert_line=last,
                    insert_text="\n## Revisions\n\n- Addressed review comments.",
                )
        for cmd in self.bash_commands:
            if convo.bash is not None:
                yield Turn([text(f"Running `{cmd}`."), tool_use(convo.bash, {"command": cmd})])
        lines_out = "\n".join(f"REPLY {cid}: {msg}" for cid, msg in replies)
        final = Turn([text(f"I addressed the review.\n\n{lines_out}")])
        while True:
            yield final

    def _instructions_only(self, task: str, edit: Callable[..., Turn]) -> Script:
        """No line comments (e.g. `/pact code <instructions>` on the PR): note the request
        at the end of the first source file the task names, else of the summary."""
        wanted = _INSTRUCTIONS.search(task)
        request = " ".join((wanted.group(1) if wanted else task).split())[:120]
        paths = [p for p in _PATH.findall(task) if not p.endswith("-spec.md")]
        paths.sort(key=lambda p: p.startswith("docs/"))
        for path in paths[:3]:
            fb = yield edit(f"Viewing {path}.", command="view", path=self.abs(path))
            if fb.failed:
                continue
            lines = cat_n_lines(fb.result.text)
            fb = yield edit(
                "Recording the requested change.",
                command="insert",
                path=self.abs(path),
                insert_line=max(lines, default=0),
                insert_text=_note(path, request, ""),
            )
            if not fb.failed:
                while True:
                    yield Turn([text(f"I updated `{path}` as requested: {request}")])
        while True:
            yield Turn([text("I found no review comments and no file to change.")])


_INSTRUCTIONS = re.compile(r"<instructions>\s*(.*?)\s*</instructions>", re.DOTALL)
_PATH = re.compile(r"(?<![\w/.-])(?:/workspace/)?((?:[\w.-]+/)*[\w-]+\.(?:py|md|js|ts|go|rs|rb))\b")


def _note(path: str, prose: str, line: str) -> str:
    ext = "." + path.rsplit(".", 1)[-1] if "." in path else ""
    syntax = _COMMENT_SYNTAX.get(ext, "// {}")
    indent = line[: len(line) - len(line.lstrip())]
    first = " ".join(prose.split())[:120] or "review request"
    return indent + syntax.format(f"Review: {first}")


def _plan_edit(
    c: ReviewComment, prose: str, lines: dict[int, str]
) -> tuple[dict[str, Any], str] | None:
    suggestion = _SUGGESTION.search(c.body)
    if suggestion and c.line and c.line in lines:
        start = c.start_line or c.line
        old = "\n".join(lines[n] for n in range(start, c.line + 1) if n in lines)
        new = suggestion.group(1).rstrip("\n")
        args = {"command": "str_replace", "old_str": old, "new_str": new}
        return args, f"applied the suggestion at line {c.line}"
    rename = _RENAME.search(prose)
    if rename:
        a = rename.group(1) or rename.group(3)
        b = rename.group(2) or rename.group(4)
        target = lines.get(c.line or -1, "")
        if a in target:
            args = {"command": "str_replace", "old_str": target, "new_str": target.replace(a, b)}
            return args, f"replaced `{a}` with `{b}` at line {c.line}"
        if any(a in t for t in lines.values()):
            return {
                "command": "str_replace",
                "old_str": a,
                "new_str": b,
            }, f"replaced `{a}` with `{b}`"
        return None
    if not lines and not c.line:
        return None
    at = min(c.line or 0, max(lines, default=0))
    args = {
        "command": "insert",
        "insert_line": at,
        "insert_text": _note(c.path, prose, lines.get(at, "")),
    }
    return args, f"added a note after line {at} recording the requested change"
