"""The audit log: who did what security-relevant thing to whom, as rows (issue 11, item 9).

One function appends (``record_audit``); one reads (``audit_entries``), one counts
(``count_audit``: how many rows of a kind one actor has since a moment, e.g. failed code
attempts for a lockout). Kinds are named once here so the CLI can filter by them and a typo
is an error, not a silent new kind.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from storage.clock import utcnow
from storage.security_models import AuditEntry


class AuditKind(str, enum.Enum):
    verification_failed = "verification_failed"
    verification_locked = "verification_locked"
    partner_registered = "partner_registered"
    partner_code_issued = "partner_code_issued"
    partner_code_failed = "partner_code_failed"  # a /partner CODE that did not redeem: counted for the lockout
    partner_deactivated = "partner_deactivated"
    partner_reactivated = "partner_reactivated"
    handover = "handover"
    invites_issued = "invites_issued"
    operator_action = "operator_action"
    forged_callback = "forged_callback"
    telematics_refused = "telematics_refused"
    merchant_staff_code_issued = "merchant_staff_code_issued"  # issue 13: merchant staff and redemptions
    merchant_staff_registered = "merchant_staff_registered"
    merchant_staff_code_failed = "merchant_staff_code_failed"
    merchant_redemption_undone = "merchant_redemption_undone"
    demand_staff_code_issued = "demand_staff_code_issued"  # issue 14: demand-side staff
    demand_staff_registered = "demand_staff_registered"
    demand_staff_code_failed = "demand_staff_code_failed"


def record_audit(
    session: Session,
    kind: enum.Enum,
    *,
    actor: str = "system",
    subject: str = "",
    at: datetime | None = None,
    **data: Any,
) -> AuditEntry:
    """Append one audit row in the caller's unit of work (it commits with it)."""
    # kind: an AuditKind, or a capability's own str enum (flows.merchants' MerchantAuditKind)
    entry = AuditEntry(kind=str(kind.value), actor=actor[:64], subject=subject[:128], data=data, at=at or utcnow())
    session.add(entry)
    return entry


def audit_entries(
    session: Session, *, since: datetime | None = None, kinds: Sequence[AuditKind] = (), limit: int | None = None
) -> list[AuditEntry]:
    """Audit rows oldest first, optionally from ``since`` and of some kinds only."""
    query = select(AuditEntry).order_by(col(AuditEntry.at), col(AuditEntry.id))
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    if kinds:
        query = query.where(col(AuditEntry.kind).in_([k.value for k in kinds]))
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def count_audit(session: Session, kind: enum.Enum, *, actor: str, since: datetime) -> int:
    """How many rows of ``kind`` ``actor`` has from ``since`` on (the audit row of a failed
    attempt doubles as its count: one row, audited and limited alike)."""
    query = (
        select(func.count())
        .select_from(AuditEntry)
        .where(col(AuditEntry.kind) == str(kind.value), col(AuditEntry.actor) == actor, col(AuditEntry.at) >= since)
    )
    return int(session.execute(query).scalar_one())
