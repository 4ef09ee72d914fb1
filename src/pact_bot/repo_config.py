"""Per-repository configuration: `.github/pact.yml` on the default branch.

Every key is optional; an absent file means the defaults. An invalid file is an
error the job reports (quoting the message with its line), never a silent
fallback.

```yaml
label: pact:code              # issue label that starts a code job
command: /pact                # comment command word
spec_glob: docs/**/*-spec.md  # which files are specs
spec_prs: suggest             # suggest | run | off (check run on PRs that change specs)
drift: check                  # check | off (check run on pushes that change implemented specs)
phases: [code]                # [code, test]: run the test engineer after the code job
pr:
  draft: false
  branch_prefix: pact/code/
model: sonnet                 # alias or full model id (PACT_MODEL on the server wins)
limits:                       # capped by the server's PACT_MAX_* values
  max_turns: 60
  max_cost_usd: 5
  max_minutes: 30
budget:
  monthly_usd: 50             # this repository's monthly cap (PACT_MONTHLY_BUDGET_USD too)
sandbox:
  enabled: true               # offer the bash tool when bubblewrap works
  setup: []                   # commands run in the sandbox before the agent starts
  network:
    allow: []                 # hosts setup may reach (the server's package indexes always)
    agent: false              # give the agent's own bash the same network
test_command: pytest -q       # the bot runs it after the agent (detected when absent)
ci:                           # fix failed checks of the bot's PRs (or `ci: off`)
  enabled: true
  max_attempts: 2
reviews: all                  # all | changes_requested | command
auto_rebase: false            # merge a moved base into conflicting bot PRs on its own
protected_paths:              # more paths the agent may not change, on top of the
  - infra/**                  # built-in `.github/**`, `.git/`, `.claude/**` (always protected)
agent: .claude/agents/pact-backend-coder.md
```

Public API: `RepoConfig`, `parse_repo_config(text) -> RepoConfig` (raises
`RepoConfigError`), `RepoConfig.effective(settings) -> Effective`,
`RepoConfig.trigger_fields()` (what the queue caches for ingress),
`glob_match(pattern, path)`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pact_bot.netproxy import parse_rules

if TYPE_CHECKING:
    from pact_bot.settings import Settings

CONFIG_PATH = ".github/pact.yml"
# Always protected, whatever the repository says: `.github/` holds the workflows that run
# with the repository's secrets and this very file (which sets the protected paths).
# `.claude/**`: the agent's own definitions and Claude Code's settings (whose hooks run on
# the machine of whoever opens the checkout); the agent may not rewrite them.
BUILTIN_PROTECTED = (".github/**", ".git/**", ".claude/**")


Phase = Literal["code", "test"]


class RepoConfigError(Exception):
    """`.github/pact.yml` is not valid; the message names the line and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PRConfig(_Strict):
    draft: bool = Field(default=False, description="Open the pull request as a draft.")
    branch_prefix: str = Field(
        default="pact/code/",
        description="The bot's branches are `<prefix><spec-slug>`.",
    )

    @field_validator("branch_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", v) or ".." in v or v.startswith("/"):
            raise ValueError("must be a plain git branch prefix such as pact/code/")
        return v if v.endswith("/") else v + "/"


class Limits(_Strict):
    max_turns: int | None = Field(
        default=None, ge=1, description="Model calls per job (at most PACT_MAX_TURNS)."
    )
    max_cost_usd: float | None = Field(
        default=None, gt=0, description="Dollars per job (at most PACT_MAX_COST_USD)."
    )
    max_minutes: float | None = Field(
        default=None, gt=0, description="Minutes per job (at most PACT_MAX_MINUTES)."
    )


class NetworkConfig(_Strict):
    allow: list[str] = Field(
        default_factory=list,
        description="Hosts (`host`, `*.domain`, `host:port`) setup commands may reach through "
        "the bot's proxy, besides the package indexes the server uses (PACT_SANDBOX_ALLOW).",
    )
    agent: bool = Field(
        default=False,
        description="Let the agent's own bash reach the same hosts (it is offline otherwise).",
    )

    @field_validator("allow")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        parse_rules(v)
        return v


class SandboxConfig(_Strict):
    enabled: bool = Field(
        default=True, description="Offer the bash tool (when bubblewrap works on the server)."
    )
    setup: list[str] = Field(
        default_factory=list,
        description="Commands run in the sandbox before the agent starts, with the network "
        "of `network.allow` (e.g. `python3 -m venv ~/venv`, `~/venv/bin/pip install -e .`); "
        "`~` is a home that lasts for the whole job.",
    )
    network: NetworkConfig = Field(
        default_factory=NetworkConfig, description="What sandboxed commands may reach."
    )


class CIConfig(_Strict):
    enabled: bool = Field(
        default=True,
        description="Fix the failed checks of the bot's own pull requests with a commit.",
    )
    max_attempts: int = Field(
        default=2,
        ge=1,
        le=10,
        description="CI-fix commits per pull request before it is handed back to people.",
    )


class BudgetConfig(_Strict):
    monthly_usd: float | None = Field(
        default=None,
        gt=0,
        description="Dollars this repository may spend per calendar month (UTC); with "
        "PACT_MONTHLY_BUDGET_USD too, the lower headroom wins.",
    )


class RepoConfig(_Strict):
    label: str = Field(
        default="pact:code", min_length=1, description="Issue label that starts a code job."
    )
    command: str = Field(
        default="/pact",
        pattern=r"^/?[A-Za-z0-9_-]+$",
        description="Comment command word: `/pact code`, `/pact help`, `/pact status`, "
        "`/pact cancel`.",
    )
    spec_glob: str = Field(
        default="docs/**/*-spec.md", min_length=1, description="Which files are specs."
    )
    spec_prs: Literal["suggest", "run", "off"] = Field(
        default="suggest",
        description='On a pull request that adds or changes a spec: offer an "Implement" '
        "check run (suggest), start at once (run), or nothing (off).",
    )
    drift: Literal["check", "off"] = Field(
        default="check",
        description="On a push to the default branch that changes an implemented spec (or a "
        'file implementing one alone): a "PACT Drift" check run with an "Update code" '
        "button (check), or nothing (off).",
    )
    phases: list[Phase] = Field(
        default_factory=lambda: list[Phase](["code"]),
        description="What follows a spec: `[code]`, or `[code, test]` to run the test "
        "engineer (`/pact test`) on the pull request as soon as a code job opens it.",
    )
    pr: PRConfig = Field(default_factory=PRConfig, description="The pull request the bot opens.")
    model: str | None = Field(
        default=None,
        description="Alias (sonnet, opus, haiku) or full model id; PACT_MODEL on the server "
        "wins. Default: the agent definition's `model:`.",
    )
    limits: Limits = Field(
        default_factory=Limits, description="Lower the server's PACT_MAX_* budgets for this repo."
    )
    sandbox: SandboxConfig = Field(
        default_factory=SandboxConfig, description="The agent's sandboxed bash tool."
    )
    budget: BudgetConfig = Field(
        default_factory=BudgetConfig, description="Monthly spend cap of this repository."
    )
    test_command: str | None = Field(
        default=None,
        description="How to run the tests; the agent is told, and the bot runs it after the "
        "agent and reports the outcome. Detected from the repository's files when absent.",
    )
    protected_paths: list[str] = Field(
        default_factory=list,
        description="More globs the agent may not change, added to the built-in "
        "`.github/**`, `.git/` and `.claude/**` (which a repository cannot remove); a change "
        "fails the job.",
    )
    ci: CIConfig = Field(
        default_factory=CIConfig,
        description="Follow the bot's pull requests to green: `ci: off`, `ci: on`, or "
        "`ci: {enabled: true, max_attempts: 2}`.",
    )
    auto_rebase: bool = Field(
        default=False,
        description="When the base branch moves so that a bot pull request conflicts with "
        "it, merge the base in and resolve the conflicts without waiting for `/pact rebase`.",
    )
    reviews: Literal["all", "changes_requested", "command"] = Field(
        default="all",
        description="Which reviews on the bot's pull requests start a revision: all, only "
        "`changes_requested`, or none (`command`: only `/pact code`). A review whose body "
        "says `[skip pact]` is always ignored.",
    )
    agent: str | None = Field(
        default=None,
        description="Path of an agent definition in the repository overriding the built-in "
        "`pact-backend-coder` (`.claude/agents/pact-backend-coder.md` is used when present); "
        "always read from the default branch.",
    )

    @field_validator("spec_prs", "drift", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false: `spec_prs: off` must mean "off".
        return "off" if v is False else v

    @field_validator("ci", mode="before")
    @classmethod
    def _ci_switch(cls, v: Any) -> Any:
        # `ci: off` / `ci: on` (YAML reads them as booleans) is short for `enabled:`.
        if isinstance(v, bool):
            return {"enabled": v}
        if v in ("off", "on"):
            return {"enabled": v == "on"}
        return v

    @field_validator("command")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.startswith("/") else "/" + v

    @field_validator("agent")
    @classmethod
    def _agent_path(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("/") or ".." in v.split("/")):
            raise ValueError("must be a path inside the repository")
        return v

    def trigger_fields(self) -> dict[str, Any]:
        """What ingress needs before a job runs (cached in the queue per repository)."""
        return {
            "label": self.label,
            "command": self.command,
            "spec_glob": self.spec_glob,
            "spec_prs": self.spec_prs,
            "auto_rebase": self.auto_rebase,
        }

    def effective(self, settings: Settings) -> Effective:
        """The values a job uses: the server's maximums cap the repository's limits."""
        lim = self.limits
        return Effective(
            label=self.label,
            command=self.command,
            spec_glob=self.spec_glob,
            spec_prs=self.spec_prs,
            drift=self.drift,
            phases=tuple(dict.fromkeys(self.phases)),
            draft=self.pr.draft,
            branch_prefix=self.pr.branch_prefix,
            model=settings.resolve_model(self.model),
            max_turns=_cap(lim.max_turns, settings.pact_max_turns),
            max_cost_usd=_cap(lim.max_cost_usd, settings.pact_max_cost_usd),
            max_minutes=_cap(lim.max_minutes, settings.pact_max_minutes),
            sandbox=self.sandbox.enabled,
            setup=tuple(self.sandbox.setup),
            network_allow=(*settings.pact_sandbox_allow, *self.sandbox.network.allow),
            agent_network=self.sandbox.network.agent,
            test_command=self.test_command,
            protected_paths=protected_patterns(self.protected_paths),
            agent=self.agent,
        )


@dataclass(frozen=True)
class Effective:
    label: str
    command: str
    spec_glob: str
    spec_prs: str
    draft: bool
    branch_prefix: str
    model: str
    max_turns: int
    max_cost_usd: float
    max_minutes: float
    sandbox: bool
    setup: tuple[str, ...]
    network_allow: tuple[str, ...]
    agent_network: bool
    test_command: str | None
    protected_paths: tuple[str, ...]
    agent: str | None
    drift: str = "check"
    phases: tuple[str, ...] = ("code",)

    def as_text(self) -> str:
        """The effective values, one per line (for `/pact help` and logs)."""
        return "\n".join(
            [
                f"label: {self.label}",
                f"command: {self.command}",
                f"spec_glob: {self.spec_glob}",
                f"spec_prs: {self.spec_prs}",
                f"pr.draft: {str(self.draft).lower()}",
                f"pr.branch_prefix: {self.branch_prefix}",
                f"model: {self.model}",
                f"limits: {self.max_turns} turns, ${self.max_cost_usd:g}, "
                f"{self.max_minutes:g} minutes",
                f"sandbox: {'on' if self.sandbox else 'off'}"
                + (f" (setup: {'; '.join(self.setup)})" if self.setup else ""),
                f"sandbox.network: {', '.join(self.network_allow) or 'package indexes only'}"
                + (" (agent too)" if self.agent_network else " (setup only)"),
                f"test_command: {self.test_command or '(detected)'}",
                f"protected_paths: {', '.join(self.protected_paths)}",
                f"agent: {self.agent or '(built-in pact-backend-coder)'}",
                f"drift: {self.drift}",
                f"phases: {', '.join(self.phases)}",
            ]
        )


def protected_patterns(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The built-in protected globs plus the repository's own, built-ins first.

    Additive on purpose: `protected_paths: []` must not unprotect the workflows.
    """
    return tuple(dict.fromkeys([*BUILTIN_PROTECTED, *extra]))


def _cap(value: float | None, maximum: float) -> Any:
    return maximum if value is None else min(value, maximum)


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


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def glob_match(pattern: str, path: str) -> bool:
    """Git-style glob on a repository path: `**/` spans directories, `*` stays in one.

    A pattern ending in `/` matches everything under that directory.
    """
    path = path.lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    return _glob_regex(pattern).fullmatch(path) is not None
