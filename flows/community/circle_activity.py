"""Circle chatter written in batches: the activity a plain group message records, for many.

Plain messages in an owner circle are the bot's most frequent update and need no answer; all
the bot does with one is count it (``circles.record_message``: a ``circle_message`` event for
the owner behind the sender and the owner's activity counters). The update path collects them
(``ChatterBuffer``) and ``write_chatter`` stores a batch: the senders resolved to owners in
one SELECT, the events and counters by ``storage.events.append_many``. What is written equals
what ``record_message`` writes one message at a time (people who are no owner are not
recorded), with each message's own time.

The buffer lives in the bot process, so a process killed without stopping loses what it held
(at most one flush interval of chatter counts; the messages themselves stay in Telegram); a
stop writes it first (``bot.circle_lane``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from storage.events import EventKind, append_many
from storage.models import Owner
from storage.outbox import in_chunks


@dataclass(frozen=True)
class Chatter:
    """One plain message in a circle: where, who (a Telegram user id), what kind, when."""

    circle_id: int
    user_id: int
    kind: str
    at: datetime


class ChatterBuffer:
    """The messages waiting for the next write, in arrival order (one event loop adds)."""

    def __init__(self) -> None:
        self._rows: list[Chatter] = []

    def add(self, chatter: Chatter) -> int:
        self._rows.append(chatter)
        return len(self._rows)

    def drain(self) -> list[Chatter]:
        rows, self._rows = self._rows, []
        return rows

    def requeue(self, rows: list[Chatter], keep: int) -> int:
        """Put back drained ``rows`` a write failed on, before what came in since; at most the
        newest ``keep`` stay. Returns how many of the oldest were dropped."""
        held = rows + self._rows
        dropped = max(0, len(held) - keep)
        self._rows = held[dropped:]
        return dropped

    def __len__(self) -> int:
        return len(self._rows)


def write_chatter(session: Session, rows: Sequence[Chatter]) -> int:
    """Record a batch of circle messages (flushed, not committed); returns how many were
    an owner's and so recorded."""
    users = sorted({row.user_id for row in rows})
    owners: dict[int | None, int | None] = {}
    for chunk in in_chunks(users):
        owners.update(
            session.exec(
                select(col(Owner.telegram_user_id), col(Owner.id)).where(col(Owner.telegram_user_id).in_(chunk))
            ).all()
        )
    events = [
        (owners[row.user_id], row.at, {"circle_id": row.circle_id, "content": row.kind})
        for row in rows
        if row.user_id in owners
    ]
    append_many(session, EventKind.circle_message, events)
    return len(events)
