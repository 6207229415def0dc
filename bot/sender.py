"""The outbox sender: the only code that loops over recipients and calls the Bot API for
pushes. It decides *how* (rate, order, retries), never *who* (``flows.delivery.outbox.screen`` does).

Shape (three coroutines around one in-memory schedule):

* **feeder** claims due rows in batches (priority, then age) under a lease, runs the send-time
  screen on them (opted out, unreachable, expired, cancelled, quiet hours, cap) and puts the
  rest on the schedule at the time their chat's token bucket allows. A row whose chat is busy
  for longer than ``hold_s`` goes back to the table for later and the chat is left out of
  claims meanwhile, so one busy chat never blocks the others (no head-of-line blocking).
* **dispatcher** takes rows off the schedule when due, waits for the bot's overall token
  bucket (default 25/s, under Telegram's 30) and sends with up to ``concurrency`` requests in
  flight. With Redis (``shared``) the buckets are shared by every process and leave a share
  of the rate to the replies (``bot.scale.shared_limits``).
* **recorder** stores outcomes in batches (one transaction per flush).

Outcomes: sent (with Telegram's message id); 429 → everything pauses for ``retry_after``, the
row goes back without counting an attempt; 403 → failed ``blocked``, owner unreachable, their
queued pushes skipped; 400 → failed ``bad_request: <Telegram's description>``; network errors
and 5xx → back to the queue with exponential backoff, failed after ``max_attempts``.

Crash bound: a send takes a slot of ``window`` before its request and frees it only once its
outcome is committed, so at any instant at most ``window`` messages have been sent without
``sent`` being recorded. After a crash those rows are claimed again when their lease expires:
at most ``window`` duplicates per crashed sender; nothing is lost (unsent rows are re-sent).
(Independently of crashes, a request that times out after Telegram accepted it is retried
and shows twice: no Bot API client can tell those apart.)

Requests go out through a ``Transport`` (``bot.send_transport``): ``DirectTransport``
(default, one JSON POST) or ``AiogramTransport`` (``bot.send_message``); see
``DirectTransport`` for why.

All database work runs in threads (``asyncio.to_thread``): interactive replies share this
event loop and must stay fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiogram import Bot
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.send_transport import SendResult, Transport, make_transport
from flows.delivery import clock as app_clock
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import Suppressions, Verdict, screen
from storage import outbox
from storage.outbox import ClaimedMessage, Outcome

if TYPE_CHECKING:
    from bot.scale.shared_limits import SharedLimits

log = logging.getLogger(__name__)
CHAT_BUSY = "chat_busy"  # back to the table: the chat's own rate limit leaves no slot soon


class SenderConfig(BaseModel):
    """Every sending knob, defined once: ``DeliverySettings`` inherits these fields, so each
    is also ``AUTOCIRCLE_DELIVERY__<NAME>`` with the same default."""

    model_config = ConfigDict(extra="forbid")

    rate_per_s: float = Field(25.0, description="the bot's overall send rate (Telegram allows ~30)")
    burst_s: float = Field(0.2, description="the overall bucket holds this many seconds of sending")
    private_per_s: float = 1.0
    private_burst: int = 2
    group_per_min: float = 20.0
    group_burst: int = 3
    concurrency: int = Field(16, description="requests in flight")
    window: int = Field(100, description="sent but not yet recorded: the duplicate bound after a crash")
    batch_size: int = Field(100, description="rows per claim")
    claim_ahead_s: float = Field(2.0, description="rows held in memory: about this many seconds of sending")
    hold_s: float = Field(2.0, description="a row waiting longer than this for its chat goes back to the table")
    poll_interval_s: float = 0.25
    lease_s: float = 60.0
    max_attempts: int = 6
    backoff_base_s: float = 2.0
    backoff_max_s: float = 600.0
    flush_interval_s: float = 0.02
    flush_size: int = 200
    transport: str = Field("direct", description="direct (lean JSON POST) or aiogram")

    @property
    def max_held(self) -> int:
        return max(self.window, self.batch_size, int(self.rate_per_s * self.claim_ahead_s))


#: how long past a reply's ``retry_after`` that chat's pushes stay back, and this sender as a
#: whole (``OutboxSender.hold_chat``): the retry goes out a little after the wait, and a push
#: sent the moment it ends would take the turn again
REPLY_TURN_MARGIN_S = 2.0
REPLY_PAUSE_MARGIN_S = 1.0


class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; ``reserve`` books the next token and
    returns when it is available (tokens may go negative: a queue of reservations)."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.tokens = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def reserve(self, now: float) -> float:
        self._refill(now)
        at = now if self.tokens >= 1.0 else now + (1.0 - self.tokens) / self.rate
        self.tokens -= 1.0
        return at

    def cancel(self) -> None:
        self.tokens += 1.0

    def idle(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


@dataclass(order=True)
class _Slot:
    ready_at: float
    priority: int
    seq: int
    row: ClaimedMessage = field(compare=False)
    claimed_at: float = field(compare=False, default=0.0)


class OutboxSender:
    def __init__(
        self,
        bot: Bot,
        engine: Engine,
        config: SenderConfig | None = None,
        *,
        policy: DeliveryPolicy | None = None,
        suppressions: Suppressions | None = None,
        clock: app_clock.Clock | None = None,
        transport: Transport | None = None,
        shared: SharedLimits | None = None,
    ) -> None:
        self.bot = bot
        self.shared = shared  # several senders: the rate, the chat's turn and 429s in Redis
        self.engine = engine
        self.config = config or SenderConfig()
        self.transport = transport or make_transport(bot, self.config.transport, concurrency=self.config.concurrency)
        self.policy = policy or DeliveryPolicy()
        self.suppressions = suppressions or Suppressions()
        self.clock = clock
        self.stats: dict[str, int] = {"sent": 0, "failed": 0, "skipped": 0, "retried": 0, "http_429": 0}
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()
        self._wake = asyncio.Event()
        self._running = False

    # --- control ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; rows held in memory go back to the queue, in-flight sends finish."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Tell the sender new rows may be due (it also polls)."""
        self._wake.set()

    async def wait_stopped(self, timeout: float = 10.0) -> bool:
        """After ``stop()``: wait for held rows to go back and in-flight outcomes to be stored."""
        if not self._running:
            return True
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _now(self) -> datetime:
        return (self.clock or app_clock.current()).now()

    def _app_delta(self, real_seconds: float) -> timedelta:
        return (self.clock or app_clock.current()).app_delta(real_seconds)

    # --- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        self._stop.clear()
        self._stopped.clear()
        self._running = True
        self._reset_state()
        tasks = [
            asyncio.create_task(self._feeder(), name="outbox-feeder"),
            asyncio.create_task(self._dispatcher(), name="outbox-dispatcher"),
            asyncio.create_task(self._recorder(), name="outbox-recorder"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.transport.close()
            self._running = False
            self._stopped.set()

    def _reset_state(self) -> None:
        cfg = self.config
        now = self._mono()
        self._heap: list[_Slot] = []
        self._seq = itertools.count()
        self._held = 0  # claimed rows whose outcome is not committed yet
        self._inflight: set[asyncio.Task[None]] = set()
        self._window = asyncio.Semaphore(cfg.window)
        self._http = asyncio.Semaphore(cfg.concurrency)
        self._overall = TokenBucket(cfg.rate_per_s, cfg.rate_per_s * cfg.burst_s, now)
        self._chats: dict[int, TokenBucket] = {}
        self._cool: dict[int, float] = {}  # chat -> monotonic time before which it is not claimed
        self._replying: dict[int, float] = {}  # chat -> monotonic time its pushes step back to (hold_chat)
        self._paused_until = 0.0
        self._schedule_changed = asyncio.Event()
        self._room = asyncio.Event()
        self._outcomes: list[tuple[Outcome, bool]] = []  # (outcome, holds a window slot)
        self._outcome_added = asyncio.Event()
        self._last_prune = now
        self._feeder_done = False
        self._dispatcher_done = False

    def _mono(self) -> float:
        return time.monotonic()

    # feeder ----------------------------------------------------------------------------

    async def _feeder(self) -> None:
        cfg = self.config
        while not self._stop.is_set():
            room = cfg.max_held - self._held
            pause = self._paused_until - self._mono()
            if pause > 0 or room < min(cfg.batch_size, cfg.max_held) // 2 or room <= 0:
                await self._wait(self._room, max(pause, 0.0) or cfg.poll_interval_s)
                continue
            mono = self._mono()
            cooling = [chat for chat, until in self._cool.items() if until > mono][:1000]
            try:
                batch = await asyncio.to_thread(self._claim_and_screen, min(cfg.batch_size, room), self._now(), cooling)
            except Exception:
                log.exception("claiming outbox rows failed; retrying")
                await self._wait(self._wake, cfg.poll_interval_s * 4)
                continue
            if not batch:
                await self._wait(self._wake, cfg.poll_interval_s)
                continue
            self._held += len(batch)
            self._place(batch)
        self._feeder_done = True
        self._schedule_changed.set()

    def _claim_and_screen(self, limit: int, now: datetime, cooling: list[int]) -> list[tuple[ClaimedMessage, Verdict]]:
        """(In a thread.) Lease due rows and run the send-time screen on them."""
        rows = outbox.claim_due(self.engine, now, limit, timedelta(seconds=self.config.lease_s), exclude_chats=cooling)
        if not rows:
            return []
        with Session(self.engine) as session:
            verdicts = screen(session, rows, now, self.policy, self.suppressions)
        return list(zip(rows, verdicts, strict=True))

    def _place(self, batch: list[tuple[ClaimedMessage, Verdict]]) -> None:
        """Screened rows: skip/defer the vetoed, schedule the rest at their chat's slot."""
        cfg = self.config
        now = self._now()
        mono = self._mono()
        for row, verdict in batch:
            if verdict.skip:
                self._add_outcome(Outcome(row.id, outbox.SKIPPED, now, reason=verdict.reason))
                continue
            if not verdict.send:  # deferred by quiet hours or the cap
                self._add_outcome(
                    Outcome(
                        row.id,
                        outbox.PENDING,
                        now,
                        reason=verdict.reason,
                        not_before=verdict.not_before,
                        refund_attempt=True,
                    )
                )
                continue
            if row.attempts > cfg.max_attempts:
                self._add_outcome(Outcome(row.id, outbox.FAILED, now, reason="too_many_attempts"))
                continue
            bucket = self._chat_bucket(row.chat_id, mono)
            ready = bucket.reserve(mono)
            if ready - mono > cfg.hold_s:
                bucket.cancel()
                self._cool[row.chat_id] = ready
                self._add_outcome(
                    Outcome(
                        row.id,
                        outbox.PENDING,
                        now,
                        reason=CHAT_BUSY,
                        not_before=now + self._app_delta(ready - mono),
                        refund_attempt=True,
                    )
                )
                continue
            heapq.heappush(self._heap, _Slot(ready, row.priority, next(self._seq), row, mono))
        self._schedule_changed.set()
        self._prune(mono)

    def _chat_bucket(self, chat_id: int, mono: float) -> TokenBucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            cfg = self.config
            if chat_id > 0:
                bucket = TokenBucket(cfg.private_per_s, cfg.private_burst, mono)
            else:
                bucket = TokenBucket(cfg.group_per_min / 60.0, cfg.group_burst, mono)
            self._chats[chat_id] = bucket
        return bucket

    def hold_chat(self, chat_id: int, retry_after: float) -> None:
        """A reply to ``chat_id`` met Telegram's limit and retries after ``retry_after`` seconds,
        as Telegram asked (``bot.retry``): this sender's pushes to that chat step back for
        ``retry_after + REPLY_TURN_MARGIN_S``, so the reply's retry finds the chat's turn free
        instead of losing it to the next push each time (replies first, as the shared limits
        keep it across processes). The margin is there because the retry goes out a little
        after ``retry_after`` (its update lends its database turn out and takes it back, the
        request travels), and a push sent the moment the wait ends would take the chat's turn
        again; a retry that meets another 429 holds the chat again. Telegram's answer does not
        say whether the chat's limit or the bot's overall one was hit, so the sender also pauses
        for the reply's wait, plus ``REPLY_PAUSE_MARGIN_S``. Pushes already waiting move back; none is
        dropped."""
        self._pause(retry_after + REPLY_PAUSE_MARGIN_S)
        until = self._mono() + retry_after + REPLY_TURN_MARGIN_S
        self._replying[chat_id] = max(until, self._replying.get(chat_id, 0.0))
        self._cool[chat_id] = max(until, self._cool.get(chat_id, 0.0))

    def _prune(self, mono: float) -> None:
        if mono - self._last_prune < 5.0:
            return
        self._last_prune = mono
        self._chats = {c: b for c, b in self._chats.items() if not b.idle(mono)}
        self._cool = {c: t for c, t in self._cool.items() if t > mono}
        self._replying = {c: t for c, t in self._replying.items() if t > mono}

    # dispatcher ------------------------------------------------------------------------

    async def _dispatcher(self) -> None:
        cfg = self.config
        while True:
            if self._stop.is_set() and self._feeder_done:
                self._give_back(self._drain_heap(), self._now())
                break
            if not self._heap:
                await self._wait(self._schedule_changed, cfg.poll_interval_s)
                continue
            mono = self._mono()
            delay = self._heap[0].ready_at - mono
            if delay > 0:
                await self._wait(self._schedule_changed, delay)
                continue
            pause = self._paused_until - mono
            if pause > 0:
                if pause > cfg.hold_s:  # a long 429 pause: do not sit on leased rows
                    now = self._now()
                    self._give_back(self._drain_heap(), now + self._app_delta(pause))
                await self._wait(self._stop, min(pause, cfg.hold_s), clear=False)
                continue
            slot = heapq.heappop(self._heap)
            if mono - slot.claimed_at > cfg.lease_s * 0.8:
                # our lease is about to run out: another sender may take it; let the lease decide
                self._held -= 1
                self._room.set()
                continue
            held = self._replying.get(slot.row.chat_id)
            if held is not None:
                if held > mono:  # a reply to this chat is waiting for its turn: it goes first
                    slot.ready_at = held
                    heapq.heappush(self._heap, slot)
                    continue
                del self._replying[slot.row.chat_id]
            if self.shared is not None:
                if not await self._shared_turn(slot):
                    continue
            else:
                wait = self._overall.reserve(mono) - mono
                if wait > 0:
                    await asyncio.sleep(wait)
            await self._window.acquire()
            await self._http.acquire()
            task = asyncio.create_task(self._send(slot.row))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=30)
        self._dispatcher_done = True
        self._outcome_added.set()

    async def _shared_turn(self, slot: _Slot) -> bool:
        """Several processes: the shared buckets and the chat's turn (Redis,
        ``bot.scale.shared_limits``). A push never books ahead: a chat that must wait (another
        sender has it in flight, or replies used its per-chat limit) goes back on the schedule;
        the global rate or a short pause is waited here; a long pause pauses this sender."""
        assert self.shared is not None
        while True:
            try:
                turn = await self.shared.sender_turn(slot.row.chat_id)
            except Exception:
                log.exception("shared send limits unavailable; retrying")
                heapq.heappush(self._heap, slot)
                await asyncio.sleep(1.0)
                return False
            if turn.granted:
                return True
            if turn.chat_busy:
                slot.ready_at = self._mono() + max(turn.wait_s, 0.05)
                heapq.heappush(self._heap, slot)
                return False
            if turn.wait_s > self.config.hold_s:
                self._pause(turn.wait_s)  # a long shared pause: the dispatcher gives rows back
                heapq.heappush(self._heap, slot)
                return False
            await asyncio.sleep(max(turn.wait_s, 0.001))

    def _drain_heap(self) -> list[ClaimedMessage]:
        rows = [slot.row for slot in self._heap]
        self._heap.clear()
        return rows

    def _give_back(self, rows: list[ClaimedMessage], not_before: datetime) -> None:
        now = self._now()
        for row in rows:
            self._add_outcome(
                Outcome(row.id, outbox.PENDING, now, not_before=max(not_before, now), refund_attempt=True)
            )

    async def _send(self, row: ClaimedMessage) -> None:
        try:
            result = await self.transport.send(row.chat_id, row.text, row.parse_mode, row.buttons)
            outcome = self._outcome(row, result)
        except Exception as exc:
            log.exception("unexpected error sending outbox row %s", row.id)
            outcome = self._retry(row, self._now(), f"error: {type(exc).__name__}")
        finally:
            self._http.release()
        if self.shared is not None:
            await self._share_outcome(row, outcome)
        self._add_outcome(outcome, holds_window=True)

    async def _share_outcome(self, row: ClaimedMessage, outcome: Outcome) -> None:
        assert self.shared is not None
        try:
            if outcome.reason == "rate_limited":
                await self.shared.pause(max(self._paused_until - self._mono(), 1.0))
            await self.shared.release(row.chat_id)
        except Exception:  # noqa: BLE001 - the chat's key expires by its lease
            log.warning("could not release chat %s in the shared limits", row.chat_id)

    def _outcome(self, row: ClaimedMessage, result: SendResult) -> Outcome:
        now = self._now()
        status, text = result.status, result.description
        if result.message_id is not None:
            return Outcome(row.id, outbox.SENT, now, telegram_message_id=result.message_id)
        if status == 429:
            wait = float(result.retry_after or 1)
            self.stats["http_429"] += 1
            self._pause(wait)
            self._cool[row.chat_id] = self._mono() + wait
            return Outcome(
                row.id,
                outbox.PENDING,
                now,
                reason="rate_limited",
                not_before=now + self._app_delta(wait),
                refund_attempt=True,
            )
        if status == 403:
            return Outcome(row.id, outbox.FAILED, now, reason=f"blocked: {text}", block_chat=row.chat_id)
        if status == 400 and result.migrate_to_chat_id:
            moved = result.migrate_to_chat_id
            return Outcome(row.id, outbox.FAILED, now, reason=f"migrated: chat moved to {moved}")
        if status == 400:
            return Outcome(row.id, outbox.FAILED, now, reason=f"bad_request: {text}")
        if status in (401, 404):  # the token or the API address is wrong: nothing can go out
            log.error("the Bot API answered %s (%s); pausing the sender", status, text)
            self._pause(60)
            return self._retry(row, now, f"api_{status}: {text}")
        if status == 0 or status >= 500:
            return self._retry(row, now, f"network: {text}" if status == 0 else f"server_{status}: {text}")
        return Outcome(row.id, outbox.FAILED, now, reason=f"api_error: {status} {text}")

    def _retry(self, row: ClaimedMessage, now: datetime, reason: str) -> Outcome:
        cfg = self.config
        if row.attempts >= cfg.max_attempts:
            return Outcome(row.id, outbox.FAILED, now, reason=reason)
        delay = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (row.attempts - 1))
        self._cool[row.chat_id] = self._mono() + delay  # real-time backoff even on a frozen clock
        return Outcome(row.id, outbox.PENDING, now, reason=reason, not_before=now + self._app_delta(delay))

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._mono() + seconds)

    # recorder --------------------------------------------------------------------------

    def _add_outcome(self, outcome: Outcome, holds_window: bool = False) -> None:
        self._outcomes.append((outcome, holds_window))
        self._outcome_added.set()

    async def _recorder(self) -> None:
        cfg = self.config
        while True:
            if not self._outcomes:
                if self._dispatcher_done:
                    return
                await self._wait(self._outcome_added, cfg.poll_interval_s)
                continue
            if len(self._outcomes) < cfg.flush_size:
                await asyncio.sleep(cfg.flush_interval_s)  # let a batch gather
            batch, self._outcomes = self._outcomes[: cfg.flush_size * 4], self._outcomes[cfg.flush_size * 4 :]
            try:
                await asyncio.to_thread(outbox.record_outcomes, self.engine, [o for o, _ in batch])
            except Exception:
                log.exception("recording %s outbox outcomes failed; retrying", len(batch))
                self._outcomes[:0] = batch
                await asyncio.sleep(1.0)
                continue
            for outcome, holds_window in batch:
                self._count(outcome)
                if holds_window:
                    self._window.release()
            self._held -= len(batch)
            self._room.set()

    def _count(self, outcome: Outcome) -> None:
        key = {"sent": "sent", "failed": "failed", "skipped": "skipped"}.get(outcome.status, "retried")
        self.stats[key] += 1

    # helpers ---------------------------------------------------------------------------

    async def _wait(self, event: asyncio.Event, timeout: float, *, clear: bool = True) -> None:
        """Until ``event`` is set or ``timeout`` passes; then clear it (its one waiter acts)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(timeout, 0.0))
        if clear:
            event.clear()
