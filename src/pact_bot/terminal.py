"""Text from job records and transcripts, made safe to print on an operator's terminal.

Model output, tool output and error strings are written by the agent (hostile): an escape
sequence in them could retitle the window, clear the screen, rewrite what was printed
above or (on some terminals) answer back as typed input. Every control and format
character except newline and tab is shown as a visible escape (`\\x1b`, `\\u202e`) instead.
"""

from __future__ import annotations

import re
import unicodedata

# Plain printable ASCII, newline and tab pass untouched; only the rest is looked at.
_SUSPECT = re.compile(r"[^\t\n\x20-\x7e]")
_ESCAPED = frozenset({"Cc", "Cf", "Cs"})


def _unsafe(c: str) -> bool:
    return unicodedata.category(c) in _ESCAPED


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    if not _unsafe(c):
        return c
    n = ord(c)
    if n <= 0xFF:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n <= 0xFFFF else f"\\U{n:08x}"


def _json_escape(match: re.Match[str]) -> str:
    c = match.group()
    if not _unsafe(c):
        return c
    n = ord(c)
    if n <= 0xFFFF:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"


def printable(text: str) -> str:
    """`text` with every control/format character but newline and tab made visible."""
    return _SUSPECT.sub(_escape, text)


def printable_json(text: str) -> str:
    """Serialised JSON with the control/format characters its encoder leaves raw (DEL, C1,
    bidi overrides) written as `\\uXXXX`: the same JSON value, inert on a terminal."""
    return _SUSPECT.sub(_json_escape, text)
