"""The Dockerfile and compose.yaml, checked without a Docker engine.

What can be checked here is checked: the Dockerfile parses into the stages we expect, every
file it copies exists and is not dropped by .dockerignore, the command it runs is a real
entry point, and the builder's own steps, replayed in a temporary directory, produce an
environment that starts `pact-bot serve` and passes the image's HEALTHCHECK.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Instruction:
    cmd: str
    args: str
    line: int

    def flags(self) -> dict[str, str]:
        """`--from=builder --mount=type=cache,...` → {"from": "builder", "mount": ...}."""
        out = {}
        for tok in shlex.split(self.args):
            if not tok.startswith("--"):
                break
            key, _, value = tok[2:].partition("=")
            out[key] = value
        return out

    def operands(self) -> list[str]:
        """Arguments after the flags; JSON (exec) form or shell words."""
        rest = self.args
        while rest.startswith("--"):
            rest = rest.split(None, 1)[1] if " " in rest else ""
        if rest.lstrip().startswith("["):
            return json.loads(rest)
        return shlex.split(rest)

    def rest(self) -> str:
        """The text after the flags (a RUN's shell command)."""
        rest = self.args
        while rest.startswith("--"):
            rest = rest.split(None, 1)[1]
        return rest


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for ins in self.all("ENV"):
            for tok in shlex.split(ins.args):
                key, _, value = tok.partition("=")
                out[key] = value
        return out


KNOWN = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Instructions per stage, with line continuations joined and global ARGs applied."""
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comments inside a continued instruction are dropped, as by BuildKit
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append((start, (buf + line).strip()))
        buf = ""
    assert not buf, "the Dockerfile ends inside a line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for n, text_line in logical:
        cmd, _, rest = text_line.partition(" ")
        cmd = cmd.upper()
        assert cmd in KNOWN, f"line {n}: unknown instruction {cmd}"
        rest = rest.strip()
        if cmd == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
            continue
        if cmd == "FROM":
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            name = rest.split()[2] if " AS " in rest.upper() else None
            stages.append(Stage(base, name))
            continue
        assert stages, f"line {n}: {cmd} before FROM"
        stages[-1].instructions.append(Instruction(cmd, rest, n))
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())[1]


def _dockerignored(rel: str, patterns: list[str]) -> bool:
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        pat = pat.removeprefix("**/")
        parts = Path(rel).parts
        hit = any(
            fnmatch.fnmatch("/".join(parts[: i + 1]), pat) or fnmatch.fnmatch(parts[i], pat)
            for i in range(len(parts))
        )
        if hit:
            ignored = not neg
    return ignored


def test_dockerfile_has_a_builder_and_a_slim_runtime(dockerfile: list[Stage]) -> None:
    assert len(dockerfile) == 2
    builder, runtime = dockerfile
    assert builder.name == "builder"
    assert runtime.base == "python:3.11-slim"
    syncs = [i.rest() for i in builder.all("RUN") if "uv sync" in i.rest()]
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)


def test_every_copied_file_exists_and_reaches_the_build_context(dockerfile: list[Stage]) -> None:
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    copied = []
    for stage in dockerfile:
        for ins in stage.all("COPY") + stage.all("ADD"):
            if "from" in ins.flags():
                continue
            copied += ins.operands()[:-1]
    assert "uv.lock" in copied and "src" in copied
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
        assert not _dockerignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
    for secret in (".env", "pact.env", "key.pem", "pact-bot.db"):
        assert _dockerignored(secret, patterns), f"{secret} would be sent to the build context"


def test_uv_in_the_image_is_the_version_make_uses(dockerfile: list[Stage]) -> None:
    make_uv = re.search(r"^UV_VERSION := (\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert make_uv
    uv_copy = [i for i in dockerfile[0].all("COPY") if "astral-sh/uv" in i.args]
    assert uv_copy and f"uv:{make_uv.group(1)}" in uv_copy[0].flags()["from"]


def test_runtime_is_non_root_with_a_data_volume_git_and_bubblewrap(
    dockerfile: list[Stage],
) -> None:
    runtime = dockerfile[1]
    users = runtime.all("USER")
    assert users and users[-1].args not in ("root", "0")
    # USER comes before CMD so the command runs as that user.
    assert users[-1].line < runtime.all("CMD")[-1].line
    env = runtime.env()
    assert env["PACT_DATA_DIR"] == "/data"
    assert env["PACT_DATABASE_URL"].startswith("sqlite:////data/")
    volumes = [v for i in runtime.all("VOLUME") for v in i.operands()]
    assert "/data" in volumes
    apt = " ".join(i.rest() for i in runtime.all("RUN") if "apt-get install" in i.rest())
    assert "git" in apt.split() and "bubblewrap" in apt.split()
    assert runtime.all("EXPOSE")[0].args == env["PACT_PORT"] == "3000"


def test_healthcheck_uses_python_not_curl(dockerfile: list[Stage]) -> None:
    hc = dockerfile[1].all("HEALTHCHECK")
    assert len(hc) == 1
    command = hc[0].rest()
    assert command.startswith("CMD python ")
    assert "/healthz" in command and "curl" not in command and "wget" not in command


def test_cmd_is_a_real_console_script_and_click_command(dockerfile: list[Stage]) -> None:
    cmd = dockerfile[1].all("CMD")[-1].operands()
    assert cmd == ["pact-bot", "serve", "--host", "0.0.0.0"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[cmd[0]] == "pact_bot.cli:main"
    from pact_bot.cli import main

    serve = main.commands[cmd[1]]
    ctx = serve.make_context(cmd[1], cmd[2:])
    assert ctx.params["host"] == "0.0.0.0"


def test_compose_has_sqlite_default_and_a_postgres_profile() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    default = [n for n, s in services.items() if not s.get("profiles")]
    assert default == ["pact-bot"]
    single = services["pact-bot"]
    assert "PACT_DATABASE_URL" not in (single.get("environment") or {})  # the image's SQLite
    assert any(v.endswith(":/data") for v in single["volumes"])
    for name in ("postgres", "migrate", "web", "worker"):
        assert services[name]["profiles"] == ["postgres"]
    assert services["web"]["environment"]["PACT_WORKERS"] == "0"
    assert services["web"]["command"][:2] == ["pact-bot", "serve"]
    assert services["worker"]["command"][:2] == ["pact-bot", "worker"]
    assert services["migrate"]["command"] == ["pact-bot", "db", "migrate"]
    for name in ("web", "worker", "migrate"):
        assert services[name]["environment"]["PACT_DATABASE_URL"].startswith("postgresql://")
    for name in ("web", "worker"):
        dep = services[name]["depends_on"]["migrate"]["condition"]
        assert dep == "service_completed_successfully"
    from pact_bot.cli import main

    assert "worker" in main.commands and "migrate" in main.commands["db"].commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if not found:
        pytest.skip("uv is not installed (make venv bootstraps it into .tools/)")
    return found


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_builder_steps_replayed_without_docker_start_a_healthy_server(
    dockerfile: list[Stage], tmp_path: Path
) -> None:
    """Replay the builder's COPY and RUN steps, then run the runtime's CMD and HEALTHCHECK."""
    builder, runtime = dockerfile
    started = time.monotonic()
    # Container paths, mapped into the temporary directory.
    mapping = {"/app/.venv": str(tmp_path / "app" / ".venv"), "/data": str(tmp_path / "data")}
    workdir = tmp_path / "src"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PACT_", "UV_"))}
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{Path(_uv()).parent}:{env.get('PATH', '')}"
    for ins in builder.instructions:
        if ins.cmd == "WORKDIR":
            workdir.mkdir(parents=True, exist_ok=True)
        elif ins.cmd == "ENV":
            for key, value in builder.env().items():
                env[key] = mapping.get(value, value)
            # The image's interpreter is /usr/local/bin/python3; here it is this one's base.
            env["UV_PYTHON"] = sys._base_executable  # type: ignore[attr-defined]
        elif ins.cmd == "COPY" and "from" not in ins.flags():
            *sources, dest = ins.operands()
            target = workdir / dest
            for src in sources:
                path = ROOT / src
                out = target / path.name if dest.endswith("/") or len(sources) > 1 else target
                if path.is_dir():
                    shutil.copytree(path, out, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
        elif ins.cmd == "RUN":
            command = ins.rest()
            assert command.startswith("uv "), f"builder step not replayable here: {command}"
            proc = subprocess.run(
                command,
                shell=True,
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=150,
            )
            assert proc.returncode == 0, f"{command}\n{proc.stderr[-3000:]}"
    venv = Path(mapping["/app/.venv"])
    assert (venv / "bin" / "pact-bot").exists()
    # Installed, not linked to the source tree: the package (with app.yml) lives in the venv.
    shutil.rmtree(workdir)
    probe = subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            "import importlib.resources as r, pact_bot;"
            "print(pact_bot.__file__); print(r.files('pact_bot').joinpath('app.yml').is_file())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    location, has_manifest = probe.stdout.split()
    assert location.startswith(str(venv)) and has_manifest == "True"

    run_env = {k: v for k, v in env.items() if not k.startswith("UV_")}
    for key, value in runtime.env().items():
        for container, local in mapping.items():
            value = value.replace(container, local)
        run_env[key] = value.replace("$PATH", env["PATH"])
    Path(mapping["/data"]).mkdir()
    port = _free_port()
    run_env["PACT_PORT"] = str(port)
    cmd = runtime.all("CMD")[-1].operands()
    server = subprocess.Popen(
        cmd, cwd=mapping["/data"], env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    assert json.loads(r.read())["status"] == "ok"
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()[-3000:]
                assert time.monotonic() < deadline, "no /healthz within 30 s"
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert "Register the GitHub App at" in r.read().decode()
        hc = runtime.all("HEALTHCHECK")[0].rest().removeprefix("CMD ")
        check = subprocess.run(hc, shell=True, env=run_env, capture_output=True, timeout=10)
        assert check.returncode == 0, check.stderr.decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (Path(mapping["/data"]) / "pact-bot.db").exists()  # the SQLite queue in the volume
    assert time.monotonic() - started < 120


def test_compose_caps_processes_and_memory_of_every_pact_container() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if service.get("image") == "pact-bot:latest":
            assert service["pids_limit"] >= 1024, name
            assert service["mem_limit"], name
