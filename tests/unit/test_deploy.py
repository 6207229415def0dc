"""The deploy recipe (issue 16, item 9) is valid: ``docker compose config`` when docker has the
compose plugin, else a structural check of deploy/compose.yaml; nginx's own ``-t`` on
deploy/nginx.conf (made local); the systemd units parsed and checked for their roles, and, where
``systemd-analyze`` is installed, ``systemd-analyze verify`` on each (templates instantiated,
the install path pointed at this checkout's ``autocircle`` so that its executable check holds):
any complaint it prints about a unit fails the test. Without it, only the parse runs."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.nginx import NGINX, check, local_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENV = {"POSTGRES_PASSWORD": "pw", "AUTOCIRCLE_PUBLIC_URL": "https://bot.example.com"}


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "compose", "version"], check=False, capture_output=True, text=True)
    return result.returncode == 0


def test_compose_file_is_valid() -> None:
    if _compose_plugin():
        result = subprocess.run(
            ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
            check=False,
            capture_output=True,
            text=True,
            env=dict(os.environ, **ENV),
        )
        assert result.returncode == 0, result.stderr
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = doc["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "sender", "scheduler", "nginx"}
    roles = {name: services[name]["command"] for name in ("web", "sender", "scheduler")}
    for name, command in roles.items():
        assert command[:4] == ["autocircle", "run", "--role", name], command
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in services[name]
        env = services[name]["environment"]
        assert env["AUTOCIRCLE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["AUTOCIRCLE_REDIS_URL"].startswith("redis://")
    assert services["web"]["deploy"]["replicas"] >= 2 and services["scheduler"]["deploy"]["replicas"] >= 2
    assert services["migrate"]["command"] == ["autocircle", "db", "upgrade"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]
    assert (DEPLOY / services["web"]["build"]["dockerfile"].split("/", 1)[1]).exists()


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    result = check(local_config([18081, 18082, 18083], 18999, tmp_path))
    assert result.returncode == 0, result.stderr
    text = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert "proxy_next_upstream" in text and "non_idempotent" in text
    # compose: Docker's DNS, re-resolved while nginx runs, so changed replicas get traffic
    assert "resolver 127.0.0.11" in text and "server web:8080 resolve" in text and "zone autocircle_web" in text


def test_systemd_units_run_the_roles() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    names = {u.name for u in units}
    assert {
        "autocircle-web@.service",
        "autocircle-sender@.service",
        "autocircle-scheduler@.service",
        "autocircle-migrate.service",
    } <= names
    for unit in units:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # reason: configparser documents replacing optionxform (str keeps the keys' case)
        parser.read(unit)
        assert {"Unit", "Service", "Install"} <= set(parser.sections()), unit
        exec_start = parser["Service"]["ExecStart"]
        assert "autocircle" in exec_start
        if unit.name.startswith("autocircle-migrate"):
            assert "db upgrade" in exec_start
            continue
        role = unit.name.split("-")[1].split("@")[0]
        assert f"--role {role}" in exec_start, exec_start
        assert parser["Service"]["Restart"] == "always"
        assert "autocircle-migrate.service" in parser["Unit"]["Requires"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (parse only)")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    autocircle = str(Path(sys.executable).parent / "autocircle")
    instances = {"web": "8081", "sender": "9101", "scheduler": "9111"}
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text(encoding="utf-8").replace("/opt/autocircle/.venv/bin/autocircle", autocircle)
        name = unit.name
        if name.endswith("@.service"):
            name = name.replace("@.service", f"@{instances[name.split('-')[1].split('@')[0]]}.service")
        (tmp_path / name).write_text(text, encoding="utf-8")
        units.append(str(tmp_path / name))
    result = subprocess.run(
        ["systemd-analyze", "verify", *units], check=False, capture_output=True, text=True, timeout=60
    )
    names = [Path(u).name for u in units]
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if any(n in line for n in names)]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr
