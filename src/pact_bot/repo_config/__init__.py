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

`RepoConfig` (`model`) is the file's schema; `parse_repo_config` (`parse`) reads it and
quotes the line of the first problem (`RepoConfigError`); `RepoConfig.effective(settings)`
gives the values a job uses (`Effective`, capped by the server's maxima);
`RepoConfig.trigger_fields()` is what the queue caches for ingress; `glob_match` (`globs`)
is the git-style glob that `spec_glob` and `protected_paths` are written in.
"""

from pact_bot.repo_config.effective import Effective, protected_patterns
from pact_bot.repo_config.globs import glob_match
from pact_bot.repo_config.model import RepoConfig
from pact_bot.repo_config.parse import CONFIG_PATH, RepoConfigError, parse_repo_config

__all__ = [
    "CONFIG_PATH",
    "Effective",
    "RepoConfig",
    "RepoConfigError",
    "glob_match",
    "parse_repo_config",
    "protected_patterns",
]
