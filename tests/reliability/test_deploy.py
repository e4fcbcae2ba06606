"""deploy/: the container image, the compose file, the systemd units and the environment file.

Docker is not available on these machines, so the Dockerfile is read, not built: it must run
as a non-root user, keep the database on a volume and check /healthz; and its install steps
(the paths it copies and its `pip install`) are run for real, in a fresh virtualenv, by the
long test below, which CI runs with `make test-long`. The systemd units are checked key by key
and, where systemd is installed, by `systemd-analyze verify`. `.env.example` must name every
environment variable the code reads.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from bot import config, secrets

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def instructions(path: Path = DEPLOY / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        current += raw.rstrip("\\").strip() + " " if raw.rstrip().endswith("\\") else raw.strip()
        if not raw.rstrip().endswith("\\"):
            lines.append(current)
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def exec_form(arguments: str) -> list[str]:
    return ast.literal_eval(arguments) if arguments.startswith("[") else shlex.split(arguments)


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for kind, args in steps:
        if kind == "ENV":
            env.update(dict(part.split("=", 1) for part in shlex.split(args)))
    return env


def install_steps(steps: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """What the image installs: (source, destination) of each COPY, and each RUN with pip."""
    copies = []
    for kind, args in steps:
        if kind == "COPY":
            *sources, destination = shlex.split(args)
            copies += [(source, destination) for source in sources]
    runs = [args for kind, args in steps if kind == "RUN" and "pip install" in args]
    return copies, runs


def test_the_image_is_slim_python_of_the_supported_version():
    steps = instructions()
    assert steps[0][0] == "FROM"
    image = steps[0][1]
    minimum = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"].removeprefix(">=")
    assert re.fullmatch(rf"python:{re.escape(minimum)}(\.\d+)?-slim(-\w+)?", image), image


def test_the_bot_runs_as_a_user_that_is_not_root():
    steps = instructions()
    users = [(i, args.strip()) for i, (kind, args) in enumerate(steps) if kind == "USER"]
    assert users, "no USER: the bot would run as root"
    position, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    created = [args for kind, args in steps[:position] if kind == "RUN" and re.search(rf"\buseradd\b.*\b{re.escape(user)}\b", args)]
    assert created and "--system" in created[0]
    assert [kind for kind, _ in steps[position:]].count("CMD") == 1  # the bot starts after the switch


def test_the_database_is_on_a_volume_the_user_owns():
    steps = instructions()
    [volume] = [exec_form(args) for kind, args in steps if kind == "VOLUME"]
    assert volume == ["/data"]
    assert env_of(steps)["DEFLATION_WATCH_DB"].startswith("/data/")
    user = [args for kind, args in steps if kind == "USER"][-1]
    assert any(kind == "RUN" and f"chown {user}:{user} /data" in args for kind, args in steps)
    assert [args for kind, args in steps if kind == "WORKDIR"][-1] == "/data"


def test_the_healthcheck_asks_healthz_on_the_port_the_bot_listens_on():
    steps = instructions()
    [healthcheck] = [args for kind, args in steps if kind == "HEALTHCHECK"]
    options, _, command = healthcheck.partition(" CMD ")
    assert re.search(r"--interval=\d+s", options) and re.search(r"--timeout=\d+s", options)
    check = exec_form(command)
    assert check[:2] == ["python", "-c"] and "http://127.0.0.1:3000/healthz" in check[2]
    [cmd] = [exec_form(args) for kind, args in steps if kind == "CMD"]
    assert cmd[:2] == ["deflation-watch", "run"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and cmd[cmd.index("--port") + 1] == "3000"
    assert [args for kind, args in steps if kind == "EXPOSE"] == ["3000"]


def test_the_image_installs_the_package_as_pyproject_describes_it():
    copies, runs = install_steps(instructions())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {source for source, _ in copies}
    packages = set(project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    assert {"pyproject.toml", project["project"]["readme"]} | packages == copied
    assert runs == ["python -m pip install ."]  # the package with its runtime dependencies; no test extras, no -e


def test_compose_keeps_the_data_on_a_volume_and_reads_an_env_file():
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert "dockerfile: deploy/Dockerfile" in text and re.search(r"^\s+context: \.\.$", text, re.M)
    assert re.search(r"^\s+env_file: \.env$", text, re.M)
    assert re.search(r"^\s+- data:/data$", text, re.M) and re.search(r"^volumes:\n  data:", text, re.M)
    assert re.search(r"^\s+restart: unless-stopped$", text, re.M)
    assert "healthcheck:" not in text  # the image's own check stays in force


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)  # type: ignore[union-attr]
    return sections


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
}


def test_the_service_restarts_and_is_hardened():
    service = unit(DEPLOY / "deflation-watch.service")["Service"]
    assert service["Restart"] == ["on-failure"] and service["RestartSec"]
    for key, value in HARDENING.items():
        assert service.get(key) == [value], key
    assert service["User"][0] not in ("root", "0")
    database = Path(next(v for v in service["Environment"] if v.startswith("DEFLATION_WATCH_DB=")).split("=", 1)[1])
    assert str(database.parent) in service["ReadWritePaths"][0].split()  # the one place it writes
    assert service["StateDirectory"] == [database.parent.name]
    assert shlex.split(service["ExecStart"][0])[1:2] == ["run"] and service["EnvironmentFile"] == ["/etc/deflation-watch/env"]
    assert int(service["TimeoutStopSec"][0].rstrip("s")) >= 30  # SIGTERM lets a poll finish


def test_the_backup_units_back_up_nightly_with_the_same_hardening():
    service = unit(DEPLOY / "deflation-watch-backup.service")["Service"]
    assert "deflation-watch backup " in service["ExecStart"][0]
    assert {"/var/lib/deflation-watch", "/var/backups/deflation-watch"} <= set(service["ReadWritePaths"][0].split())
    for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert service[key] == [HARDENING[key]], key
    timer = unit(DEPLOY / "deflation-watch-backup.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Timer"]["Persistent"] == ["true"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", ["deflation-watch.service", "deflation-watch-backup.service", "deflation-watch-backup.timer"])
def test_systemd_accepts_every_key(tmp_path, name):
    """`systemd-analyze verify` warns (and ignores) any key or value it does not know."""
    for file in DEPLOY.glob("deflation-watch*.[st]*"):
        # The installed paths do not exist here: point them at programs that do.
        text = file.read_text().replace("/opt/deflation-watch/bin/deflation-watch", shutil.which("true") or "/bin/true")
        (tmp_path / file.name).write_text(text.replace("EnvironmentFile=/etc/deflation-watch/env", "EnvironmentFile=-/etc/deflation-watch/env"))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if name in line or "ignoring" in line.lower()]
    assert problems == []


def environment_names_read_by_the_code() -> set[str]:
    """Every environment variable name the package reads: literal names passed to
    `os.environ`/`environ.get`/`getenv`, the fields of a class read `from_environ` (upper
    case), the secrets `bot.secrets` remembers, and every DEFLATION_WATCH_ literal."""
    names: set[str] = set(secrets.SECRET_ENV)
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "storage").rglob("*.py")]:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                called = ast.unparse(node.func)
                if "environ" in called or called.endswith("getenv"):
                    names.add(node.args[0].value)
            if isinstance(node, ast.Subscript) and "environ" in ast.unparse(node.value) and isinstance(node.slice, ast.Constant):
                names.add(node.slice.value)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"DEFLATION_WATCH_[A-Z_]+", node.value):
                names.add(node.value)
            if isinstance(node, ast.ClassDef) and any(isinstance(item, ast.FunctionDef) and item.name == "from_environ" for item in node.body):
                names |= {item.target.id.upper() for item in node.body if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
    return {name for name in names if re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and name != config.ENV_PREFIX}


def env_example() -> dict[str, str]:
    found = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_env_example_lists_every_variable_the_code_reads():
    read = environment_names_read_by_the_code()
    assert {"SLACK_BOT_TOKEN", "DISCORD_WEBHOOK_URL", "DISCORD_API_URL", "DEFLATION_WATCH_CONFIG"} <= read  # the scan works
    assert sorted(read - set(env_example())) == []


def test_env_example_as_it_stands_is_a_valid_configuration():
    """An env file copied as is loads (empty values are unset), and each DEFLATION_WATCH_
    variable it names is read by the code or is the path of a real settings key."""
    environ = env_example()
    settings = config.load(environ=environ)
    assert (settings.log_format, settings.log_level, settings.admins) == ("json", "info", ())
    for name in environ:
        if name.startswith(config.ENV_PREFIX) and name not in environment_names_read_by_the_code():
            assert settings_key_exists(config._env_path(name.removeprefix(config.ENV_PREFIX))), name


def settings_key_exists(path: list[str]) -> bool:
    kind = config.Settings
    for part in path:
        fields = {field.name: field for field in dataclasses.fields(kind)}
        if part not in fields:
            return False
        kind = getattr(config, str(fields[part].type), None) or config.Settings
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.long
def test_the_images_install_steps_work_and_its_healthcheck_passes(tmp_path):
    """What `docker build` would do, without Docker: copy exactly what the Dockerfile copies
    into an empty directory, run its pip RUN line in a fresh virtualenv (Python and PyPI as in
    CI), then start `deflation-watch run` from that install and run the HEALTHCHECK command
    against it."""
    steps = instructions()
    copies, [run] = install_steps(steps)
    context = tmp_path / "src"
    context.mkdir()
    for source, destination in copies:
        target = context / destination / Path(source).name if destination.endswith("/") else context / destination
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / source, target)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    installed = subprocess.run(shlex.split(run), cwd=context, env=env, capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]

    elsewhere = tmp_path / "data"
    elsewhere.mkdir()
    env = {**env, "DEFLATION_WATCH_DB": str(elsewhere / "dw.db"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    for name in ("openrouter", "litellm", "genai-prices", "llm-prices", "models-dev"):  # no network here
        env[f"DEFLATION_WATCH_SOURCES__{name.upper().replace('-', '_')}__ENABLED"] = "false"
    loaded = subprocess.run([str(venv / "bin" / "deflation-watch"), "backfill"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0 and "loaded" in loaded.stdout, loaded.stderr  # package data (the shipped history) installed

    port = free_port()
    [healthcheck] = [args for kind, args in steps if kind == "HEALTHCHECK"]
    check = [str(venv / "bin" / "python"), *exec_form(healthcheck.partition(" CMD ")[2])[1:]]
    check[-1] = check[-1].replace(":3000/", f":{port}/")
    bot = subprocess.Popen([str(venv / "bin" / "deflation-watch"), "run", "--host", "127.0.0.1", "--port", str(port)], cwd=elsewhere, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            result = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert result.returncode == 0, result.stderr[-2000:]
    finally:
        bot.terminate()
        assert bot.wait(timeout=60) == 0


def test_every_guarantee_in_the_readme_names_tests_that_exist():
    """README "Guarantees": each row names the tests that prove it; each must exist."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| guarantee")]
    assert len(rows) >= 15
    for row in rows:
        proof = row.rstrip(" |").rsplit(" | ", 1)[1]
        named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`", proof)
        assert named, row
        current = None
        for path, function, sibling in named:
            if path:
                current = ROOT / path
                assert current.is_file(), path
            defined = {node.name for node in ast.walk(ast.parse(current.read_text())) if isinstance(node, ast.FunctionDef)}
            for name in filter(None, (function, sibling)):
                assert name in defined, f"{current.relative_to(ROOT)}::{name}"
