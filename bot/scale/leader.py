"""One scheduler leader among any number of candidates: a PostgreSQL session-level advisory
lock (``pg_try_advisory_lock``) held on the leader's OWN connection.

Why its own connection: an advisory lock belongs to the database session that took it. A
pooled connection goes back to the pool (and may be reset or reused) after each use, and a
transaction-level lock (``pg_try_advisory_xact_lock``) is released at the transaction's end,
so either would "elect" every candidate at once. Here each candidate opens one dedicated
psycopg connection (autocommit, outside SQLAlchemy's pool) and keeps it for as long as it
leads.

Takeover bound (``takeover_s``, default 30 s): a leader that dies closes its socket and the
server ends its session at once (the lock is free); a leader cut off from the network is
detected by the server's TCP keepalives, set on the session to give up after about a third
of ``takeover_s``. Meanwhile the leader checks its connection every ``takeover_s / 6`` and
steps down (pauses its jobs) when the check fails, before the server frees the lock for
somebody else. Standbys try the lock every ``takeover_s / 6``. So a new leader runs at most
about ``takeover_s / 3 + takeover_s / 6`` after the old one stopped answering. Jobs stay
idempotent by key anyway (bot.scheduler): a brief overlap cannot plan anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from storage.db import normalize_url

log = logging.getLogger(__name__)

#: The advisory-lock key of the scheduler leader (any 64-bit number unique to this purpose).
SCHEDULER_LOCK_KEY = 0x4143_5343_4845_4431  # "ACSCHED1"


def conninfo(url: str, **extra: object) -> str:
    """A libpq connection string from the app's SQLAlchemy URL."""
    parsed = make_url(normalize_url(url))
    params: dict[str, object] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    params.update(parsed.query)
    params.update(extra)
    # libpq keywords take text (make_conninfo is typed str | int | None; query values are str)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


class LeaderElection:
    """Campaign for ``key``; call ``on_elected`` when this process leads, ``on_deposed`` when
    it stops leading (connection lost, or ``stop``)."""

    def __init__(
        self,
        url: str,
        *,
        key: int = SCHEDULER_LOCK_KEY,
        takeover_s: float = 30.0,
        on_elected: Callable[[], None] | None = None,
        on_deposed: Callable[[], None] | None = None,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.key = key
        self.takeover_s = takeover_s
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.is_leader = False
        self.elected_at: float | None = None  # time.time() of the last election won
        self.backend_pid: int | None = None  # the server process holding our session
        self._stop = asyncio.Event()
        self._conn: psycopg.AsyncConnection | None = None

    @property
    def interval_s(self) -> float:
        return max(self.takeover_s / 6.0, 0.05)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Campaign until ``stop``: lead while the lock is ours, retry when it is not."""
        try:
            while not self._stop.is_set():
                try:
                    await self._campaign()
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    log.warning("leader election %s: connection lost (%s)", self.name, exc)
                self._depose()
                await self._close()
                await self._sleep(self.interval_s)
        finally:
            self._depose()
            await self._close()

    async def _campaign(self) -> None:
        self._conn = await self._connect()
        async with self._conn.cursor() as cur:
            await cur.execute("SELECT pg_backend_pid()")
            row = await cur.fetchone()
            self.backend_pid = row[0] if row else None
        while not self._stop.is_set():
            async with self._conn.cursor() as cur:
                if self.is_leader:  # still connected: the lock is still ours
                    await asyncio.wait_for(cur.execute("SELECT 1"), self.interval_s)
                else:
                    await asyncio.wait_for(cur.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)), self.interval_s)
                    row = await cur.fetchone()
                    if row and row[0]:
                        self._elect()
            await self._sleep(self.interval_s)

    async def _connect(self) -> psycopg.AsyncConnection:
        # the server notices a vanished leader within ~takeover_s / 3 (idle + count * interval)
        idle = max(1, int(self.takeover_s / 6))
        interval = max(1, int(self.takeover_s / 18))
        options = (
            f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval} "
            f"-c tcp_keepalives_count=3 -c application_name=autocircle-leader"
        )
        info = conninfo(
            self.url,
            connect_timeout=max(2, int(self.takeover_s / 6)),
            keepalives=1,
            keepalives_idle=idle,
            keepalives_interval=interval,
            keepalives_count=3,
            options=options,
        )
        return await asyncio.wait_for(
            psycopg.AsyncConnection.connect(info, autocommit=True), timeout=max(self.takeover_s / 3, 1.0)
        )

    def _elect(self) -> None:
        self.is_leader = True
        self.elected_at = time.time()
        log.info("scheduler leader: %s (backend %s)", self.name, self.backend_pid)
        if self.on_elected is not None:
            self.on_elected()

    def _depose(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        log.warning("scheduler leader %s steps down", self.name)
        if self.on_deposed is not None:
            self.on_deposed()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), timeout=2.0)
            except Exception as exc:  # noqa: BLE001 - a dead connection may not close cleanly
                log.debug("closing the leader connection: %s", exc)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
