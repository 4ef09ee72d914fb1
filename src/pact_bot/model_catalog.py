"""The models each provider offers under the aliases sonnet, opus and haiku, and their prices.

Settings resolve aliases and build the price table from these; PACT_MODEL_* and PACT_PRICES
override them for any provider.
"""

from __future__ import annotations

from typing import Literal

Provider = Literal["anthropic", "bedrock", "vertex"]

DEFAULT_MODELS = {
    "sonnet": "claude-sonnet-5-5",
    "opus": "claude-opus-5-5",
    "haiku": "claude-haiku-5-5",
}

# Dollars per million tokens: input, output, cache write (5 min), cache read.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "claude-sonnet-5-5": {"input": 2.0, "output": 10.0, "cache_write": 2.5, "cache_read": 0.2},
    "claude-opus-5-5": {"input": 4.0, "output": 20.0, "cache_write": 5.0, "cache_read": 0.2},
    "claude-haiku-5-5": {"input": 1.0, "output": 5.0, "cache_write": 1.25, "cache_read": 0.1},
}

# The same models under each cloud's ids.
BEDROCK_MODELS = {
    "sonnet": "anthropic.claude-sonnet-5-5-v1:0",
    "opus": "anthropic.claude-opus-5-5-v1:0",
    "haiku": "anthropic.claude-haiku-5-5-v1:0",
}
VERTEX_MODELS = {
    "sonnet": "claude-sonnet-5-5",
    "opus": "claude-opus-5-5",
    "haiku": "claude-haiku-5-5",
}
# On-demand prices of the clouds' global endpoints, which match Anthropic's list prices;
# regional endpoints cost more: put those in PACT_PRICES.
BEDROCK_PRICES: dict[str, dict[str, float]] = {
    BEDROCK_MODELS[alias]: DEFAULT_PRICES[DEFAULT_MODELS[alias]] for alias in DEFAULT_MODELS
}
VERTEX_PRICES: dict[str, dict[str, float]] = {
    VERTEX_MODELS[alias]: DEFAULT_PRICES[DEFAULT_MODELS[alias]] for alias in DEFAULT_MODELS
}

PROVIDER_MODELS: dict[str, dict[str, str]] = {
    "anthropic": DEFAULT_MODELS,
    "bedrock": BEDROCK_MODELS,
    "vertex": VERTEX_MODELS,
}
PROVIDER_PRICES: dict[str, dict[str, dict[str, float]]] = {
    "anthropic": DEFAULT_PRICES,
    "bedrock": BEDROCK_PRICES,
    "vertex": VERTEX_PRICES,
}
# Cloud credentials pact-bot never stores but must keep out of logs and transcripts.
CLOUD_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK")


def alias_description(alias: str) -> str:
    """The documentation of PACT_MODEL_<ALIAS>: the ids it stands for by default."""
    return (
        f"Model id the alias `{alias}` resolves to; default per provider: "
        f"`{DEFAULT_MODELS[alias]}`, Bedrock `{BEDROCK_MODELS[alias]}`, "
        f"Vertex `{VERTEX_MODELS[alias]}`."
    )
