"""What a partner may see of their owners: lists, one profile, a timeline.

Every query is scoped by ``partner_id`` (``None`` only for operators), so a partner asking
for someone else's owner gets "not found", never the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from flows.community.phones import mask
from flows.reports.owner_export import mask_vin
from storage.models import Event, FunnelStage, Owner, Vehicle

STAGES = {s.value for s in FunnelStage}


@dataclass(frozen=True)
class OwnerLine:
    owner_id: int
    ref: str
    name: str
    stage: str
    product_line: str
    phone: str


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str


@dataclass(frozen=True)
class OwnerProfile:
    line: OwnerLine
    familiarity: str | None
    last_active_at: datetime | None
    vehicles: list[tuple[str, str, str]] = field(default_factory=list)  # vin, plate, model
    timeline: list[TimelineItem] = field(default_factory=list)


def _line(owner: Owner, masked: bool) -> OwnerLine:
    return OwnerLine(
        owner_id=owner.id or 0,
        ref=owner.external_id or str(owner.id),
        name=owner.name,
        stage=owner.stage,
        product_line=owner.product_line,
        phone=mask(owner.phone) if masked else (owner.phone or ""),
    )


def list_owners(
    session: Session, partner_id: int | None, text_filter: str = "", limit: int = 30
) -> tuple[list[OwnerLine], int]:
    """Owners matching a stage keyword or a name/ref/phone fragment; returns (page, total)."""
    conditions = []
    if partner_id is not None:
        conditions.append(col(Owner.partner_id) == partner_id)
    needle = text_filter.strip()
    if needle in STAGES:
        conditions.append(col(Owner.stage) == needle)
    elif needle in ("passenger", "commercial"):
        conditions.append(col(Owner.product_line) == needle)
    elif needle:
        like = f"%{needle}%"
        conditions.append(
            or_(col(Owner.name).like(like), col(Owner.external_id).like(like), col(Owner.phone).like(like))
        )
    total = session.execute(select(func.count()).select_from(Owner).where(*conditions)).scalar_one()
    page = session.execute(select(Owner).where(*conditions).order_by(col(Owner.id)).limit(limit)).scalars()
    masked = partner_id is not None
    return [_line(o, masked) for o in page], total


def owner_by_ref(session: Session, ref: str, partner_id: int | None = None) -> Owner | None:
    """An owner as people name them: the car maker's owner id (``external_id``), else our
    numeric id; ``None`` when there is none, or it is not this partner's (``partner_id``)."""
    ref = ref.strip()[:64]
    owner: Owner | None = session.execute(select(Owner).where(col(Owner.external_id) == ref)).scalars().first()
    if owner is None and ref.isdigit():
        owner = session.get(Owner, int(ref))
    if owner is None or (partner_id is not None and owner.partner_id != partner_id):
        return None
    return owner


def owner_profile(session: Session, partner_id: int | None, ref: str, timeline_size: int = 15) -> OwnerProfile | None:
    """One owner by external id (or numeric id), if visible to this partner."""
    owner = owner_by_ref(session, ref, partner_id)
    if owner is None:
        return None
    vehicles = session.execute(
        select(col(Vehicle.vin), col(Vehicle.plate), col(Vehicle.model)).where(col(Vehicle.owner_id) == owner.id)
    ).all()
    events = session.execute(
        select(col(Event.at), col(Event.kind))
        .where(col(Event.owner_id) == owner.id)
        .order_by(col(Event.at).desc(), col(Event.id).desc())
        .limit(timeline_size)
    ).all()
    masked = partner_id is not None
    return OwnerProfile(
        line=_line(owner, masked),
        familiarity=owner.familiarity,
        last_active_at=owner.last_active_at,
        vehicles=[(mask_vin(v) if masked else v, p or "", m or "") for v, p, m in vehicles],
        timeline=[TimelineItem(at, kind) for at, kind in events],
    )
