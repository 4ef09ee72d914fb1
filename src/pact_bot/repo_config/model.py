"""The schema of `.github/pact.yml`: every key, its default and its limits, and the values a
job uses once the server's maxima cap them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pact_bot.netproxy import parse_rules
from pact_bot.repo_config.effective import Effective, cap, protected_patterns

if TYPE_CHECKING:
    from pact_bot.settings import Settings

Phase = Literal["code", "test"]
# What ingress needs before a job runs (cached in the queue per repository).
TRIGGER_FIELDS = ("label", "command", "spec_glob", "spec_prs", "auto_rebase")


class _Strict(BaseModel):
    # Each field's docstring is its entry in docs/configuration.md (`docs_gen.field_docs`).
    model_config = ConfigDict(extra="forbid", frozen=True)


class PRConfig(_Strict):
    draft: bool = False
    """Open the pull request as a draft."""
    branch_prefix: str = "pact/code/"
    """The bot's branches are `<prefix><spec-slug>`."""

    @field_validator("branch_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", v) or ".." in v or v.startswith("/"):
            raise ValueError("must be a plain git branch prefix such as pact/code/")
        return v if v.endswith("/") else v + "/"


class Limits(_Strict):
    max_turns: int | None = Field(None, ge=1)
    """Model calls per job (at most PACT_MAX_TURNS)."""
    max_cost_usd: float | None = Field(None, gt=0)
    """Dollars per job (at most PACT_MAX_COST_USD)."""
    max_minutes: float | None = Field(None, gt=0)
    """Minutes per job (at most PACT_MAX_MINUTES)."""


class NetworkConfig(_Strict):
    allow: list[str] = Field(default_factory=list)
    """Hosts (`host`, `*.domain`, `host:port`) setup commands may reach through the bot's proxy,
    besides the package indexes the server uses (PACT_SANDBOX_ALLOW)."""
    agent: bool = False
    """Let the agent's own bash reach the same hosts (it is offline otherwise)."""

    @field_validator("allow")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        parse_rules(v)
        return v


class SandboxConfig(_Strict):
    enabled: bool = True
    """Offer the bash tool (when bubblewrap works on the server)."""
    setup: list[str] = Field(default_factory=list)
    """Commands run in the sandbox before the agent starts, with the network of `network.allow`
    (e.g. `python3 -m venv ~/venv`, `~/venv/bin/pip install -e .`); `~` is a home that lasts for
    the whole job."""
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    """What sandboxed commands may reach."""


class CIConfig(_Strict):
    enabled: bool = True
    """Fix the failed checks of the bot's own pull requests with a commit."""
    max_attempts: int = Field(2, ge=1, le=10)
    """CI-fix commits per pull request before it is handed back to people."""


class BudgetConfig(_Strict):
    monthly_usd: float | None = Field(None, gt=0)
    """Dollars this repository may spend per calendar month (UTC); with PACT_MONTHLY_BUDGET_USD
    too, the lower headroom wins."""


class RepoConfig(_Strict):
    label: str = Field("pact:code", min_length=1)
    """Issue label that starts a code job."""
    command: str = Field("/pact", pattern=r"^/?[A-Za-z0-9_-]+$")
    """Comment command word: `/pact code`, `/pact help`, `/pact status`, `/pact cancel`."""
    spec_glob: str = Field("docs/**/*-spec.md", min_length=1)
    """Which files are specs."""
    spec_prs: Literal["suggest", "run", "off"] = "suggest"
    """On a pull request that adds or changes a spec: offer an "Implement" check run (suggest),
    start at once (run), or nothing (off)."""
    drift: Literal["check", "off"] = "check"
    """On a push to the default branch that changes an implemented spec (or a file implementing
    one alone): a "PACT Drift" check run with an "Update code" button (check), or nothing (off)."""
    phases: list[Phase] = Field(default_factory=lambda: list[Phase](["code"]))
    """What follows a spec: `[code]`, or `[code, test]` to run the test engineer (`/pact test`) on
    the pull request as soon as a code job opens it."""
    pr: PRConfig = Field(default_factory=PRConfig)
    """The pull request the bot opens."""
    model: str | None = None
    """Alias (sonnet, opus, haiku) or full model id; PACT_MODEL on the server wins. Default: the
    agent definition's `model:`."""
    limits: Limits = Field(default_factory=Limits)
    """Lower the server's PACT_MAX_* budgets for this repo."""
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    """The agent's sandboxed bash tool."""
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    """Monthly spend cap of this repository."""
    test_command: str | None = None
    """How to run the tests; the agent is told, and the bot runs it after the agent and reports
    the outcome. Detected from the repository's files when absent."""
    protected_paths: list[str] = Field(default_factory=list)
    """More globs the agent may not change, added to the built-in `.github/**`, `.git/` and
    `.claude/**` (which a repository cannot remove); a change fails the job."""
    ci: CIConfig = Field(default_factory=CIConfig)
    """Follow the bot's pull requests to green: `ci: off`, `ci: on`, or
    `ci: {enabled: true, max_attempts: 2}`."""
    auto_rebase: bool = False
    """When the base branch moves so that a bot pull request conflicts with it, merge the base in
    and resolve the conflicts without waiting for `/pact rebase`."""
    reviews: Literal["all", "changes_requested", "command"] = "all"
    """Which reviews on the bot's pull requests start a revision: all, only `changes_requested`,
    or none (`command`: only `/pact code`). A review whose body says `[skip pact]` is always
    ignored."""
    agent: str | None = None
    """Path of an agent definition in the repository overriding the built-in `pact-backend-coder`
    (`.claude/agents/pact-backend-coder.md` is used when present); always read from the default
    branch."""

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
        return self.model_dump(include=set(TRIGGER_FIELDS))

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
            max_turns=cap(lim.max_turns, settings.pact_max_turns),
            max_cost_usd=cap(lim.max_cost_usd, settings.pact_max_cost_usd),
            max_minutes=cap(lim.max_minutes, settings.pact_max_minutes),
            sandbox=self.sandbox.enabled,
            setup=tuple(self.sandbox.setup),
            network_allow=(*settings.pact_sandbox_allow, *self.sandbox.network.allow),
            agent_network=self.sandbox.network.agent,
            test_command=self.test_command,
            protected_paths=protected_patterns(self.protected_paths),
            agent=self.agent,
        )
