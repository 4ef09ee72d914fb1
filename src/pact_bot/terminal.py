"""Text from job records and transcripts, made safe to print on an operator's terminal.

Model output, tool output and error strings are written by the agent (hostile): an escape
sequence in them could retitle the window, clear the screen, rewrite what was printed
above or (on some terminals) answer back as typed input. Every control and format
character except newline and tab is shown as a visible escape (`\\x1b`, `\\u202e`) instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

# Plain printable ASCII, newline and tab pass untouched; only the rest is looked at.
_SUSPECT = re.compile(r"[^\t\n\x20-\x7e]")
_ESCAPED = frozenset({"Cc", "Cf", "Cs"})


def _python_escape(n: int) -> str:
    if n <= 0xFF:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n <= 0xFFFF else f"\\U{n:08x}"


def _json_escape(n: int) -> str:
    if n <= 0xFFFF:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"


def _made_visible(escape: Callable[[int], str]) -> Callable[[re.Match[str]], str]:
    """A `re.sub` replacement that writes an unsafe character with `escape` (its code point)
    and leaves every other suspect (printable non-ASCII) as it is."""

    def replace(match: re.Match[str]) -> str:
        c = match.group()
        return escape(ord(c)) if unicodedata.category(c) in _ESCAPED else c

    return replace


_escape = _made_visible(_python_escape)
_escape_json = _made_visible(_json_escape)


def printable(text: str) -> str:
    """`text` with every control/format character but newline and tab made visible."""
    return _SUSPECT.sub(_escape, text)


def printable_json(text: str) -> str:
    """Serialised JSON with the control/format characters its encoder leaves raw (DEL, C1,
    bidi overrides) written as `\\uXXXX`: the same JSON value, inert on a terminal."""
    return _SUSPECT.sub(_escape_json, text)
