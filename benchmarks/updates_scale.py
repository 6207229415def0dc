"""``three_process_speedup`` for bench_updates.py (issue 16, item 7): 3 web processes over 1.

The same workload (``users`` strangers each sending ``messages`` ``/help``, all queued at once)
runs twice on the deploy topology of tests/scale/test_multiprocess.py: nginx (Debian's, with
deploy/nginx.conf made local by tests/support/nginx.py) in front of ``autocircle run --role web
--webhook ...`` processes, on PostgreSQL (a fresh database each run) and Redis (its own
database, flushed each run: update dedupe, chat lock). First with ONE web process behind nginx,
then with THREE. The sandbox (served in this process with its limits off, as in the rest of
bench_updates; ``autocircle sandbox`` has no switch for that) posts the webhooks through nginx
over up to 40 connections at once, each chat's updates in order, as Telegram does.

updates/s = updates sent / seconds until every reply arrived. CPU seconds of every process are
read from /proc (utime+stime, children included) before and after the timed part, per process
group (nginx's master and worker together), plus PostgreSQL's and Redis's server processes and
the whole machine (``machine_busy``, from /proc/stat: other jobs on the machine count there).
Where the ceiling is: the sum over processes divided by the elapsed time is the cores used.

Every process it starts is in its own session and is stopped by its process group (SIGTERM,
then SIGKILL) in ``finally``: no nginx or web process outlives the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AUTOCIRCLE = str(Path(sys.executable).parent / "autocircle")
FIRST_USER_TG = 700_000_000
FIRST_WARM_TG = 790_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- CPU from /proc ----------------------------------------------------------------------


def _proc_stats() -> list[tuple[int, int, str, float]]:
    """(pid, process group, command, CPU seconds incl. reaped children) of every process."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        # fields after the command: state ppid pgrp ... utime(14) stime(15) cutime(16) cstime(17)
        ticks = sum(int(rest[i]) for i in (11, 12, 13, 14))
        out.append((int(entry.name), int(rest[2]), comm, ticks / CLK_TCK))
    return out


def _machine_busy_s() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / CLK_TCK


def cpu_snapshot(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process group, PostgreSQL, Redis, this process and the
    machine."""
    stats = _proc_stats()
    snap = {name: sum(s for _, pgrp, _, s in stats if pgrp == pgid) for name, pgid in groups.items()}
    snap["postgres"] = sum(s for _, _, comm, s in stats if comm == "postgres")
    snap["redis"] = sum(s for _, _, comm, s in stats if comm.startswith("redis-server"))
    snap["sandbox_and_driver"] = next((s for pid, _, _, s in stats if pid == os.getpid()), 0.0)
    snap["machine_busy"] = _machine_busy_s()
    return snap


# --- one topology --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """(In the child, before exec.) SIGKILL when the benchmark dies, even by SIGKILL."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stop_groups(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM every process group, wait, then SIGKILL what is left (nginx workers included)."""
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group: stragglers and children too
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def _percentile(values: list[float], pct: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] * 1000, 1) if ordered else None


def _figures(
    web_count: int,
    total: int,
    elapsed: float,
    latencies: list[float],
    before: dict[str, float],
    after: dict[str, float],
) -> dict[str, Any]:
    cpu = {name: round(after[name] - before[name], 2) for name in after}
    measured = {k: v for k, v in cpu.items() if k != "machine_busy"}
    web_cpu = sum(v for k, v in cpu.items() if k.startswith("web"))
    return {
        "web_processes": web_count,
        "updates": total,
        "elapsed_s": round(elapsed, 2),
        "updates_per_s": round(total / elapsed, 1),
        "reply_p50_ms": _percentile(latencies, 50),
        "reply_p99_ms": _percentile(latencies, 99),
        "web_cpu_ms_per_update": round(web_cpu * 1000 / total, 2),
        "cpu_s_by_process": cpu,
        "cores_used": {
            "measured_processes": round(sum(measured.values()) / elapsed, 2),
            "web": round(web_cpu / elapsed, 2),
            "machine_busy": round(cpu["machine_busy"] / elapsed, 2),
        },
    }


async def run_topology(
    web_count: int,
    db_url: str,
    redis_url: str,
    users: int,
    messages: int,
    timeout: float,
    verbose: bool = False,
    rounds: int = 2,
) -> dict[str, Any]:
    """nginx + ``web_count`` web processes + the sandbox; the workload ``rounds`` times; the
    figures and CPU of the fastest round (the machine is shared: the slower rounds are the ones
    other jobs took cores from)."""
    import aiohttp

    from sandbox import Sandbox, SandboxConfig
    from tests.support.nginx import local_config, nginx_command

    tmp = Path(tempfile.mkdtemp(prefix=f"bench_scale{web_count}_"))
    sb = Sandbox(SandboxConfig(enforce_limits=False))
    await sb.start("127.0.0.1", 0)
    replies: dict[int, int] = {}
    sent_at: dict[int, list[float]] = {}
    latencies: list[float] = []
    add = sb.history.add

    def on_add(stored) -> None:
        add(stored)
        if stored.from_bot:
            replies[stored.chat_id] = replies.get(stored.chat_id, 0) + 1
            pending = sent_at.get(stored.chat_id)
            if pending:
                latencies.append(time.monotonic() - pending.pop(0))

    sb.history.add = on_add  # type: ignore[method-assign]  # reason: the benchmark counts calls by replacing the method
    procs: dict[str, subprocess.Popen] = {}
    logs: list[Any] = []
    nginx_port = _free_port()
    web_ports = [_free_port() for _ in range(web_count)]
    env = dict(
        os.environ,
        AUTOCIRCLE_DATABASE_URL=db_url,
        AUTOCIRCLE_REDIS_URL=redis_url,
        AUTOCIRCLE_API_BASE=sb.base_url,
        AUTOCIRCLE_WEBHOOK_SECRET=secrets.token_urlsafe(24),
        AUTOCIRCLE_LOCALE="en",
        AUTOCIRCLE_DELIVERY__QUIET_HOURS="off",
        # the sandbox's limits are off: measure the processes, not Telegram's rate (with shared
        # limits the replies would take their turn at AUTOCIRCLE_DELIVERY__RATE_PER_S)
        AUTOCIRCLE_SCALE__SHARE_LIMITS="false",
        PYTHONUNBUFFERED="1",
    )

    def start(name: str, cmd: list[str]) -> None:
        log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - closed in finally
        logs.append(log)
        procs[name] = subprocess.Popen(
            cmd,
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def tails() -> str:
        return "\n".join(
            f"--- {name}\n" + "\n".join((tmp / f"{name}.log").read_text(errors="replace").splitlines()[-10:])
            for name in procs
        )

    try:
        for i in range(users):
            await sb.add_user(FIRST_USER_TG + i, first_name=f"U{i}")
        for i in range(3 * web_count):
            await sb.add_user(FIRST_WARM_TG + i, first_name=f"W{i}")
        start("nginx", nginx_command(local_config(web_ports, nginx_port, tmp / "nginx"), "-g", "daemon off;"))
        for i, port in enumerate(web_ports):
            start(
                f"web{i}",
                [
                    AUTOCIRCLE,
                    "run",
                    "--role",
                    "web",
                    "--listen",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webhook",
                    f"http://127.0.0.1:{nginx_port}",
                ],
            )
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 120
            while True:
                if any(p.poll() is not None for p in procs.values()):
                    raise RuntimeError(f"a process exited while starting\n{tails()}")
                ready = []
                for port in web_ports:
                    try:
                        async with http.get(
                            f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(total=5)
                        ) as resp:
                            ready.append(resp.status == 200)
                    except (aiohttp.ClientError, TimeoutError):
                        ready.append(False)
                if all(ready) and sb.world.webhook.url:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not ready: {ready}\n{tails()}")
                await asyncio.sleep(0.3)

        async def wait_replies(target: int, chats: range) -> None:
            deadline = time.monotonic() + timeout
            while sum(replies.get(c, 0) for c in chats) < target:
                if time.monotonic() > deadline:
                    got = sum(replies.get(c, 0) for c in chats)
                    raise RuntimeError(f"timed out: {got} of {target} replies\n{tails()}")
                if any(p.poll() is not None for p in procs.values()):
                    raise RuntimeError(f"a process exited\n{tails()}")
                await asyncio.sleep(0.01)

        # warm-up: a few /help per process (aiogram builds its models lazily, pools fill)
        warm = range(FIRST_WARM_TG, FIRST_WARM_TG + 3 * web_count)
        for tg in warm:
            await sb.send_text(tg, tg, "/help")
        await wait_replies(len(warm), warm)
        await asyncio.sleep(0.5)

        groups = {name: proc.pid for name, proc in procs.items()}
        idle_before, idle_started = cpu_snapshot(groups), time.monotonic()
        await asyncio.sleep(2.0)  # what the processes burn with nothing to do
        idle_after, idle_s = cpu_snapshot(groups), time.monotonic() - idle_started
        idle = {name: round((idle_after[name] - idle_before[name]) / idle_s, 3) for name in groups}
        chats = range(FIRST_USER_TG, FIRST_USER_TG + users)
        total = users * messages
        measured_rounds = []
        for round_ in range(rounds):
            latencies.clear()
            before = cpu_snapshot(groups)
            started = time.monotonic()
            for _message in range(messages):
                for tg in chats:
                    sent_at.setdefault(tg, []).append(time.monotonic())
                    await sb.send_text(tg, tg, "/help")
            await wait_replies(total * (round_ + 1), chats)
            elapsed = time.monotonic() - started
            after = cpu_snapshot(groups)
            measured_rounds.append(_figures(web_count, total, elapsed, latencies, before, after))
            await asyncio.sleep(0.3)
        best = max(measured_rounds, key=lambda r: r["updates_per_s"])
        best["rounds_updates_per_s"] = [r["updates_per_s"] for r in measured_rounds]
        best["idle_cores_by_process"] = idle
        return best
    finally:
        try:
            _stop_groups(procs)
        finally:
            for log in logs:
                log.close()
            await sb.stop()
            if verbose:
                print(tails(), file=sys.stderr)


async def three_process_speedup(
    pg_fresh: Callable[[], str],
    redis_url: str,
    users: int,
    messages: int,
    timeout: float,
    verbose: bool = False,
    rounds: int = 2,
) -> dict[str, Any]:
    """One web process, then three, same workload; each on a fresh database and flushed Redis."""
    import redis.asyncio as aioredis

    from storage import migrate

    runs: dict[str, dict[str, Any]] = {}
    for label, count in (("one", 1), ("three", 3)):
        url = await asyncio.to_thread(pg_fresh)
        await asyncio.to_thread(migrate.upgrade, url)
        client = aioredis.Redis.from_url(redis_url)
        await client.flushdb()  # update ids start again at 1 in a new sandbox: no stale dedupe keys
        await client.aclose()
        runs[label] = await run_topology(count, url, redis_url, users, messages, timeout, verbose, rounds)
    return {
        "three_process_speedup": round(runs["three"]["updates_per_s"] / runs["one"]["updates_per_s"], 2),
        "cpu_s_by_process": {label: run.pop("cpu_s_by_process") for label, run in runs.items()},
        "cores": os.cpu_count(),
        "scale": {"users": users, "messages": messages, "rounds": rounds, **runs},
    }


def bench_redis_url(url: str, db: int = 11) -> str:
    """The benchmark's own Redis database on the server of ``url`` (it is flushed each run)."""
    return url.rsplit("/", 1)[0] + f"/{db}" if url.count("/") >= 3 else url.rstrip("/") + f"/{db}"
