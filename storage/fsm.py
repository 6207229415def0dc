"""Conversation state rows, keyed by an opaque string, so onboarding survives restarts.

The aiogram adapter lives in ``bot/fsm_storage.py``; this module only reads and writes rows
in a session it is given. Inside an update the adapter passes the update's own session, so
a state change commits together with the work it describes (and SQLite never waits on
itself); outside one it uses a short session of its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage.clock import utcnow
from storage.models import FsmRecord


def load(session: Session, key: str) -> tuple[str | None, dict[str, Any]]:
    row = session.execute(select(FsmRecord).where(FsmRecord.key == key)).scalars().first()
    if row is None:
        return None, {}
    return row.state, dict(row.data or {})


_UNSET: Any = object()


def save(session: Session, key: str, *, state: Any = _UNSET, data: Any = _UNSET) -> None:
    """Insert or update one key (flushed, not committed); an empty key is removed."""
    for _attempt in range(3):
        try:
            with session.begin_nested():
                row = session.execute(select(FsmRecord).where(FsmRecord.key == key)).scalars().first()
                new_state = (row.state if row else None) if state is _UNSET else state
                new_data = (dict(row.data or {}) if row else {}) if data is _UNSET else dict(data)
                if new_state is None and not new_data:
                    if row is not None:
                        session.execute(delete(FsmRecord).where(FsmRecord.key == key))
                elif row is None:
                    session.add(FsmRecord(key=key, state=new_state, data=new_data, updated_at=utcnow()))
                else:
                    row.state, row.data, row.updated_at = new_state, new_data, utcnow()
                session.flush()
            return
        except IntegrityError:
            continue  # another process created the key first: retry as an update
    raise RuntimeError(f"could not store FSM state for {key}")
