"""Outbox queries for the sender: claim due rows under a lease, record each outcome.

Claiming sets ``sending`` with a lease; a crash leaves rows ``sending`` whose lease expires,
and they are claimed again. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` so several
senders never take the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.models import OutboxMessage, OutboxStatus, Owner


@dataclass(frozen=True)
class ClaimedMessage:
    id: int
    chat_id: int
    owner_id: int | None
    message_class: str
    text: str
    parse_mode: str | None
    buttons: list[Any] | None
    attempts: int
    expires_at: datetime | None


def claim_due(engine: Engine, now: datetime, limit: int, lease: timedelta) -> list[ClaimedMessage]:
    """Take up to ``limit`` due rows by priority then age and lease them to this sender."""
    due = or_(
        and_(OutboxMessage.status == OutboxStatus.pending.value, OutboxMessage.not_before <= now),
        and_(OutboxMessage.status == OutboxStatus.sending.value, OutboxMessage.lease_until < now),
    )
    with Session(engine) as session:
        query = (
            select(OutboxMessage)
            .where(due)
            .order_by(OutboxMessage.priority, OutboxMessage.not_before, OutboxMessage.id)
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(session.execute(query).scalars())
        claimed = []
        for row in rows:
            row.status = OutboxStatus.sending.value
            row.lease_until = now + lease
            row.attempts += 1
            row.updated_at = now
            claimed.append(
                ClaimedMessage(
                    id=row.id or 0,
                    chat_id=row.chat_id,
                    owner_id=row.owner_id,
                    message_class=row.message_class,
                    text=row.text,
                    parse_mode=row.parse_mode,
                    buttons=row.buttons,
                    attempts=row.attempts,
                    expires_at=row.expires_at,
                )
            )
        session.commit()
        return claimed


def _set(engine: Engine, message_id: int, **values: Any) -> None:
    with Session(engine) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values))
        session.commit()


def mark_sent(engine: Engine, message_id: int, telegram_message_id: int, now: datetime) -> None:
    _set(
        engine,
        message_id,
        status=OutboxStatus.sent.value,
        telegram_message_id=telegram_message_id,
        sent_at=now,
        updated_at=now,
        lease_until=None,
        reason=None,
    )


def mark_failed(engine: Engine, message_id: int, reason: str, now: datetime) -> None:
    _set(engine, message_id, status=OutboxStatus.failed.value, reason=reason[:500], updated_at=now, lease_until=None)


def mark_skipped(engine: Engine, message_id: int, reason: str, now: datetime) -> None:
    _set(engine, message_id, status=OutboxStatus.skipped.value, reason=reason, updated_at=now, lease_until=None)


def release(engine: Engine, message_id: int, not_before: datetime, now: datetime, *, count_attempt: bool = True) -> None:
    """Put a row back to ``pending`` for a later try (rate limit, network error)."""
    values: dict[str, Any] = dict(
        status=OutboxStatus.pending.value, not_before=not_before, updated_at=now, lease_until=None
    )
    if not count_attempt:
        values["attempts"] = OutboxMessage.attempts - 1
    _set(engine, message_id, **values)


def mark_chat_unreachable(engine: Engine, chat_id: int, reason: str, now: datetime) -> int:
    """The user blocked the bot: owner unreachable, their queued pushes skipped."""
    with Session(engine) as session:
        session.execute(
            update(Owner).where(Owner.telegram_user_id == chat_id).values(unreachable=True, updated_at=now)
        )
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id, OutboxMessage.status == OutboxStatus.pending.value)
            .values(status=OutboxStatus.skipped.value, reason=reason, updated_at=now)
        )
        session.commit()
        return result.rowcount or 0
