"""Generate docs/configuration.md from the models that read the configuration.

The server's environment variables come from `pact_bot.settings.Settings` (each field's
type, default, constraints and docstring); the repository's `.github/pact.yml` keys come
from `pact_bot.repo_config.RepoConfig`. The docstrings are read here, from the source
(`field_docs`), not by pydantic's `use_attribute_docstrings`: that would parse the source
at every start-up of every process, for a text only this generator reads.
tests/test_docs.py fails when the file is stale.

    python -m pact_bot.docs_gen          # rewrite docs/configuration.md
    python -m pact_bot.docs_gen --check  # exit 1 when it is out of date
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pact_bot.settings import Settings

COMMAND = "python -m pact_bot.docs_gen"
TARGET = Path("docs") / "configuration.md"

SECTIONS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "GitHub App",
        "The setup flow (`pact-bot setup`, or the button on `/`) writes the App's values to "
        "the env file; GitHub Enterprise Server only needs `GITHUB_API_URL`.",
        ("github_", "pact_github_"),
    ),
    (
        "Model provider",
        "The model runs on the Anthropic API, Amazon Bedrock or Google Vertex AI, always "
        "through the `anthropic` SDK. Cloud credentials come from the cloud's own chain "
        '(docs/deployment.md, "Bedrock and Vertex").',
        ("pact_provider", "anthropic_bedrock_", "anthropic_vertex_", "aws_", "cloud_ml_"),
    ),
    ("Anthropic", "The agent calls the Messages API through the `anthropic` SDK.", ("anthropic_",)),
    (
        "Model and prices",
        "Aliases in agent definitions and `.github/pact.yml` (`sonnet`, `opus`, `haiku`) "
        "resolve to these ids. Prices feed the dollar budget and the cost in each PR.",
        ("pact_model", "pact_prices"),
    ),
    (
        "Budgets and queue",
        "Hard limits per job; a repository's `limits:` can only lower them.",
        ("pact_max_", "pact_monthly_budget", "pact_lease_", "pact_max_attempts"),
    ),
    (
        "Sandbox",
        "Limits of each command the agent runs in bubblewrap (`pact-bot doctor` says how "
        "they are enforced here), the worktree's size cap, and extra read-only binds.",
        ("pact_sandbox_",),
    ),
    ("Server, storage and workers", "", ("pact_",)),
]


@functools.cache
def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field's documentation: the string right below `name: type = default` (as Python
    documents attributes), else its `Field(description=…)`."""
    cls = ast.parse(textwrap.dedent(inspect.getsource(model))).body[0]
    assert isinstance(cls, ast.ClassDef)
    docs = {
        name: field.description for name, field in model.model_fields.items() if field.description
    }
    for node, after in zip(cls.body, cls.body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _type_name(annotation: Any) -> tuple[str, bool]:
    """A reader's name for a field type, and whether the value is a secret."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _type_name(args[0])
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if annotation is SecretStr:
        return "string (secret)", True
    if origin is dict or annotation is dict:
        return "JSON object", False
    if origin is list:
        inner, _ = _type_name(typing.get_args(annotation)[0])
        return f"list of {inner}s", False
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in typing.get_args(annotation)), False
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation))), False


def _constraints(field: FieldInfo) -> str:
    out = []
    for m in field.metadata:
        if isinstance(m, annotated_types.Ge):
            out.append(f"≥ {m.ge}")
        elif isinstance(m, annotated_types.Gt):
            out.append(f"> {m.gt}")
        elif isinstance(m, annotated_types.Le):
            out.append(f"≤ {m.le}")
        elif isinstance(m, annotated_types.Lt):
            out.append(f"< {m.lt}")
        elif getattr(m, "pattern", None):
            out.append(f"matches `{m.pattern}`")
    return ", ".join(out)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, Path):
        text = str(value)
        return f"`{text if value.is_absolute() or text.startswith('.') else './' + text}`"
    if isinstance(value, BaseModel):
        return "(keys below)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (list, dict)):
        return f"`{yaml.safe_dump(value, default_flow_style=True).strip()}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _env_rows(fields: dict[str, FieldInfo]) -> list[str]:
    rows = ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
    docs = field_docs(Settings)
    for name, field in fields.items():
        kind, _ = _type_name(field.annotation)
        limits = _constraints(field)
        kind = f"{kind}, {limits}" if limits else kind
        rows.append(
            f"| `{name.upper()}` | {_cell(kind)} | {_cell(_default(field))} | "
            f"{_cell(docs.get(name, ''))} |"
        )
    return rows


def _env_section() -> list[str]:
    out = [
        "## Server: environment variables",
        "",
        "Read once at start-up from the environment, then from the env file (`.env` in the "
        "working directory, or `PACT_ENV_FILE`); the environment wins. A bad value stops "
        "start-up with one line naming the variable. Names are case-insensitive.",
        "",
    ]
    remaining = dict(Settings.model_fields)
    for title, intro, prefixes in SECTIONS:
        picked = {n: f for n, f in remaining.items() if n.startswith(prefixes)}
        if not picked:
            continue
        for n in picked:
            del remaining[n]
        out += [f"### {title}", ""]
        if intro:
            out += [intro, ""]
        out += [*_env_rows(picked), ""]
    if remaining:
        out += ["### Other", "", *_env_rows(remaining), ""]
    return out


def _docstring_comments(module: types.ModuleType) -> dict[str, str]:
    """`key: value  # comment` lines of the module's example YAML, by dotted key."""
    doc = module.__doc__ or ""
    block = re.search(r"```yaml\n(.*?)```", doc, re.S)
    comments: dict[str, str] = {}
    if not block:
        return comments
    stack: list[tuple[int, str]] = []
    for line in block.group(1).splitlines():
        m = re.match(r"^(\s*)([A-Za-z_][\w]*):(.*)$", line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(k for _, k in stack), key])
        if "#" in rest:
            comments[path] = rest.split("#", 1)[1].strip()
        stack.append((indent, key))
    return comments


def _model_rows(
    model: type[BaseModel], prefix: str, comments: dict[str, str], rows: list[str]
) -> None:
    docs = field_docs(model)
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        annotation = field.annotation
        nested = annotation if isinstance(annotation, type) else None
        if nested is not None and issubclass(nested, BaseModel):
            desc = docs.get(name) or comments.get(path, "")
            rows.append(f"| `{path}` | mapping | (keys below) | {_cell(desc)} |")
            _model_rows(nested, f"{path}.", comments, rows)
            continue
        kind, _ = _type_name(annotation)
        limits = _constraints(field)
        kind = f"{kind}, {limits}" if limits else kind
        desc = docs.get(name) or comments.get(path, "")
        rows.append(f"| `{path}` | {_cell(kind)} | {_cell(_default(field))} | {_cell(desc)} |")


def _repo_section() -> list[str]:
    out = [
        "## Repository: `.github/pact.yml`",
        "",
        "Read from the repository's default branch when a job starts; every key is optional "
        "and an absent file means the defaults. An invalid file fails the job with the line "
        "and the problem, never silently.",
        "",
    ]
    try:
        module = importlib.import_module("pact_bot.repo_config")
        model: type[BaseModel] = module.RepoConfig
    except (ImportError, AttributeError):
        return [
            *out,
            "<!-- repo-config: pending -->",
            "_`pact_bot.repo_config.RepoConfig` does not exist yet; "
            f"`{COMMAND}` fills this section in once it does._",
            "",
        ]
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    _model_rows(model, "", _docstring_comments(module), rows)
    defaults = model().model_dump(mode="json", exclude_none=True)
    example = yaml.safe_dump(defaults, sort_keys=False).strip()
    return [
        *out,
        *rows,
        "",
        "The defaults as a file (unset keys left out: `model` comes from the agent definition, "
        "`limits` from the server's maxima):",
        "",
        "```yaml",
        example,
        "```",
        "",
    ]


def render() -> str:
    lines = [
        "# Configuration",
        "",
        f"<!-- Generated by `{COMMAND}` from pact_bot.settings.Settings and "
        "pact_bot.repo_config.RepoConfig. Do not edit by hand. -->",
        "",
        "pact-bot has two layers of configuration: the server's environment variables "
        "(one deployment) and `.github/pact.yml` (one repository). Deployment recipes are in "
        "[deployment.md](deployment.md); what the secrets protect is in "
        "[security.md](security.md).",
        "",
        *_env_section(),
        *_repo_section(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[2]
    target = root / TARGET
    text = render()
    if "--check" in args:
        current = target.read_text() if target.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
