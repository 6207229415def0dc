"""Conversation state rows, keyed by an opaque string, so onboarding survives restarts.

The aiogram adapter lives in ``bot/fsm_storage.py``; this module only reads and writes rows.
Each call is its own short transaction, independent of the update's unit of work, because
aiogram writes state around the handler.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage.clock import utcnow
from storage.models import FsmRecord


def load(engine: Engine, key: str) -> tuple[str | None, dict[str, Any]]:
    with Session(engine) as session:
        row = session.exec(select(FsmRecord).where(FsmRecord.key == key)).scalars().first()
        if row is None:
            return None, {}
        return row.state, dict(row.data or {})


def save_state(engine: Engine, key: str, state: str | None) -> None:
    _upsert(engine, key, state=state)


def save_data(engine: Engine, key: str, data: dict[str, Any]) -> None:
    _upsert(engine, key, data=data)


def _upsert(engine: Engine, key: str, **values: Any) -> None:
    """Insert or update one key; a key with no state and no data is removed."""
    for _attempt in range(3):
        with Session(engine) as session:
            row = session.exec(select(FsmRecord).where(FsmRecord.key == key)).scalars().first()
            state = values.get("state", row.state if row else None)
            data = values.get("data", row.data if row else {})
            if state is None and not data:
                if row is not None:
                    session.execute(delete(FsmRecord).where(FsmRecord.key == key))
            elif row is None:
                session.add(FsmRecord(key=key, state=state, data=data))
            else:
                row.state, row.data, row.updated_at = state, data, utcnow()
            try:
                session.commit()
                return
            except IntegrityError:
                session.rollback()  # another process created the row first: retry as update
    raise RuntimeError(f"could not store FSM state for {key}")
