# Two entry points for a fresh machine with Python 3.11+ and git: `make serve`, `make test`.
# Both build .venv from uv.lock first; uv itself is bootstrapped into .tools/ with pip.
PY ?= python3
UV := .tools/bin/uv
UV_VERSION := 0.13.8

.PHONY: serve test lint format venv clean

$(UV):
	$(PY) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --quiet
	touch $@

venv: .venv/.synced

serve: venv
	.venv/bin/pact-bot serve

lint: venv
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

format: venv
	.venv/bin/ruff format src tests bench
	.venv/bin/ruff check --fix src tests bench

test: lint
	.venv/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf .venv .tools
