"""What became of each message a flow queued: the last column of ``autocircle flows runs``.

The runner decides entry (rules, audience) and writes ``queued`` when a step's push enters the
outbox; whether it then went out, waits for the morning, or was dropped by the frequency cap,
an opt-out, an unreachable chat or a redeemed gift is decided by the delivery rules and the
sender, and lives on the outbox row. Joined here by the step's dedupe key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from flows.engine.flow_steps import step_dedupe_key
from storage.flow_models import FlowRunLog
from storage.models import OutboxMessage, OutboxStatus


def delivery_notes(session: Session, rows: Sequence[FlowRunLog], timezone: str) -> dict[int, str]:
    """``log id → what happened to the message`` for the ``queued`` rows among ``rows``:
    ``sent 03-02 10:00``, ``waiting until 03-03 08:00 (quiet_hours)``, ``skipped: cap`` …"""
    keys = {
        row.id: step_dedupe_key(row.flow_key, row.run_id, row.step_id)
        for row in rows
        if row.outcome == "queued" and row.run_id and row.step_id
    }
    if not keys:
        return {}
    found = {
        m.dedupe_key: m
        for m in session.exec(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).in_(set(keys.values())))).all()
    }
    zone = ZoneInfo(timezone)
    notes = {}
    for log_id, key in keys.items():
        message = found.get(key)
        if message is not None and log_id is not None:
            notes[log_id] = _note(message, zone)
    return notes


def _note(message: OutboxMessage, zone: ZoneInfo) -> str:
    def local(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%m-%d %H:%M") if at else ""

    reason = f" ({message.reason})" if message.reason else ""
    if message.status == OutboxStatus.sent.value:
        return f"sent {local(message.sent_at)}".strip()
    if message.status in (OutboxStatus.pending.value, OutboxStatus.sending.value):
        return f"waiting until {local(message.not_before)}{reason}"
    return f"{message.status}: {message.reason or 'no reason given'}"
