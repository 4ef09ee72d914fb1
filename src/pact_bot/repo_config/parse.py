"""Reading `.github/pact.yml`: an invalid file is an error that quotes the line of the first
problem (operators fix it from the job's comment), never a silent fallback to defaults."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from pact_bot.repo_config.model import RepoConfig

CONFIG_PATH = ".github/pact.yml"


class RepoConfigError(Exception):
    """`.github/pact.yml` is not valid; the message names the line and the problem."""


def parse_repo_config(text: str | None) -> RepoConfig:
    """Parse and validate the file's text; None or an empty file means the defaults."""
    if text is None or not text.strip():
        return RepoConfig()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        problem = getattr(e, "problem", None) or str(e)
        raise RepoConfigError(f"{CONFIG_PATH}, {where}: not valid YAML ({problem})") from None
    if data is None:
        return RepoConfig()
    if not isinstance(data, dict):
        raise RepoConfigError(f"{CONFIG_PATH}, line 1: expected a mapping of settings")
    try:
        return RepoConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [p for p in err["loc"]]
        line = _line_of(root, loc)
        key = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise RepoConfigError(f"{CONFIG_PATH}, line {line}: {key}: {msg}{more}") from None


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int:
    """1-based line of the deepest YAML node on the error's path."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(part):
                    nxt = v if not isinstance(v, yaml.ScalarNode) or v.value != "" else k
                    line = k.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
            if isinstance(node, yaml.ScalarNode):
                line = node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
