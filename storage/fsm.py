"""Conversation state rows, keyed by an opaque string, so onboarding survives restarts.

The aiogram adapter lives in ``bot/fsm_storage.py``; this module only reads and writes rows
in a session it is given. Inside an update the adapter passes the update's own session, so
a state change commits together with the work it describes (and SQLite never waits on
itself); outside one it uses a short session of its own.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import Session, col

from storage.clock import utcnow
from storage.db import dialect_insert, table_of
from storage.models import FsmRecord


def load(session: Session, key: str) -> tuple[str | None, dict[str, Any]]:
    row = session.execute(select(FsmRecord).where(col(FsmRecord.key) == key)).scalars().first()
    if row is None:
        return None, {}
    return row.state, dict(row.data or {})


_UNSET: Any = object()


def save(
    session: Session,
    key: str,
    *,
    state: Any = _UNSET,
    data: Any = _UNSET,
    current: tuple[str | None, dict[str, Any]] | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """Insert or update one key (flushed, not committed); an empty key is removed. Returns
    the stored (state, data). ``current`` is the row as the caller already knows it (saves
    reading it again).

    One upsert statement, no savepoint: on SQLite a savepoint that reads before it writes
    holds a snapshot that a concurrent commit makes stale, and the write then fails at once
    with "database is locked" instead of waiting its turn.
    """
    current_state, current_data = current if current is not None else load(session, key)
    new_state = current_state if state is _UNSET else state
    new_data = current_data if data is _UNSET else dict(data)
    if new_state is None and not new_data:
        session.execute(delete(FsmRecord).where(col(FsmRecord.key) == key))
        return None, {}
    values = {"key": key, "state": new_state, "data": new_data, "updated_at": utcnow()}
    session.execute(_upsert(session.get_bind().dialect.name), values)
    return new_state, dict(new_data)


@lru_cache(maxsize=2)
def _upsert(dialect: str) -> Any:
    """The upsert of one key, built once per dialect and run with each key's values."""
    table = table_of(FsmRecord)
    statement = dialect_insert(dialect, table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "state": statement.excluded.state,
            "data": statement.excluded.data,
            "updated_at": statement.excluded.updated_at,
        },
    )
