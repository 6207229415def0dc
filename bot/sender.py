"""The outbox sender: the only code that loops over recipients and calls the Bot API for
pushes. It decides *how* (rate, retries), never *who*.

Outcomes: sent (with Telegram's message id); 429 → pause for ``retry_after`` and retry;
403 → owner unreachable, their queued pushes skipped; 400 → failed with Telegram's
description; network errors and 5xx → retry with exponential backoff up to ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy.engine import Engine

from bot.retry import NO_RETRY
from storage import outbox
from storage.clock import utcnow

log = logging.getLogger(__name__)


@dataclass
class SenderConfig:
    """Every sending knob in one place."""

    batch_size: int = 50
    poll_interval_s: float = 0.25
    lease_s: float = 60.0
    max_attempts: int = 6
    backoff_base_s: float = 2.0
    rate_per_s: float = 25.0


class OutboxSender:
    def __init__(self, bot: Bot, engine: Engine, config: SenderConfig | None = None) -> None:
        self.bot = bot
        self.engine = engine
        self.config = config or SenderConfig()
        self.bot_username = ""
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._paused_until = 0.0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Tell the sender new rows may be due (it also polls)."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            sent_any = await self.drain_once()
            if not sent_any:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
                except asyncio.TimeoutError:
                    pass

    async def drain_once(self) -> bool:
        """Claim one batch and send it; returns True when anything was claimed."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._paused_until:
            await asyncio.sleep(self._paused_until - loop.time())
        rows = await asyncio.to_thread(
            outbox.claim_due, self.engine, utcnow(), self.config.batch_size,
            timedelta(seconds=self.config.lease_s),
        )
        interval = 1.0 / self.config.rate_per_s if self.config.rate_per_s > 0 else 0.0
        for row in rows:
            if self._stop.is_set():
                await asyncio.to_thread(outbox.release, self.engine, row.id, utcnow(), utcnow(), count_attempt=False)
                continue
            await self._send_one(row)
            if interval:
                await asyncio.sleep(interval)
        return bool(rows)

    async def _send_one(self, row: outbox.ClaimedMessage) -> None:
        NO_RETRY.set(True)  # this task reschedules rate-limited rows itself
        now = utcnow()
        if row.expires_at is not None and row.expires_at <= now:
            await asyncio.to_thread(outbox.mark_skipped, self.engine, row.id, "expired", now)
            return
        try:
            message = await self.bot.send_message(
                row.chat_id, row.text, parse_mode=row.parse_mode, reply_markup=_markup(row.buttons)
            )
        except TelegramRetryAfter as exc:
            self._paused_until = asyncio.get_running_loop().time() + exc.retry_after
            await asyncio.to_thread(
                outbox.release, self.engine, row.id,
                now + timedelta(seconds=exc.retry_after), now, count_attempt=False,
            )
        except TelegramForbiddenError as exc:
            await asyncio.to_thread(outbox.mark_failed, self.engine, row.id, f"blocked: {exc.message}", now)
            await asyncio.to_thread(outbox.mark_chat_unreachable, self.engine, row.chat_id, "blocked", now)
        except TelegramBadRequest as exc:
            await asyncio.to_thread(outbox.mark_failed, self.engine, row.id, f"bad_request: {exc.message}", now)
        except (TelegramNetworkError, TelegramServerError, OSError) as exc:
            if row.attempts >= self.config.max_attempts:
                await asyncio.to_thread(outbox.mark_failed, self.engine, row.id, f"network: {exc}", now)
            else:
                delay = self.config.backoff_base_s * 2 ** (row.attempts - 1)
                await asyncio.to_thread(outbox.release, self.engine, row.id, now + timedelta(seconds=delay), now)
        else:
            await asyncio.to_thread(outbox.mark_sent, self.engine, row.id, message.message_id, utcnow())


def _markup(buttons: list | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(**button) for button in row] for row in buttons]
    )
