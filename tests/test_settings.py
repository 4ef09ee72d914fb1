import subprocess
import sys

import pytest
from sim.auth import new_private_key_pem

from pact_bot.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for k in list(__import__("os").environ):
        if k.startswith(("GITHUB_", "PACT_", "ANTHROPIC_")):
            monkeypatch.delenv(k)


def test_defaults_need_no_app():
    s = load_settings()
    assert s.pact_database_url == "sqlite:///./pact-bot.db"
    assert s.pact_workers == 2
    assert s.missing_app_vars() == ["GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET"]


def test_non_integer_app_id_names_the_variable(monkeypatch):
    monkeypatch.setenv("GITHUB_APP_ID", "twelve")
    with pytest.raises(ConfigError, match=r"^GITHUB_APP_ID: "):
        load_settings()


def test_pem_that_does_not_parse(monkeypatch):
    monkeypatch.setenv("GITHUB_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\nnope\n")
    with pytest.raises(ConfigError, match="GITHUB_PRIVATE_KEY: not a PEM private key"):
        load_settings()


def test_pem_from_path_and_escaped_newlines(monkeypatch, tmp_path):
    key = new_private_key_pem(pkcs8=True)
    monkeypatch.setenv("GITHUB_PRIVATE_KEY", key.replace("\n", "\\n"))
    assert load_settings().github_private_key.get_secret_value().strip() == key.strip()
    monkeypatch.delenv("GITHUB_PRIVATE_KEY")
    (tmp_path / "k.pem").write_text(key)
    monkeypatch.setenv("GITHUB_PRIVATE_KEY_PATH", str(tmp_path / "k.pem"))
    assert load_settings().github_private_key is not None


def test_unknown_database_scheme(monkeypatch):
    monkeypatch.setenv("PACT_DATABASE_URL", "mysql://x")
    with pytest.raises(ConfigError, match="PACT_DATABASE_URL: unknown scheme"):
        load_settings()


def test_model_resolution(monkeypatch):
    s = load_settings()
    assert s.resolve_model("opus") == "claude-opus-5-5"
    assert s.resolve_model("claude-3-x") == "claude-3-x"
    monkeypatch.setenv("PACT_MODEL", "haiku")
    assert load_settings().resolve_model("opus") == "claude-haiku-5-5"


def test_price_override_from_env(monkeypatch):
    monkeypatch.setenv("PACT_PRICES", '{"claude-sonnet-5-5": {"output": 12}}')
    p = load_settings().prices["claude-sonnet-5-5"]
    assert p["output"] == 12 and p["input"] == 2.0


def test_cli_reports_one_line_not_a_traceback(monkeypatch):
    monkeypatch.setenv("PACT_WORKERS", "-1")
    r = subprocess.run(
        [sys.executable, "-m", "pact_bot.cli", "jobs"], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "pact-bot: configuration error: PACT_WORKERS: Input should be greater than or equal to 0"
    ]
