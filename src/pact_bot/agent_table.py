"""A table an agent wrote under a heading of its text, read cell by cell. Pure: no I/O.

    body = section(lines, start)                  # the lines under the table's heading
    for rid, tests, result in table(body, (REQUIREMENT, ("test",), ("result",)), 1000):
        Row(requirement_id(rid), (), path_cell(tests), *status_cell(result, WORDS))

The implementation summary's `## Traceability` and the test engineer's `## Test report` are
such tables. Agents rename, reorder and drop columns, leave the header out, and decorate
cells with emphasis, links, `/workspace/` and line numbers, so columns are found by name
(by position without a header) and cells are normalised. The text is hostile: every size
is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pact_bot.requirements import clip

MAX_CELL = 4000
MAX_PATHS = 50
MAX_PATH = 400
MAX_REASON = 300
ANY_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s")
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")  # `| --- |`
REQUIREMENT = ("requirement", "req", "id")  # the names of a table's first column
_EMPTY = {"", "-", "—", "–", "n/a", "na", "none", "(none)", "nothing"}
_WORKSPACE = "/workspace/"


@dataclass(frozen=True)
class Row:
    """A requirement's row as the agent wrote it (paths normalised). `status` is the word
    the table asks for (`implemented`, `partial`, `not implemented` in a summary; `passed`,
    `failed`, `not tested` in a test report) or the agent's own, kept so people see what it
    said; `reason` is what it wrote after the word. A test report has no files column."""

    requirement: str
    files: tuple[str, ...]
    tests: tuple[str, ...]
    status: str
    reason: str = ""


def section(
    lines: Sequence[str], start: int, *, within: re.Pattern[str] | None = None
) -> list[str]:
    """The lines under the heading at `start`, up to a heading of its level or a higher one
    (except headings matching `within`: the test report's `# Bugs` belongs to it)."""
    m = ANY_HEADING.match(lines[start])
    level = len(m.group(1)) if m else 6
    out: list[str] = []
    for i in range(start + 1, len(lines)):
        h = ANY_HEADING.match(lines[i])
        if h and len(h.group(1)) <= level and not (within and within.match(lines[i])):
            break
        out.append(lines[i])
    return out


def split_row(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|")[:MAX_CELL] for c in re.split(r"(?<!\\)\|", inner)]


def table(lines: Iterable[str], columns: Sequence[Sequence[str]], max_rows: int) -> list[list[str]]:
    """The first table in `lines`: per row, its cells in the order of `columns` (each the
    names of a column, the first one's being REQUIREMENT). A header naming the first column
    places the others by name, "" for those it does not name; with no such header the
    columns are positional and the first line is a row. The table ends at a line that is
    not one of its rows, so prose after it is not read."""
    cols: Sequence[int | None] = range(len(columns))
    rows: list[list[str]] = []
    header_seen = False
    for line in lines:
        if "|" not in line:
            if rows:
                break
            continue
        if TABLE_RULE.match(line):
            continue
        cells = split_row(line)
        if not header_seen:
            header_seen = True
            named = _named(cells, columns)
            if named[0] is not None:
                cols = named
                continue
        rows.append([cells[i] if i is not None and i < len(cells) else "" for i in cols])
        if len(rows) >= max_rows:
            break
    return rows


def _named(header: Sequence[str], columns: Sequence[Sequence[str]]) -> list[int | None]:
    """Which cell names each column: a cell starting with one of a column's names, the
    longest name winning (`Test result` is a result, not tests), the first such cell for
    each column. A name is a whole word (`Tests`, `Req ID`; `requests.py` is a path, not
    `req`), and a cell with a digit in it is data (`REQ-1`), never a name."""
    found: list[int | None] = [None] * len(columns)
    for i, cell in enumerate(header):
        if re.search(r"\d", cell):
            continue
        word = re.sub(r"[^a-z ]", "", cell.lower()).strip()
        hits = [
            (len(n), -c)
            for c, names in enumerate(columns)
            for n in names
            if word.startswith(n) and word[len(n) :].removeprefix("s")[:1] in ("", " ")
        ]
        if hits:
            c = -max(hits)[1]
            found[c] = i if found[c] is None else found[c]
    return found


def requirement_id(cell: str) -> str:
    """`**R1**: Buckets per key` → `R1`."""
    text = cell.strip().strip("`*_[] ")
    m = re.match(r"^([A-Za-z][\w.-]*?)(?=$|[\s:`*\]—–]|\s-)", text)
    return (m.group(1) if m else text).strip(".")[:80]


def normalise_path(raw: str, *, node_id: bool = False) -> str:
    """`./a`, `/workspace/a`, `` `a` ``, `[a](url)`, `a:12` → `a`; `a::test_x` → `a`, or
    kept whole with `node_id` (a test report names tests, a traceability table files)."""
    p = raw.strip()
    m = re.match(r"^\[([^\]]*)\]\([^)]*\)$", p)
    p = m.group(1) if m else p
    p = p.strip().strip("`*_'\"").strip().removeprefix(_WORKSPACE)
    p, _, test = p.partition("::")
    p = re.sub(r"(?::\d+(?:-\d+)?|#L\d+(?:-L\d+)?)$", "", p)  # a line reference
    p = "/".join(part for part in p.split("/") if part not in ("", "."))
    return (f"{p}::{test}" if node_id and p and test else p)[:MAX_PATH]


def path_cell(cell: str, *, node_ids: bool = False) -> tuple[str, ...]:
    """The paths a cell names, split on `,`, `;`, `<br>` and ` and `, each once, at most
    MAX_PATHS; `—`, `n/a`, `none` and the like name none."""
    out: list[str] = []
    for part in re.split(r",|;|<br\s*/?>|\s+and\s+", cell, flags=re.I):
        if part.strip().lower().strip("`*_ ") in _EMPTY:
            continue
        path = normalise_path(part, node_id=node_ids)
        if path and path not in out:
            out.append(path)
        if len(out) >= MAX_PATHS:
            break
    return tuple(out)


def status_cell(cell: str, words: Sequence[str]) -> tuple[str, str]:
    """(the first of `words` the cell starts with, what it says after it), for the agents'
    `not implemented: <why>` and `failed (2 of 5)`; a cell starting with none of them:
    (its text in lower case, "")."""
    text = " ".join(cell.strip("`*_ ").split())
    low = text.lower()
    for word in words:
        if low.startswith(word):
            return word, clip(text[len(word) :].lstrip(" :—–-(").rstrip(")"), MAX_REASON)
    return low, ""
