"""Prometheus metrics, defined once; every part increments the same objects."""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
_counter = functools.partial(Counter, registry=REGISTRY)
_gauge = functools.partial(Gauge, registry=REGISTRY)
_histogram = functools.partial(Histogram, registry=REGISTRY)

deliveries = _counter(
    "pact_webhook_deliveries_total",
    "Webhook deliveries by event and outcome (accepted, duplicate, ignored, rejected).",
    ["event", "outcome"],
)
triggers_dropped = _counter(
    "pact_webhook_triggers_dropped_total",
    "Would-be triggers answered 200 that started nothing, by reason (stranger: a comment or "
    "review from someone not OWNER, MEMBER or COLLABORATOR; rate_limited_sender, "
    "rate_limited_repo: over PACT_RATE_LIMIT_SENDER / PACT_RATE_LIMIT_REPO).",
    ["reason"],
)
pruned = _counter("pact_pruned_total", "Rows deleted by retention (jobs, deliveries).", ["table"])
webhook_latency = _histogram(
    "pact_webhook_latency_seconds",
    "Time from request to answer on /webhook.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
queue_depth = _gauge("pact_queue_jobs", "Jobs in the queue by state.", ["state"])
jobs = _counter("pact_jobs_total", "Finished jobs by kind and outcome.", ["kind", "outcome"])
job_duration = _histogram(
    "pact_job_duration_seconds",
    "Job run time by kind.",
    ["kind"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800),
)
model_tokens = _counter(
    "pact_model_tokens_total",
    "Model tokens by kind (input, cache_read, cache_write, output).",
    ["kind"],
)
model_dollars = _counter("pact_model_dollars_total", "Model spend in dollars.")
github_calls = _counter("pact_github_api_calls_total", "GitHub API calls by status.", ["status"])
github_rate_remaining = _gauge(
    "pact_github_rate_limit_remaining", "x-ratelimit-remaining from the last GitHub answer."
)
context_edits = _counter(
    "pact_context_edits_total",
    "Agent conversations shrunk to fit the context window, by action (cleared, summarised).",
    ["action"],
)
cache_read_share = _histogram(
    "pact_model_cache_read_share",
    "Per agent run: the share of prompt tokens that were cache reads.",
    buckets=(0.1, 0.25, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99),
)
spend = _gauge(
    "pact_spend_usd_total",
    "Model spend this calendar month (UTC) by repository, from the jobs table.",
    ["repository"],
)
