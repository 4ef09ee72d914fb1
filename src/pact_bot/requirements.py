"""A spec's requirements, as a reviewer would list them. Pure: no I/O.

    reqs = extract_requirements(spec_text)     # [Requirement(id, text, section, line, ...)]

Two kinds are found:
- requirements with their own id (`R1`, `REQ-12`, `REQ-AUTH-3`, `FR-3`, `NFR-2`, `US-4`, ...)
  where a list item, a table row, a bold lead-in or a heading starts with the id. An id
  mentioned inside a sentence ("see FR-3") is a reference, not a definition. Whatever an
  ID'd item owns (its nested list lines, or the body of an ID'd heading) belongs to it, so
  a MUST sentence there is not a second requirement.
- sentences with an upper-case RFC 2119 keyword (MUST, MUST NOT, SHALL, SHALL NOT, SHOULD,
  SHOULD NOT) elsewhere.

A requirement's section is the title of the heading above it (an ID'd heading is its own),
spelled as `specs.changed_sections` spells sections, so drift can name the requirements in
the sections a push changed.

Fenced and indented code blocks and HTML comments are skipped: an example's `MUST` is not a
requirement.

Ids for sentences without one are `S-` + six hex digits of the SHA-256 of the sentence's
text (whitespace collapsed, emphasis markers dropped). A section slug + ordinal id would
change whenever a sentence is added above it in the same section, and a slug would change
when a heading is renamed; a content hash changes only when the sentence itself changes,
which is when it has become a different requirement anyway. Two identical sentences get
`-2`, `-3`, ... in document order.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass

MAX_TEXT = 160
MAX_REQUIREMENTS = 1000
ID_PREFIXES = ("REQ", "NFR", "FR", "US", "UC", "SR", "BR", "R")
_ID = re.compile(
    r"(?<![\w-])((?:" + "|".join(ID_PREFIXES) + r")(?:-[A-Z][A-Z0-9]*)*-?\d+(?:\.\d+)*)(?![\w-])"
)
# The same heading shape as `specs.changed_sections`, so drift maps sections to requirements.
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_LIST = re.compile(r"^(\s*)(?:[-*+]|\d{1,9}[.)])\s+(.*)$")
# Quoted keywords are the RFC 2119 boilerplate ("The key words "MUST", ...") or prose about them.
_KEYWORD = re.compile(r"(?<![\"'“‘])\b(MUST|SHALL|SHOULD)(?:\s+NOT)?\b(?![\"'”’])")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]*_]*\s+(?=[\"'(\[*_`]*[A-Z0-9])")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_LEAD = re.compile(r"^[\s*_`\[]*")
_SEP = re.compile(r"^[\s*_`\]]*(?:[:.)\-–—|]+[\s*_`]*)?")


@dataclass(frozen=True)
class Requirement:
    id: str
    text: str
    section: str
    line: int
    explicit: bool  # the spec gave the id
    keyword: str | None = None  # MUST / MUST NOT / SHALL / ... when the text has one


def clip(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _plain(text: str) -> str:
    """Markdown emphasis and link syntax off, one line (bounded: the patterns backtrack)."""
    text = text[:4000]
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<![\w*])[*_](\S(?:.*?\S)?)[*_](?![\w*])", r"\1", text)
    return " ".join(text.split())


def _keyword(text: str) -> str | None:
    m = _KEYWORD.search(text)
    return " ".join(m.group(0).split()) if m else None


def _own_id(text: str) -> tuple[str, str] | None:
    """(id, rest) when `text` starts with a requirement id (after emphasis/brackets)."""
    lead = _LEAD.match(text)
    start = lead.end() if lead else 0
    m = _ID.match(text, start)
    if not m:
        return None
    rest = text[m.end() :]
    sep = _SEP.match(rest)
    rest = rest[sep.end() :] if sep else rest
    if rest and rest[0].isalnum() and not re.match(r"^[\s*_`\]:.)\-–—|]", text[m.end() :]):
        return None  # `R1x...` or `FR-3is` is not an id followed by text
    return m.group(1), rest


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def _sentences(parts: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Split a paragraph (its lines with their numbers) into (line, sentence)."""
    text = ""
    starts: list[tuple[int, int]] = []
    for number, line in parts:
        if text:
            text += " "
        starts.append((len(text), number))
        text += line.strip()
    offsets = [off for off, _ in starts]
    out: list[tuple[int, str]] = []
    pos = 0
    for m in [*_SENTENCE_END.finditer(text), None]:
        end = m.start() if m else len(text)
        chunk = text[pos:end].strip()
        if chunk:
            at = starts[max(0, bisect.bisect_right(offsets, pos) - 1)][1] if starts else 0
            out.append((at, chunk))
        pos = m.end() if m else len(text)
    return out


class _Extractor:
    """Walks a spec's blocks; an ID'd heading, list item or bold lead-in owns its body."""

    def __init__(self) -> None:
        self.out: list[Requirement] = []
        self.index: dict[str, int] = {}
        self.seen: dict[str, int] = {}  # sentence hash → how many so far
        self.section = ""
        self.paragraph: list[tuple[int, str]] = []
        self.open = False  # a paragraph or list item is going on (no blank line since)
        self.in_list = False  # the last block was a list: an indented line continues it
        self.heading_owner: tuple[str, int] | None = None  # (id, heading level)
        self.item_owner: tuple[str, int] | None = None  # (id, list indent)
        self.bold_owner: str | None = None
        self.extend: str | None = None  # the ID'd item whose wrapped lines continue its text

    def owner(self) -> str | None:
        if self.bold_owner:
            return self.bold_owner
        if self.item_owner:
            return self.item_owner[0]
        return self.heading_owner[0] if self.heading_owner else None

    def add(self, req: Requirement) -> None:
        if len(self.out) < MAX_REQUIREMENTS:
            self.index[req.id] = len(self.out)
            self.out.append(req)

    def define(self, rid: str, text: str, line: int) -> bool:
        if rid in self.index:
            return False
        plain = _plain(text)
        self.add(Requirement(rid, clip(plain), self.section, line, True, _keyword(plain)))
        return rid in self.index

    def fill(self, rid: str, text: str) -> None:
        """Owned lines: an ID'd requirement without text (or keyword) takes them from here."""
        i = self.index.get(rid)
        if i is None:
            return
        req = self.out[i]
        plain = _plain(text)
        if not req.text and plain:
            first = _sentences([(req.line, plain)])[0][1]
            self.out[i] = Requirement(
                rid, clip(first), req.section, req.line, True, _keyword(first)
            )
        elif req.keyword is None and _keyword(plain):
            self.out[i] = Requirement(rid, req.text, req.section, req.line, True, _keyword(plain))

    def flush(self) -> None:
        self.extend = None
        parts, self.paragraph = self.paragraph, []
        if not parts:
            return
        owner = self.owner()
        if owner is not None:
            self.fill(owner, " ".join(p for _, p in parts))
            return
        for line, sentence in _sentences(parts):
            kw = _keyword(sentence)
            if kw:
                self.sentence(sentence, line, kw)

    def sentence(self, text: str, line: int, kw: str) -> None:
        if len(self.out) >= MAX_REQUIREMENTS:
            return
        plain = _plain(text)
        base = "S-" + hashlib.sha256(plain.encode()).hexdigest()[:6]
        n = self.seen.get(base, 0) + 1
        self.seen[base] = n
        rid = base if n == 1 else f"{base}-{n}"
        while rid in self.index:  # only when an id a spec gave looks like ours
            n += 1
            rid = f"{base}-{n}"
        self.add(Requirement(rid, clip(plain), self.section, line, False, kw))

    def heading(self, level: int, title: str, line: int) -> None:
        self.in_list = False
        self.blank()
        self.item_owner = None
        if self.heading_owner and level <= self.heading_owner[1]:
            self.heading_owner = None
        self.section = title
        own = _own_id(title)
        if own and self.define(own[0], own[1], line):
            self.heading_owner = (own[0], level)

    def list_item(self, indent: int, body: str, line: int) -> None:
        self.in_list = True
        self.flush()
        self.bold_owner = None
        self.open = True
        if self.item_owner is not None:
            if indent > self.item_owner[1]:
                self.paragraph.append((line, body))
                return
            self.item_owner = None
        own = _own_id(body)
        if own and self.define(own[0], own[1], line):
            self.item_owner = (own[0], indent)
            self.extend = own[0]
            return
        self.paragraph.append((line, body))

    def text_line(self, indent: int, text: str, line: int) -> None:
        if indent == 0 and not self.open:
            self.in_list = False
        if not self.open:
            if self.item_owner is not None and indent <= self.item_owner[1]:
                self.item_owner = None
            self.open = True
            own = _own_id(text)
            if own and text.startswith(("**", "__")) and self.define(own[0], own[1], line):
                self.bold_owner = self.extend = own[0]
                return
        if self.extend is not None:
            i = self.index[self.extend]
            req = self.out[i]
            more = _plain(text)
            self.out[i] = Requirement(
                req.id,
                clip(f"{req.text} {more}"),
                req.section,
                req.line,
                True,
                req.keyword or _keyword(more),
            )
            return
        self.paragraph.append((line, text))

    def table_row(self, text: str, line: int) -> None:
        self.in_list = False
        if _TABLE_RULE.match(text):
            return
        self.blank()
        cells = [c for c in _cells(text) if c]
        first = _own_id(cells[0]) if cells else None
        if first and first[1].strip():  # `| FR-1 List items | High |`
            self.define(first[0], first[1], line)
            return
        for i, cell in enumerate(cells):
            own = _own_id(cell)
            if own and not own[1].strip():
                others = [c for j, c in enumerate(cells) if j != i]
                self.define(own[0], max(others, key=len) if others else "", line)
                return
        if self.owner() is not None:
            return
        for cell in cells:
            kw = _keyword(cell)
            if kw:
                self.sentence(cell, line, kw)

    def blank(self) -> None:
        self.flush()
        self.open = False
        self.bold_owner = None


def _without_comments(lines: list[str]) -> list[str]:
    """HTML comments blanked out (line numbers kept); fenced code is left for the caller."""
    out: list[str] = []
    in_comment = False
    fence: str | None = None
    for line in lines:
        m = _FENCE.match(line)
        if not in_comment and fence is None and m:
            fence = m.group(1)
            out.append(line)
            continue
        if fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            out.append(line)
            continue
        kept = ""
        rest = line
        while rest:
            if in_comment:
                end = rest.find("-->")
                if end < 0:
                    rest = ""
                else:
                    rest = rest[end + 3 :]
                    in_comment = False
            else:
                start = rest.find("<!--")
                if start < 0:
                    kept += rest
                    rest = ""
                else:
                    kept += rest[:start]
                    rest = rest[start + 4 :]
                    in_comment = True
        out.append(kept)
    return out


def extract_requirements(text: str) -> list[Requirement]:
    """The spec's requirements in document order, each id once."""
    ex = _Extractor()
    fence: str | None = None
    code = False  # inside an indented code block
    lines = _without_comments(text.splitlines())
    rows = _table_lines(lines)
    for number, raw in enumerate(lines, start=1):
        if fence is not None:
            stripped = raw.strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                fence = None
            continue
        m = _FENCE.match(raw)
        if m:
            ex.blank()
            fence = m.group(1)
            continue
        line = raw.expandtabs(4)
        while line.lstrip().startswith(">"):
            line = line.lstrip()[1:]
            line = line[1:] if line.startswith(" ") else line
        if not line.strip():
            ex.blank()
            continue
        indent = len(line) - len(line.lstrip())
        if code and indent >= 4:
            continue
        code = False
        if indent >= 4 and not ex.open and not ex.in_list:
            code = True
        elif h := _HEADING.match(line):
            ex.heading(len(h.group(1)), h.group(2), number)
        elif number in rows or line.lstrip().startswith("|"):
            ex.table_row(line, number)
        elif item := _LIST.match(line):
            ex.list_item(len(item.group(1)), item.group(2), number)
        else:
            ex.text_line(indent, line.strip(), number)
    ex.flush()
    return ex.out


def _table_lines(lines: list[str]) -> set[int]:
    """Line numbers of GFM table rows: a header with `|`, a delimiter row, rows up to a blank."""
    out: set[int] = set()
    i = 0
    while i < len(lines) - 1:
        if "|" in lines[i] and "|" in lines[i + 1] and _TABLE_RULE.match(lines[i + 1]):
            j = i
            while j < len(lines) and "|" in lines[j] and lines[j].strip():
                out.add(j + 1)
                j += 1
            i = j
        else:
            i += 1
    return out
