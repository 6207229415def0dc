"""Enqueue pushes: ``flows`` decides what to send and records it here; ``bot`` sends it.

A push is anything that is not the immediate answer to the user's own action (partner
notices, churn alerts, reminders, campaigns). The dedupe key makes planning idempotent:
enqueueing the same key twice creates one message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage.clock import utcnow
from storage.models import MessageClass, OutboxMessage

PRIORITY = {MessageClass.reply: 0, MessageClass.transactional: 10, MessageClass.marketing: 50}


@dataclass(frozen=True)
class Push:
    """One message to deliver later. ``buttons``: rows of {"text", "url"|"callback_data"}."""

    dedupe_key: str
    chat_id: int
    text: str
    message_class: MessageClass = MessageClass.transactional
    owner_id: int | None = None
    partner_id: int | None = None
    buttons: list[list[dict[str, Any]]] | None = None
    not_before: datetime | None = None
    expires_at: datetime | None = None
    priority: int | None = None


def enqueue(session: Session, push: Push) -> bool:
    """Add the push unless its dedupe key exists; returns True when a row was created."""
    exists = session.execute(
        select(OutboxMessage.id).where(OutboxMessage.dedupe_key == push.dedupe_key)
    ).first()
    if exists:
        return False
    now = utcnow()
    row = OutboxMessage(
        dedupe_key=push.dedupe_key,
        chat_id=push.chat_id,
        owner_id=push.owner_id,
        partner_id=push.partner_id,
        message_class=push.message_class.value,
        priority=push.priority if push.priority is not None else PRIORITY[push.message_class],
        text=push.text,
        buttons=push.buttons,
        not_before=push.not_before or now,
        expires_at=push.expires_at,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False  # another process planned the same push first
    return True
