"""Tables of the incremental segment recompute (issue 17), created by migration 0015.

``SegmentDirty`` is a queue of owner ids whose segment inputs changed; database triggers append
to it (see the migration for why triggers and why a queue, not a flag on the owner row) and
``storage.segments.recompute`` deletes the rows it has read. The indexes let the incremental
run find the owners whose time-based buckets move between two runs by index range.
"""

from __future__ import annotations

from sqlalchemy import Index, func
from sqlmodel import Field, SQLModel

from storage.db import table_of
from storage.models import Owner, Vehicle


class SegmentDirty(SQLModel, table=True):
    """One change of an owner's segment inputs not yet seen by a recompute (duplicates allowed)."""

    __tablename__ = "segment_dirty"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int


_owner = table_of(Owner)
IX_OWNER_LAST_ACTIVE = Index("ix_owner_last_active_at", _owner.c.last_active_at)
IX_OWNER_ONLINE_SINCE = Index("ix_owner_online_since", func.coalesce(_owner.c.online_at, _owner.c.verified_at))
IX_VEHICLE_PURCHASE = Index("ix_vehicle_purchase_date", table_of(Vehicle).c.purchase_date)
