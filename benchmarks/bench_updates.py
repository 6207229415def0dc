"""Updates per second: AutoCircle against a bare aiogram bot, on the same sandbox, same run.

    python benchmarks/bench_updates.py                              # 40 users x 5 messages, SQLite
    python benchmarks/bench_updates.py --users 200 --messages 10 --pg-url postgresql://... --json

The local Bot API sandbox runs in this process with its limits off. Each bot runs in a child
process (``--child``), so its CPU time is its own: **bare** is one aiogram handler that answers
every private message with the rendered ``onboarding/help`` text (the reply a stranger's
``/help`` gets) and ignores groups, with the same process settings as AutoCircle's (its
``BotSession``, ``settle_heap``: without them aiogram rebuilds pydantic response models after
garbage collections, which made bare's own figures swing 3x between runs); **autocircle** is the real bot (``build_runtime``: polling,
middlewares, routers, sender, scheduler) on a freshly migrated database.

Workloads (``--users`` people x ``--messages`` messages each):

- ``help``: ``/help`` from strangers;
- ``owner_text``: a verified owner writes plain text in the private chat;
- ``start_token``: ``/start <personal token>`` from a person not yet verified;
- ``circle``: verified owners write in their circle group (no reply; AutoCircle counts them in
  ``bot.circle_lane`` and writes them a moment later: the workload's CPU is read once that
  write is done, so it includes it).

Each is sent as a **burst** (all at once) and, except ``circle``, with at most ``--in-flight``
messages waiting for their reply. A workload is over when the child has finished as many
updates as were sent (an outer middleware counts them after the whole update, commit included).
Measured per workload: updates/s, CPU ms per update (the child's ``process_time``), thread hops
per update (calls to ``loop.run_in_executor``, which ``asyncio.to_thread`` uses) and reply
latency p50/p99.

``sqlite_ratio`` / ``pg_ratio``: AutoCircle's updates/s over bare's, the worst private workload
[target >= 0.5]; ``circle_ratio`` the circle workload [>= 0.7]. ``--json`` prints one line.
Each bot runs ``--rounds`` times (default 3, bare and AutoCircle alternating, a fresh database
each); every figure is the median of its rounds.

Profiling: ``BENCH_UPDATES_PROFILE=/tmp/x.prof`` makes the AutoCircle child record a cProfile
of the timed workloads only (switched on after the warm-up), e.g. one workload at a time:

    BENCH_UPDATES_PROFILE=/tmp/help.prof python benchmarks/bench_updates.py --rounds 1 --workloads help

``three_process_speedup`` (issue 16, item 7; needs ``--pg-url`` and ``--redis-url``, else null):
updates/s of 3 ``autocircle run --role web`` processes behind nginx over ONE behind the same
nginx, same workload (``--scale-users`` strangers x ``--scale-messages`` ``/help``, default
200 x 5, the fastest of ``--scale-rounds`` 2), PostgreSQL + Redis, the sandbox posting webhooks through nginx; with
``cpu_s_by_process`` (each process's CPU seconds in the timed part, from /proc) and ``cores``
to show where the ceiling is (benchmarks/updates_scale.py). ``--scale-only`` skips the rest:

    python benchmarks/bench_updates.py --pg-url $(scripts/pg-start) --redis-url $(scripts/redis-start) --scale-only --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import pg_fresh, seed_partner
from sqlmodel import col

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OPERATOR_ID = 999_000_001
PARTNER_TG = 990_000_001
FIRST_OWNER_TG = 100_000_000
FIRST_PROSPECT_TG = 300_000_000
FIRST_STRANGER_TG = 500_000_000
CIRCLE_CHAT = -1_000_000_777_001
BENCH_PG_DB = "autocircle_bench_updates"
PRIVATE_WORKLOADS = ("help", "owner_text", "start_token")
PROFILE_ENV = "BENCH_UPDATES_PROFILE"  # a .prof file: the child's cProfile stats of the timed part


# --- the child: one bot process -----------------------------------------------------------


class _Counters:
    def __init__(self) -> None:
        self.done = 0
        self.hops = 0


def _count_hops(counters: _Counters) -> None:
    loop = asyncio.get_running_loop()
    original = loop.run_in_executor

    def counting(executor, func, *args):
        counters.hops += 1
        return original(executor, func, *args)

    loop.run_in_executor = counting  # type: ignore[method-assign]  # reason: the benchmark counts calls by replacing the method


def _counting_middleware(counters: _Counters):
    async def middleware(handler, event, data):
        try:
            return await handler(event, data)
        finally:
            counters.done += 1

    return middleware


async def _child(mode: str, url: str, api: str, stats_path: str) -> None:
    from aiogram import Bot, Dispatcher, F
    from aiogram.client.default import DefaultBotProperties
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.enums import ParseMode
    from aiogram.types import Message

    from flows.templating import Renderer

    counters = _Counters()
    _count_hops(counters)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    profiler = _profiler_on_signal(loop)
    closers: list[Any] = []
    if mode == "bare":
        from bot.bot_session import BotSession
        from bot.runtime import settle_heap

        renderer = Renderer(default_locale="en")
        bot = Bot(
            "7000000001:AutoCircleSandboxToken",
            session=BotSession(api=TelegramAPIServer.from_base(api)),
            default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
        )
        dp = Dispatcher()

        @dp.message(F.chat.type == "private")
        async def answer(message: Message) -> None:
            await message.answer(renderer.render("onboarding/help", "en"))

        dp.update.outer_middleware(_counting_middleware(counters))
        polling = asyncio.create_task(
            dp.start_polling(bot, polling_timeout=1, handle_signals=False, close_bot_session=True)
        )
        settle_heap()

        async def close() -> None:
            await dp.stop_polling()
            await polling

        closers.append(close)
    else:
        from bot.app import build_app
        from bot.circle_lane import lane_of
        from bot.config import Settings
        from bot.runtime import build_runtime, settle_heap

        app = build_app(Settings(database_url=url, api_base=api, operator_ids=[OPERATOR_ID], locale="en"))
        runtime = build_runtime(app)
        runtime.dp.update.outer_middleware._middlewares.insert(0, _counting_middleware(counters))
        await runtime.start_polling(polling_timeout=1)
        settle_heap()  # as ``autocircle run`` does once the bot is up

        async def close() -> None:
            await runtime.stop()
            app.close()

        closers.append(close)

    tmp = stats_path + ".tmp"
    lane = lane_of(runtime.dp) if mode != "bare" else None
    while not stop.is_set():
        with open(tmp, "w") as fh:
            pending = lane.pending if lane is not None else 0
            json.dump(
                {"done": counters.done, "hops": counters.hops, "cpu_s": time.process_time(), "pending": pending}, fh
            )
        os.replace(tmp, stats_path)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)
    for close in closers:
        await close()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(os.environ[PROFILE_ENV])


def _profiler_on_signal(loop: asyncio.AbstractEventLoop) -> Any:
    """With ``BENCH_UPDATES_PROFILE`` set, a profiler the parent switches on with SIGUSR1
    once the warm-up is over, so the stats (dumped at exit) cover the timed workloads only: a
    cProfile (``.prof``), or for a file ending in ``.txt`` a sampler (the main thread's stack
    every millisecond; cProfile inflates call-heavy code such as aiogram's routing several
    times over), written as the functions with the most samples, inclusive and exclusive."""
    path = os.environ.get(PROFILE_ENV)
    if not path:
        return None
    if path.endswith(".txt"):
        profiler: Any = _Sampler()
    else:
        import cProfile

        profiler = cProfile.Profile()
    loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
    return profiler


class _Sampler:
    """A statistical profiler: a thread reads the main thread's stack every millisecond."""

    def __init__(self) -> None:
        import collections
        import threading

        self.inclusive: collections.Counter[str] = collections.Counter()
        self.exclusive: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self._main = threading.main_thread().ident
        self._on = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def enable(self) -> None:
        sys.setswitchinterval(0.0005)  # the sampler gets the GIL about as often as it asks
        self._on.set()
        self._thread.start()

    def disable(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            frame = sys._current_frames().get(self._main)
            names: list[str] = []
            while frame is not None:
                code = frame.f_code
                names.append(f"{code.co_filename.replace(str(ROOT) + '/', '')}:{code.co_firstlineno}({code.co_name})")
                frame = frame.f_back
            if not names or "selectors.py" in names[0]:
                continue  # idle: the loop waits for I/O
            self.samples += 1
            self.exclusive[names[0]] += 1
            for name in set(names):
                self.inclusive[name] += 1

    def dump_stats(self, path: str) -> None:
        self._thread.join(timeout=1)
        lines = [f"{self.samples} busy samples (1 ms apart)", "", "inclusive:"]
        lines += [f"{n / self.samples:6.1%} {name}" for name, n in self.inclusive.most_common(80)]
        lines += ["", "exclusive:"]
        lines += [f"{n / self.samples:6.1%} {name}" for name, n in self.exclusive.most_common(60)]
        Path(path).write_text("\n".join(lines) + "\n")


# --- the parent: data, sandbox, workloads ------------------------------------------------


def seed(url: str, users: int) -> dict[str, list]:
    """A partner with a circle, ``users`` verified owners and ``users`` invited prospects."""
    import secrets

    from sqlalchemy import insert, select
    from sqlmodel import Session

    from storage import migrate
    from storage.clock import utcnow
    from storage.db import make_engine
    from storage.models import Circle, InviteToken, Owner, Partner

    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        partner_id = seed_partner(session)
        session.execute(Partner.__table__.update().values(telegram_user_id=PARTNER_TG))
        session.add(Circle(partner_id=partner_id, chat_id=CIRCLE_CHAT, title="Circle"))
        session.execute(
            insert(Owner),
            [
                {
                    "external_id": f"o{i}",
                    "name": f"Owner {i}",
                    "telegram_user_id": FIRST_OWNER_TG + i,
                    "stage": "verified",
                    "locale": "en",
                    "partner_id": partner_id,
                    "advisor_code": "A001",
                    "dealer_code": "D001",
                    "attributes": {},
                }
                for i in range(users)
            ]
            + [
                {
                    "external_id": f"p{i}",
                    "name": f"Prospect {i}",
                    "partner_id": partner_id,
                    "advisor_code": "A001",
                    "dealer_code": "D001",
                    "attributes": {},
                }
                for i in range(users)
            ],
        )
        prospects = (
            session.execute(select(col(Owner.id)).where(col(Owner.external_id).like("p%")).order_by(col(Owner.id)))
            .scalars()
            .all()
        )
        tokens = ["t" + secrets.token_urlsafe(12) for _ in prospects]
        session.execute(
            insert(InviteToken),
            [
                {"token": token, "owner_id": owner_id, "partner_id": partner_id, "created_at": utcnow()}
                for token, owner_id in zip(tokens, prospects, strict=True)
            ],
        )
        session.commit()
    engine.dispose()
    return {"tokens": tokens}


def percentile(values: list[float], pct: float) -> float | None:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] if ordered else None


class Bench:
    def __init__(self, sandbox, users: int, messages: int, tokens: list[str], in_flight: int) -> None:
        self.sb = sandbox
        self.users = users
        self.messages = messages
        self.tokens = tokens
        self.in_flight = in_flight
        self.sent_at: dict[int, list[float]] = {}
        self.latencies: list[float] = []
        add = sandbox.history.add

        def on_add(stored) -> None:
            add(stored)
            if stored.from_bot:
                pending = self.sent_at.get(stored.chat_id)
                if pending:
                    self.latencies.append(time.monotonic() - pending.pop(0))

        sandbox.history.add = on_add  # type: ignore[method-assign]  # reason: the benchmark counts calls by replacing the method

    def message_for(self, workload: str, i: int, round_: int) -> tuple[int, int, str]:
        if workload == "help":
            tg = FIRST_STRANGER_TG + i
            return tg, tg, "/help"
        if workload == "owner_text":
            tg = FIRST_OWNER_TG + i
            return tg, tg, f"Hello, a question about my car ({round_})"
        if workload == "start_token":
            tg = FIRST_PROSPECT_TG + i
            return tg, tg, f"/start {self.tokens[i]}"
        tg = FIRST_OWNER_TG + i
        return tg, CIRCLE_CHAT, f"Good morning, circle ({round_})"

    async def send(self, workload: str, i: int, round_: int) -> None:
        user, chat, text = self.message_for(workload, i, round_)
        if chat > 0:
            self.sent_at.setdefault(chat, []).append(time.monotonic())
        await self.sb.send_text(user, chat, text)


def _read_stats(path: Path) -> dict[str, float]:
    for _ in range(50):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.005)
    raise RuntimeError("the bot's stats file is unreadable")


async def _wait_done(stats: Path, target: int, child, timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        current = _read_stats(stats) if stats.exists() else {"done": 0}
        if current["done"] >= target:
            return current
        if child.returncode is not None:
            raise RuntimeError("the bot exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {current['done']} of {target} updates")
        await asyncio.sleep(0.005)


async def _wait_written(stats: Path, child, timeout: float) -> dict[str, float]:
    """The stats once the circle lane has written everything it took (bare has no lane)."""
    deadline = time.monotonic() + timeout
    while True:
        current = _read_stats(stats)
        if not current.get("pending"):
            return current
        if child.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the circle lane still holds {current['pending']} messages")
        await asyncio.sleep(0.01)


async def run_bot(mode: str, url: str, args: argparse.Namespace, tokens: list[str]) -> dict[str, Any]:
    from sandbox import Sandbox, SandboxConfig

    async with Sandbox(SandboxConfig(enforce_limits=False)) as sb:
        for tg in (OPERATOR_ID, PARTNER_TG):
            await sb.add_user(tg, first_name="Staff")
        await sb.add_group("Circle", chat_id=CIRCLE_CHAT, creator_id=PARTNER_TG)
        await sb.add_bot_to_group(CIRCLE_CHAT, "administrator")
        for i in range(args.users):
            for base in (FIRST_OWNER_TG, FIRST_PROSPECT_TG, FIRST_STRANGER_TG):
                await sb.add_user(base + i, first_name=f"U{base + i}")
            await sb.add_member(CIRCLE_CHAT, FIRST_OWNER_TG + i)
        bench = Bench(sb, args.users, args.messages, tokens, args.in_flight)
        stats = Path(tempfile.mkdtemp(prefix="bench_updates_")) / "stats.json"
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child",
            mode,
            "--child-url",
            url,
            "--child-api",
            sb.base_url,
            "--child-stats",
            str(stats),
            cwd=str(ROOT),
            env=dict(os.environ, PYTHONUNBUFFERED="1", AUTOCIRCLE_DELIVERY__QUIET_HOURS="off"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=None if args.verbose else asyncio.subprocess.DEVNULL,
        )
        results: dict[str, Any] = {}
        try:
            deadline = time.monotonic() + 60
            while not stats.exists():
                if child.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the bot did not start")
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)  # the scene's own updates (the bot joining the group) first
            base = _read_stats(stats)
            done = base["done"]
            chosen = args.workloads.split(",")
            workloads = [(w, "burst") for w in (*PRIVATE_WORKLOADS, "circle") if w in chosen]
            workloads += [(w, "flight") for w in PRIVATE_WORKLOADS if w in chosen]
            # warm-up: one message of each kind (aiogram builds its pydantic models lazily)
            for workload, _shape in workloads:
                await bench.send(workload, 0, -1)
                done += 1
            await _wait_done(stats, done, child, args.timeout)
            if os.environ.get(PROFILE_ENV) and mode == "autocircle":
                child.send_signal(signal.SIGUSR1)
                await asyncio.sleep(0.1)
            for workload, shape in workloads:
                bench.latencies.clear()
                bench.sent_at.clear()
                total = args.users * args.messages
                before = _read_stats(stats)
                started = time.monotonic()
                if shape == "burst":
                    for round_ in range(args.messages):
                        await asyncio.gather(*(bench.send(workload, i, round_) for i in range(args.users)))
                else:
                    queue = [(i, r) for r in range(args.messages) for i in range(args.users)]

                    async def worker(jobs: list[tuple[int, int]]) -> None:
                        for i, r in jobs:
                            chat = bench.message_for(workload, i, r)[1]
                            seen = len(sb.bot_messages(chat))
                            await bench.send(workload, i, r)
                            deadline = time.monotonic() + 30
                            while len(sb.bot_messages(chat)) <= seen and time.monotonic() < deadline:
                                await asyncio.sleep(0.001)

                    # one person's messages stay in order: jobs are split by user
                    lanes: list[list[tuple[int, int]]] = [[] for _ in range(args.in_flight)]
                    for i, r in queue:
                        lanes[i % args.in_flight].append((i, r))
                    await asyncio.gather(*(worker(lane) for lane in lanes))
                after = await _wait_done(stats, done + total, child, args.timeout)
                elapsed = time.monotonic() - started
                # circle chatter the lane counted is written a moment later: its CPU counts too
                after = await _wait_written(stats, child, args.timeout)
                done = after["done"]
                results[f"{workload}_{shape}"] = {
                    "updates_per_s": round(total / elapsed, 1),
                    "cpu_ms_per_update": round((after["cpu_s"] - before["cpu_s"]) * 1000 / total, 2),
                    "hops_per_update": round((after["hops"] - before["hops"]) / total, 2),
                    "reply_p50_ms": _ms(percentile(bench.latencies, 50)),
                    "reply_p99_ms": _ms(percentile(bench.latencies, 99)),
                }
                await asyncio.sleep(0.3)  # the sender's and the scheduler's wake-ups settle
        finally:
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(child.wait(), 30)
                except TimeoutError:
                    child.kill()
    return results


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


async def run_database(label: str, url_for_run, args: argparse.Namespace) -> dict[str, Any]:
    """Bare then AutoCircle, ``--rounds`` times (alternating, so a noisy minute hits both);
    each figure is the median of the rounds, per workload."""
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "autocircle": []}
    for _ in range(args.rounds):
        for mode in ("bare", "autocircle"):
            url = url_for_run()
            tokens = (
                (await asyncio.to_thread(seed, url, args.users))["tokens"]
                if mode == "autocircle"
                else ["tbare"] * args.users
            )
            runs[mode].append(await run_bot(mode, url, args, tokens))
    out: dict[str, Any] = {mode: _median_runs(results) for mode, results in runs.items()}
    ratios = {
        key: round(out["autocircle"][key]["updates_per_s"] / out["bare"][key]["updates_per_s"], 3)
        for key in out["autocircle"]
    }
    out["ratios"] = ratios
    return out


def _median_runs(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per workload and figure, the median over the rounds (None where a round has none)."""
    merged: dict[str, Any] = {}
    for key in results[0]:
        merged[key] = {}
        for figure in results[0][key]:
            values = [r[key][figure] for r in results if r[key][figure] is not None]
            merged[key][figure] = round(statistics.median(values), 2) if values else None
    return merged


def _pg_fresh(server_url: str):
    """A function giving a fresh database ``autocircle_bench_updates`` on the server of
    ``server_url`` (dropped and created again each time; nothing else on the server is touched)."""

    def fresh() -> str:
        return pg_fresh(server_url, BENCH_PG_DB)

    return fresh


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench_updates_"))
    counter = iter(range(1_000))
    result: dict[str, Any] = {
        "users": args.users,
        "messages": args.messages,
        "in_flight": args.in_flight,
        "rounds": args.rounds,
    }
    dbs = [] if args.scale_only else [("sqlite", lambda: f"sqlite:///{tmp / f'bench{next(counter)}.db'}")]
    if args.pg_url and not args.scale_only:
        dbs.append(("pg", _pg_fresh(args.pg_url)))
    worst_cpu, worst_p99 = 0.0, 0.0
    for label, url_for_run in dbs:
        measured = await run_database(label, url_for_run, args)
        result[label] = measured
        private = [v for k, v in measured["ratios"].items() if not k.startswith("circle")]
        result[f"{label}_ratio"] = min(private) if private else None
        circle = measured["ratios"].get("circle_burst")
        result["circle_ratio" if label == "sqlite" else "pg_circle_ratio"] = circle
        for item in measured["autocircle"].values():
            worst_cpu = max(worst_cpu, item["cpu_ms_per_update"])
            worst_p99 = max(worst_p99, item["reply_p99_ms"] or 0.0)
    result.setdefault("sqlite_ratio", None)
    result.setdefault("pg_ratio", None)
    result["cpu_ms_per_update"] = worst_cpu
    result["reply_p99_ms"] = worst_p99
    result["three_process_speedup"] = None
    if args.pg_url and args.redis_url and Path("/usr/sbin/nginx").exists() and not args.no_scale:
        from updates_scale import bench_redis_url, three_process_speedup

        result.update(
            await three_process_speedup(
                _pg_fresh(args.pg_url),
                bench_redis_url(args.redis_url),
                args.scale_users,
                args.scale_messages,
                args.timeout,
                args.verbose,
                args.scale_rounds,
            )
        )
    else:
        result["three_process_speedup_note"] = "needs --pg-url, --redis-url and /usr/sbin/nginx"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=10)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("AUTOCIRCLE_BENCH_PG_URL"),
        help="a PostgreSQL server URL; the benchmark makes its own database there",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("AUTOCIRCLE_BENCH_REDIS_URL"),
        help="a Redis server URL (scripts/redis-start); the scale part uses its database 11",
    )
    parser.add_argument("--scale-users", type=int, default=200)
    parser.add_argument("--scale-messages", type=int, default=5)
    parser.add_argument("--scale-rounds", type=int, default=2, help="rounds per topology; the fastest counts")
    parser.add_argument("--scale-only", action="store_true", help="only three_process_speedup")
    parser.add_argument("--no-scale", action="store_true", help="skip three_process_speedup")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--workloads", default="help,owner_text,start_token,circle")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each bot per database; every figure is their median"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="show the bots' logs")
    parser.add_argument("--child", choices=("bare", "autocircle"), help=argparse.SUPPRESS)
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-api", help=argparse.SUPPRESS)
    parser.add_argument("--child-stats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "bare":
            os.environ.pop(PROFILE_ENV, None)
        asyncio.run(_child(args.child, args.child_url, args.child_api, args.child_stats))
        return
    # SIGTERM unwinds like Ctrl-C, so every ``finally`` stops the processes this run started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    for label in ("sqlite", "pg"):
        if label not in result:
            continue
        print(f"== {label}: AutoCircle vs bare aiogram ({args.users} users x {args.messages} messages)")
        for key, ac in result[label]["autocircle"].items():
            bare = result[label]["bare"][key]
            print(
                f"{key:<20} {ac['updates_per_s']:>8.1f}/s vs {bare['updates_per_s']:>8.1f}/s  "
                f"ratio {result[label]['ratios'][key]:.2f}  cpu {ac['cpu_ms_per_update']:.2f} vs "
                f"{bare['cpu_ms_per_update']:.2f} ms  hops {ac['hops_per_update']:.1f} vs {bare['hops_per_update']:.1f}  "
                f"p99 {ac['reply_p99_ms']} ms"
            )
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))


if __name__ == "__main__":
    main()
