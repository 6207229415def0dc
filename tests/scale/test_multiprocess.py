"""The proof of issue 16 (item 6): the deploy topology without containers, on real engines.

nginx (Debian's, with deploy/nginx.conf made local) in front of 3 ``autocircle run --role web``
processes, 2 ``--role sender``, 2 ``--role scheduler`` candidates, PostgreSQL and Redis, and
the sandbox (``autocircle sandbox``) delivering webhooks through nginx. Owners onboard
concurrently (personal link, then the VIN's last six) while a broadcast drains; mid-run one web
process and the scheduler leader are killed with SIGKILL. Afterwards:

* every owner is verified and got each reply once; the one exception allowed is the
  documented in-flight window of the killed web process: an update it had replied to but not
  committed is handled again elsewhere, so the duplicate replies are at most the updates web0
  had in flight when it was killed (its ``autocircle_updates_in_flight``, read just before);
* every push was sent exactly once (the senders were not killed; a killed sender's window is
  ``AUTOCIRCLE_DELIVERY__WINDOW`` per sender, tested in tests/e2e);
* the sandbox, enforcing Telegram's limits (30/s overall, 1/s per private chat), never answered
  429 to anybody, replies or pushes; no second carried more than the shared rate plus its burst
  (every message of the bot), nor more pushes than the senders' share plus its burst;
* exactly one scheduler leader at any time, and the failover time (printed) within the bound.

Sizes: ``AUTOCIRCLE_SCALE_OWNERS`` (default 300, the issue's) and ``AUTOCIRCLE_SCALE_BROADCAST``
(default 2,000, about 3 minutes on this 2-core machine; the issue's 20,000 about 20 minutes: the
broadcast drains at the senders' 20/s, the shared 25/s less the replies' share).
Run: ``scripts/test -m scale`` (or, to see the figures,
``AUTOCIRCLE_TEST_PG_URL=$(scripts/pg-start) AUTOCIRCLE_TEST_REDIS_URL=$(scripts/redis-start)
.venv/bin/python -m pytest -m scale tests/scale -s``; prefix ``AUTOCIRCLE_SCALE_BROADCAST=20000``
for the issue's size).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from tests.support.nginx import NGINX, local_config, nginx_command

pytestmark = pytest.mark.scale

ROOT = Path(__file__).resolve().parents[2]
AUTOCIRCLE = str(Path(sys.executable).parent / "autocircle")
OWNERS = int(os.environ.get("AUTOCIRCLE_SCALE_OWNERS", "300"))
BROADCAST = int(os.environ.get("AUTOCIRCLE_SCALE_BROADCAST", "2000"))
RATE = float(os.environ.get("AUTOCIRCLE_SCALE_RATE", "25"))  # the shared rate; the sandbox allows 30/s
REPLY_SHARE = 0.2  # the senders leave this share of RATE to the replies (AUTOCIRCLE_SCALE__REPLY_SHARE)
BURST_S = 0.2  # the shared bucket holds this many seconds of RATE (AUTOCIRCLE_DELIVERY__BURST_S)
TAKEOVER_S = 6.0  # the leader bound for this run (the default is 30 s)
FIRST_OWNER_TG = 5_000_000
FIRST_AUDIENCE_TG = 6_000_000
BROADCAST_TEXT = "Spring service week"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pg_url() -> Iterator[str]:
    admin_url = os.environ.get("AUTOCIRCLE_TEST_PG_URL")
    redis_url = os.environ.get("AUTOCIRCLE_TEST_REDIS_URL")
    if not admin_url or not redis_url:
        pytest.fail(
            "the scale test needs AUTOCIRCLE_TEST_PG_URL and AUTOCIRCLE_TEST_REDIS_URL (scripts/test sets them)"
        )
    if not Path(NGINX).exists():
        pytest.fail("the scale test needs nginx (apt-get install nginx)")
    from tests.support.scratch_db import scratch_database

    with scratch_database(admin_url, "ac_scale") as url:
        yield url


def _seed(url: str) -> dict[int, str]:
    """Onboarding owners (VIN, personal link) and the broadcast audience with one push each."""
    from datetime import date

    from sqlalchemy import insert

    from flows.delivery.delivery_rules import NO_QUIET_HOURS, DeliveryPolicy
    from flows.delivery.outbox import Push, enqueue_many
    from storage.clock import utcnow
    from storage.db import make_engine
    from storage.models import InviteToken, MessageClass, Owner, Vehicle

    engine = make_engine(url)
    tokens: dict[int, str] = {}
    with Session(engine) as session:
        for i in range(OWNERS):
            owner = Owner(external_id=f"S{i}", name=f"Owner {i}", dealer_code="D001", product_line="passenger")
            session.add(owner)
            session.flush()
            session.add(
                Vehicle(owner_id=owner.id, vin=f"LSVAB2BJ7MN{i:06d}", model="Model X", purchase_date=date(2024, 1, 15))
            )
            token = "t" + secrets.token_urlsafe(12)
            session.add(InviteToken(token=token, owner_id=owner.id, created_at=utcnow()))
            tokens[i] = token
        session.execute(
            insert(Owner),
            [
                {
                    "name": f"Audience {i}",
                    "telegram_user_id": FIRST_AUDIENCE_TG + i,
                    "attributes": {},
                    "stage": "verified",
                    "locale": "en",
                }
                for i in range(BROADCAST)
            ],
        )
        session.commit()
        enqueue_many(
            session,
            [
                Push(
                    dedupe_key=f"broadcast:{i}",
                    chat_id=FIRST_AUDIENCE_TG + i,
                    text=f"{BROADCAST_TEXT} #{i}",
                    message_class=MessageClass.transactional,
                )
                for i in range(BROADCAST)
            ],
            DeliveryPolicy(quiet_hours=NO_QUIET_HOURS),
        )
        session.commit()
    engine.dispose()
    return tokens


class Topology:
    """The processes of one run, their logs and ports."""

    def __init__(self, tmp: Path, pg_url: str) -> None:
        self.tmp = tmp
        self.sandbox_port = _free_port()
        self.nginx_port = _free_port()
        self.web_ports = [_free_port() for _ in range(3)]
        self.sender_ports = [_free_port() for _ in range(2)]
        self.scheduler_ports = [_free_port() for _ in range(2)]
        redis = os.environ["AUTOCIRCLE_TEST_REDIS_URL"].rsplit("/", 1)[0] + "/6"
        self.redis_url = redis
        self.env = dict(
            os.environ,
            AUTOCIRCLE_DATABASE_URL=pg_url,
            AUTOCIRCLE_REDIS_URL=redis,
            AUTOCIRCLE_API_BASE=f"http://127.0.0.1:{self.sandbox_port}",
            AUTOCIRCLE_WEBHOOK_SECRET=secrets.token_urlsafe(24),
            AUTOCIRCLE_LOCALE="en",
            AUTOCIRCLE_DELIVERY__QUIET_HOURS="off",
            AUTOCIRCLE_DELIVERY__RATE_PER_S=str(RATE),
            AUTOCIRCLE_DELIVERY__BATCH_SIZE="20",
            AUTOCIRCLE_DELIVERY__WINDOW="40",
            AUTOCIRCLE_SCALE__LEADER_TAKEOVER_S=str(TAKEOVER_S),
            AUTOCIRCLE_SCALE__CHAT_LOCK_S="10",
            AUTOCIRCLE_SCALE__REPLY_SHARE=str(REPLY_SHARE),
            AUTOCIRCLE_DELIVERY__BURST_S=str(BURST_S),
            PYTHONUNBUFFERED="1",
        )
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], **env: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            args,
            cwd=self.tmp,
            env=dict(self.env, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_sandbox(self) -> None:
        self.start("sandbox", [AUTOCIRCLE, "sandbox", "--port", str(self.sandbox_port)])

    def start_all(self) -> None:
        config = local_config(self.web_ports, self.nginx_port, self.tmp / "nginx")
        self.start("nginx", nginx_command(config, "-g", "daemon off;"))
        hook = f"http://127.0.0.1:{self.nginx_port}"
        for i, port in enumerate(self.web_ports):
            self.start(
                f"web{i}",
                [AUTOCIRCLE, "run", "--role", "web", "--listen", "127.0.0.1", "--port", str(port), "--webhook", hook],
            )
        for i, port in enumerate(self.sender_ports):
            self.start(
                f"sender{i}",
                [AUTOCIRCLE, "run", "--role", "sender"],
                AUTOCIRCLE_SCALE__OPS_HOST="127.0.0.1",
                AUTOCIRCLE_SCALE__OPS_PORT=str(port),
            )
        for i, port in enumerate(self.scheduler_ports):
            self.start(
                f"scheduler{i}",
                [AUTOCIRCLE, "run", "--role", "scheduler"],
                AUTOCIRCLE_SCALE__OPS_HOST="127.0.0.1",
                AUTOCIRCLE_SCALE__OPS_PORT=str(port),
            )

    def kill9(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def stop_all(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(10)
        return codes

    def tails(self) -> str:
        out = []
        for name in self.procs:
            lines = (self.tmp / f"{name}.log").read_text(errors="replace").splitlines()
            out.append(f"--- {name}\n" + "\n".join(lines[-15:]))
        return "\n".join(out)


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            return resp.status, await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0, ""


async def _control(http: aiohttp.ClientSession, base: str, action: str, **kwargs):
    total = float(kwargs.get("timeout", 0)) + 60  # a wait action's own timeout, plus the HTTP call
    async with http.post(f"{base}/control/{action}", json=kwargs, timeout=aiohttp.ClientTimeout(total=total)) as resp:
        body = await resp.json()
    assert body.get("ok"), (action, kwargs, body)
    return body["result"]


def _metric(body: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_several_processes_nothing_lost_or_doubled(pg_url: str, tmp_path: Path) -> None:
    wall = time.monotonic()
    tokens = await asyncio.to_thread(_seed, pg_url)
    import redis.asyncio as aioredis

    topo = Topology(tmp_path, pg_url)
    client = aioredis.Redis.from_url(topo.redis_url)
    await client.flushdb()
    await client.aclose()
    sb = f"http://127.0.0.1:{topo.sandbox_port}"
    figures: dict[str, object] = {"owners": OWNERS, "broadcast": BROADCAST, "rate": RATE}
    topo.start_sandbox()
    http = aiohttp.ClientSession()
    try:
        deadline = time.monotonic() + 60
        while (await _get(http, sb + "/"))[0] != 200:
            assert time.monotonic() < deadline and topo.procs["sandbox"].poll() is None, topo.tails()
            await asyncio.sleep(0.3)
        # the audience has opened the bot before (it may write to them)
        await _control(http, sb, "add_users", first_id=FIRST_AUDIENCE_TG, count=BROADCAST, first_name="A")
        topo.start_all()
        # --- everybody up ---------------------------------------------------------------
        deadline = time.monotonic() + 180
        while True:
            assert all(p.poll() is None for p in topo.procs.values()), topo.tails()
            web_ok = [(await _get(http, f"http://127.0.0.1:{p}/readyz"))[0] == 200 for p in topo.web_ports]
            ops_ok = [
                (await _get(http, f"http://127.0.0.1:{p}/readyz"))[0] == 200
                for p in topo.sender_ports + topo.scheduler_ports
            ]
            if all(web_ok) and all(ops_ok):
                break
            assert time.monotonic() < deadline, f"not ready: web {web_ok} ops {ops_ok}\n{topo.tails()}"
            await asyncio.sleep(0.5)
        assert (await _get(http, f"http://127.0.0.1:{topo.nginx_port}/readyz"))[0] == 200  # through nginx

        # --- the leader watch: exactly one at any time -----------------------------------
        leaders_seen: list[tuple[float, list[bool]]] = []

        async def leaders() -> list[bool]:
            flags = []
            for port in topo.scheduler_ports:
                status, body = await _get(http, f"http://127.0.0.1:{port}/metrics")
                flags.append(status == 200 and _metric(body, "autocircle_scheduler_leader") == 1.0)
            return flags

        stop_watch = asyncio.Event()

        async def watch() -> None:
            while not stop_watch.is_set():
                leaders_seen.append((time.monotonic(), await leaders()))
                await asyncio.sleep(0.1)

        deadline = time.monotonic() + TAKEOVER_S * 2
        while sum(await leaders()) != 1:
            assert time.monotonic() < deadline, "no scheduler leader"
            await asyncio.sleep(0.2)
        watcher = asyncio.create_task(watch())

        # --- owners onboard while the broadcast drains; kills mid-run ----------------------
        verified: list[int] = []
        started = time.monotonic()

        async def onboard(i: int) -> None:
            user = FIRST_OWNER_TG + i
            await _control(http, sb, "add_user", user_id=user, first_name=f"O{i}")
            await _control(http, sb, "send_text", user_id=user, chat_id=user, text=f"/start {tokens[i]}")
            await _control(http, sb, "wait_for_bot_message", timeout=90, chat_id=user, contains="verify")
            await _control(http, sb, "send_text", user_id=user, chat_id=user, text=f"{i:06d}")
            await _control(http, sb, "wait_for_bot_message", timeout=90, chat_id=user, contains="Verified")
            verified.append(i)

        async def killer() -> None:
            while len(verified) < max(1, OWNERS // 3):
                await asyncio.sleep(0.05)
            flags = await leaders()
            leader = f"scheduler{flags.index(True)}"
            standby_port = topo.scheduler_ports[1 - flags.index(True)]
            # web0's own updates in flight, read right before the kill: each may be answered
            # twice (replied, not committed, handled again elsewhere), no other update may
            status, body = await _get(http, f"http://127.0.0.1:{topo.web_ports[0]}/metrics")
            assert status == 200, "web0's metrics"
            topo.kill9("web0")
            figures["web0_in_flight_at_kill"] = int(_metric(body, "autocircle_updates_in_flight"))
            figures["web_killed_after_owners"] = len(verified)
            # unanswered updates when it died: those it had in flight are among them, each may
            # be answered twice (replied, not committed, redelivered) — the documented window
            figures["unanswered_at_kill"] = len(await _control(http, sb, "pending_updates"))
            topo.kill9(leader)
            killed = time.monotonic()
            while True:
                status, body = await _get(http, f"http://127.0.0.1:{standby_port}/metrics")
                if status == 200 and _metric(body, "autocircle_scheduler_leader") == 1.0:
                    break
                assert time.monotonic() - killed < TAKEOVER_S * 2, "no takeover"
                await asyncio.sleep(0.05)
            figures["leader_failover_s"] = round(time.monotonic() - killed, 2)
            figures["sent_at_kill"] = await asyncio.to_thread(_sent, pg_url)

        await asyncio.wait_for(asyncio.gather(killer(), *(onboard(i) for i in range(OWNERS))), 600)
        figures["onboarding_s"] = round(time.monotonic() - started, 1)
        deadline = time.monotonic() + BROADCAST / RATE * 2 + 60
        while (sent := await asyncio.to_thread(_sent, pg_url)) < BROADCAST:
            assert time.monotonic() < deadline, f"broadcast stuck at {sent}/{BROADCAST}\n{topo.tails()}"
            await asyncio.sleep(0.5)
        figures["total_s"] = round(time.monotonic() - started, 1)
        stop_watch.set()
        await watcher
        sender_sent, sender_429 = [], []
        for port in topo.sender_ports:
            _, body = await _get(http, f"http://127.0.0.1:{port}/metrics")
            sender_sent.append(_metric(body, 'autocircle_sender_outcomes_total{outcome="sent"}'))
            sender_429.append(_metric(body, 'autocircle_telegram_429_total{source="sender"}'))
        figures["sent_by_sender"] = sender_sent
        figures["senders_429"] = sender_429
        redelivered = 0
        for port in topo.web_ports[1:]:  # web0 is dead
            _, body = await _get(http, f"http://127.0.0.1:{port}/metrics")
            redelivered += int(_metric(body, "autocircle_updates_redelivered_total"))
        stats = await _control(http, sb, "stats")
        pending = await _control(http, sb, "pending_updates")

        # --- what every person saw ----------------------------------------------------------
        duplicates = 0
        all_per_second: Counter[int] = Counter()  # every message of the bot, replies and pushes
        for i in range(OWNERS):
            messages = await _control(http, sb, "bot_messages", chat_id=FIRST_OWNER_TG + i)
            all_per_second.update(m["date"] for m in messages)
            texts = [m.get("text") or "" for m in messages]
            prompts = sum("verify" in t for t in texts)
            done = sum("Verified" in t for t in texts)
            assert prompts >= 1 and done >= 1, (i, texts)
            duplicates += prompts - 1 + done - 1
        per_second: Counter[int] = Counter()
        for i in range(BROADCAST):
            messages = await _control(http, sb, "bot_messages", chat_id=FIRST_AUDIENCE_TG + i)
            assert [m["text"] for m in messages] == [f"{BROADCAST_TEXT} #{i}"], (i, messages)
            per_second[messages[0]["date"]] += 1
            all_per_second[messages[0]["date"]] += 1
        figures["duplicate_replies"] = duplicates
        figures["max_pushes_in_a_second"] = max(per_second.values())
        figures["max_messages_in_a_second"] = max(all_per_second.values())
        figures["sandbox_429"] = stats["too_many_requests"]
        figures["limit_429"] = stats["limit_429"]
        figures["redelivered_500"] = redelivered
    finally:
        await http.close()
        codes = topo.stop_all()
    figures["wall_s"] = round(time.monotonic() - wall, 1)
    print("\nscale:", figures)
    assert await asyncio.to_thread(_verified, pg_url) == OWNERS
    assert pending == []
    assert duplicates <= figures["web0_in_flight_at_kill"], (
        f"{duplicates} duplicate replies; the killed web process's window is its "
        f"{figures['web0_in_flight_at_kill']} updates in flight"
    )
    # Replies and pushes take their tokens from the same shared buckets (replies first, the
    # senders keep to their share): the sandbox, enforcing Telegram's limits, never said 429.
    assert stats["too_many_requests"] == 0, (stats["limit_429"], stats["errors"])
    # the busiest second (the sandbox stamps whole seconds: a second may hold its burst too)
    assert figures["max_messages_in_a_second"] <= RATE * (1 + BURST_S) + 1
    assert figures["max_pushes_in_a_second"] <= RATE * (1 - REPLY_SHARE) * (1 + BURST_S) + 1
    assert all(n > 0 for n in sender_sent), sender_sent
    both = [t for t, flags in leaders_seen if all(flags)]
    assert not both, f"two leaders at once at {both[:3]}"
    assert figures["leader_failover_s"] < TAKEOVER_S
    assert all(code == 0 for name, code in codes.items() if name.startswith(("web1", "web2", "sender"))), codes


def _sent(url: str) -> int:
    from storage.db import make_engine
    from storage.models import OutboxMessage

    engine = make_engine(url)
    with Session(engine) as session:
        value = session.execute(
            select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.status) == "sent")
        ).scalar()
    engine.dispose()
    return value or 0


def _verified(url: str) -> int:
    from storage.db import make_engine
    from storage.models import Owner

    engine = make_engine(url)
    with Session(engine) as session:
        value = session.execute(
            select(func.count())
            .select_from(Owner)
            .where(col(Owner.external_id).like("S%"), col(Owner.telegram_user_id).is_not(None))
        ).scalar()
    engine.dispose()
    return value or 0
