"""The funnel's first stage: an offer shown to an owner (by ``/offers`` or a flow's ``offer``
step), written once per offer and owner however often it is shown (INSERT … ON CONFLICT DO
NOTHING on the unique pair), so counting rows counts owners reached."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session

from storage.db import dialect_insert, table_of
from storage.merchant_models import OfferShown


def record_shown(
    session: Session, owner_id: int, offer_ids: Iterable[int], now: datetime, *, via: str = "offers"
) -> None:
    rows = [{"offer_id": i, "owner_id": owner_id, "first_at": now, "via": via} for i in dict.fromkeys(offer_ids)]
    if not rows:
        return
    session.execute(
        dialect_insert(session.get_bind().dialect.name, table_of(OfferShown))
        .values(rows)
        .on_conflict_do_nothing(index_elements=["offer_id", "owner_id"])
    )
