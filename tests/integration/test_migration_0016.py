"""Migration 0016 moves each push's topic and subject from ``outbox_topic`` onto its outbox
row, keeps pushes without a topic as they were, and goes back the same way."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from storage import migrate
from storage.db import make_engine


def test_topics_move_onto_the_outbox_rows_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url, "0015")
    engine = make_engine(url)
    with engine.begin() as conn:
        for n in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO outbox (id, dedupe_key, chat_id, message_class, priority, text, not_before, "
                    "attempts, status, created_at, updated_at) VALUES (:n, :key, 5, 'marketing', 50, 'hi', "
                    "'2026-01-01 00:00:00', 0, 'pending', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                {"n": n, "key": f"k{n}"},
            )
        conn.execute(text("INSERT INTO outbox_topic VALUES (1, 'gift_reminder', 'gift:7'), (2, 'campaign:3', NULL)"))
    migrate.upgrade(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, topic, subject FROM outbox ORDER BY id")).all()
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))}
    assert [tuple(r) for r in rows] == [(1, "gift_reminder", "gift:7"), (2, "campaign:3", None), (3, None, None)]
    assert "outbox_topic" not in tables
    command.downgrade(migrate.alembic_config(url), "0015")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT outbox_id, topic, subject FROM outbox_topic ORDER BY outbox_id")).all()
    assert [tuple(r) for r in back] == [(1, "gift_reminder", "gift:7"), (2, "campaign:3", None)]
    engine.dispose()
