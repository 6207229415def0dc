"""The planners' bulk path (``storage.outbox.bulk_insert``: COPY on PostgreSQL, executemany
on SQLite) stores exactly what the ORM would read back: aware datetimes in UTC, JSON buttons,
NULLs, and each topic and subject on its own outbox row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select
from sqlmodel import Session, col

from flows.delivery.outbox import Push, enqueue_many
from storage import clock
from storage.models import MessageClass, OutboxMessage

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # noon in Asia/Shanghai


def test_bulk_rows_and_topics_read_back_as_planned(engine) -> None:
    clock.set_now(lambda: NOW)
    try:
        plus8 = timezone(timedelta(hours=8))
        buttons = [[{"text": "Book", "callback_data": "b:1"}], [{"text": "Site", "url": "https://x.test/?a=1&b=2"}]]
        pushes = [
            Push(
                dedupe_key=f"bulk:{n}",
                chat_id=-100_000 - n,  # groups: no owner, no best hour
                text=f"<b>n{n}</b> ' \\ \t tab",
                message_class=MessageClass.transactional,
                buttons=buttons if n % 2 else None,
                expires_at=datetime(2026, 3, 12, 20, 0, tzinfo=plus8) if n % 3 else None,
                parse_mode=None if n == 4 else "HTML",
                topic="bulk" if n % 2 == 0 else None,
                subject=f"s:{n}" if n % 4 == 0 else None,
            )
            for n in range(9)
        ]
        with Session(engine) as session:
            assert enqueue_many(session, pushes) == 9
            session.commit()
        with Session(engine) as session:
            rows = {r.dedupe_key: r for r in session.exec(select(OutboxMessage)).scalars()}
            topics = dict(
                session.execute(
                    select(col(OutboxMessage.dedupe_key), col(OutboxMessage.subject)).where(
                        col(OutboxMessage.topic) == "bulk"
                    )
                ).all()
            )
    finally:
        clock.set_now(None)
    for push in pushes:
        row = rows[push.dedupe_key]
        assert (row.chat_id, row.text, row.buttons, row.parse_mode) == (
            push.chat_id,
            push.text,
            push.buttons,
            push.parse_mode,
        )
        assert row.expires_at == push.expires_at and (
            row.expires_at is None or row.expires_at.utcoffset() == timedelta(0)
        )
        assert row.not_before == NOW and row.created_at == NOW and row.status == "pending" and row.priority == 10
    assert topics == {f"bulk:{n}": (f"s:{n}" if n % 4 == 0 else None) for n in range(0, 9, 2)}
