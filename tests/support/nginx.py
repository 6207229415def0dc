"""deploy/nginx.conf made runnable on this machine: the upstream is the local web processes'
ports, the listen port is free, paths are in a scratch directory (no root, no containers). The
multi-process test runs this config, so the deploy recipe is what the test proves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_NGINX = ROOT / "deploy" / "nginx.conf"
NGINX = "/usr/sbin/nginx"


def local_config(web_ports: list[int], listen_port: int, prefix: Path) -> Path:
    text = DEPLOY_NGINX.read_text(encoding="utf-8")
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in web_ports)
    text, n = re.subn(r"^\s*server web:8080[^\n]*$", servers, text, flags=re.MULTILINE)
    assert n == 1, "deploy/nginx.conf: the upstream line 'server web:8080 ...' moved"
    text, n = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen_port};", text)
    assert n == 1
    prefix.mkdir(parents=True, exist_ok=True)
    text = text.replace("http {", f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n\nhttp {{", 1)
    path = prefix / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    return path


def nginx_command(config: Path, *extra: str) -> list[str]:
    return [NGINX, "-e", str(config.parent / "error.log"), "-p", str(config.parent), "-c", str(config), *extra]


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nginx_command(config, "-t"), check=False, capture_output=True, text=True, timeout=30)
