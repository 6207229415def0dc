"""Telematics on the database: odometer readings from the car (signed ``POST /telematics``
or ``autocircle import telematics``) and the fault codes they carry.

Every reading passes the same odometer check as an owner's ``/mileage`` or a service visit
(``flows.service.due.record_odometer``); a fault code new to the car tells the owner and their
partner (rendered into the outbox, never sent from here). Functions flush, never commit.

The signature of a ``POST /telematics`` (``sign`` / ``check_signature``) lives here too, as plain
functions of bytes and seconds: HMAC-SHA256 over ``<timestamp>.<body>``, so that the time a
sender signed is inside the signature and an old request cannot be replayed.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

from flows.delivery.outbox import Push, enqueue
from flows.service.due import record_odometer, unknown_vin, vehicle_label, vehicles_by_vin
from flows.service.service_plan import FaultPolicy, OdometerLimits, OdometerProblemKind
from flows.templating import Renderer
from storage.audit import AuditKind, record_audit
from storage.db import pk
from storage.importing.records import RowOutcome, Status
from storage.importing.telematics import TelematicsRow
from storage.models import Owner, Partner, Vehicle
from storage.service_models import VehicleFault

# --- the signature of a POST /telematics -----------------------------------------------------

_SIGNED = re.compile(r"(?:t=(\d{1,12})\s*,\s*)?sha256=([0-9a-fA-F]{64})")
_TIMESTAMP = re.compile(r"\d{1,12}")


class SignatureProblem(str, enum.Enum):
    """Why a request's signature is refused; ``status`` is the HTTP answer."""

    malformed = "malformed"  # no header, or not ``t=<seconds>,sha256=<64 hex>``
    no_timestamp = "no_timestamp"  # a signature without the time it was made
    mismatch = "mismatch"  # not made with the shared secret over this timestamp and body
    stale = "stale"  # made longer ago (or further ahead) than the allowed age: a replay

    @property
    def status(self) -> int:
        return 403 if self is SignatureProblem.mismatch else 401


def signature_input(timestamp: int, body: bytes) -> bytes:
    """What is signed: the Unix time in seconds, a dot, then the body exactly as sent."""
    return str(timestamp).encode() + b"." + body


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``X-AutoCircle-Signature`` value for ``body`` signed at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, signature_input(timestamp, body), hashlib.sha256).hexdigest()
    return f"t={timestamp},sha256={digest}"


@dataclass(frozen=True)
class SignatureHeader:
    """A parsed signature header: the hex digest and the timestamp (``None`` when absent)."""

    digest: str
    timestamp: int | None


def parse_signature(header: str, timestamp_header: str | None = None) -> SignatureHeader | None:
    """``t=<seconds>,sha256=<hex>`` (or ``sha256=<hex>`` with the time in
    ``X-AutoCircle-Timestamp``); ``None`` when the header is not one of these."""
    match = _SIGNED.fullmatch(header.strip())
    if match is None:
        return None
    timestamp = match.group(1)
    if timestamp is None and timestamp_header is not None:
        stamp = timestamp_header.strip()
        if not _TIMESTAMP.fullmatch(stamp):
            return None
        timestamp = stamp
    return SignatureHeader(match.group(2).lower(), int(timestamp) if timestamp is not None else None)


def check_signature(
    secret: bytes, signed: SignatureHeader, body: bytes, *, now_s: float, max_age_s: float
) -> SignatureProblem | None:
    """``None`` when ``body`` was signed with ``secret`` within ``max_age_s`` of ``now_s``
    (either way: a sender's clock may run a little ahead). Compared in constant time."""
    if signed.timestamp is None:
        return SignatureProblem.no_timestamp
    expected = hmac.new(secret, signature_input(signed.timestamp, body), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signed.digest):
        return SignatureProblem.mismatch
    if abs(now_s - signed.timestamp) > max_age_s:
        return SignatureProblem.stale
    return None


def record_refusal(session: Session, reason: str, *, remote: str | None, status: int, **data: Any) -> None:
    """One audit row for a refused telematics request (who sent what that was refused)."""
    record_audit(
        session,
        AuditKind.telematics_refused,
        actor=f"telematics:{remote or '?'}",
        subject=reason,
        status=status,
        **data,
    )


# --- telematics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One telematics report: odometer at an instant (aware), with any active fault codes."""

    vin: str
    km: int
    at: datetime
    fault_codes: tuple[str, ...] = ()


class ReadingStatus(str, enum.Enum):
    applied = "applied"
    unchanged = "unchanged"  # the same reading was stored before
    rejected = "rejected"  # contradicts the car's other values, or dated in the future
    unknown_vin = "unknown_vin"


@dataclass(frozen=True)
class ReadingResult:
    index: int
    vin: str
    status: ReadingStatus
    reason: str | None = None
    new_faults: int = 0
    alerts: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index, "vin": self.vin, "status": self.status.value}
        if self.reason:
            data["reason"] = self.reason
        if self.new_faults:
            data["new_faults"] = self.new_faults
        return data


@dataclass(frozen=True)
class TelematicsResult:
    results: tuple[ReadingResult, ...] = field(default_factory=tuple)

    def count(self, status: ReadingStatus) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def new_faults(self) -> int:
        return sum(r.new_faults for r in self.results)

    @property
    def alerts(self) -> int:
        return sum(r.alerts for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": len(self.results),
            **{status.value: self.count(status) for status in ReadingStatus},
            "new_faults": self.new_faults,
            "alerts": self.alerts,
            "items": [r.to_dict() for r in self.results],
        }


def apply_readings(
    session: Session,
    renderer: Renderer,
    readings: Sequence[Reading],
    now: datetime,
    *,
    limits: OdometerLimits,
    faults: FaultPolicy,
    source: str = "telematics",
    live: bool = True,
) -> TelematicsResult:
    """Apply a batch in time order; one result per reading, in the batch's order.

    A reading's fault codes are handled even when its odometer value is refused (the value
    may be a glitch; the fault is its own signal), but not for a reading dated in the future
    or for an unknown VIN."""
    vehicles = vehicles_by_vin(session, {r.vin for r in readings})
    results: dict[int, ReadingResult] = {}
    for index in sorted(range(len(readings)), key=lambda i: readings[i].at):
        reading = readings[index]
        vehicle = vehicles.get(reading.vin)
        if vehicle is None:
            results[index] = ReadingResult(index, reading.vin, ReadingStatus.unknown_vin, unknown_vin(reading.vin))
            continue
        outcome = record_odometer(
            session, vehicle, reading.km, reading.at, now, source=source, limits=limits, live=live
        )
        new = alerts = 0
        future = outcome.problem is not None and outcome.problem.kind is OdometerProblemKind.future
        if reading.fault_codes and not future:
            new, alerts = report_faults(
                session,
                renderer,
                vehicle,
                reading.fault_codes,
                reading.at,
                now,
                policy=faults,
                source=source,
                timezone=limits.timezone,
            )
        status = {
            Status.imported: ReadingStatus.applied,
            Status.unchanged: ReadingStatus.unchanged,
        }.get(outcome.status, ReadingStatus.rejected)
        reason = outcome.problem.reason() if outcome.problem else None
        results[index] = ReadingResult(index, reading.vin, status, reason, new, alerts)
    return TelematicsResult(tuple(results[i] for i in range(len(readings))))


class TelematicsRowApplier:
    """``apply`` for ``storage.importing.telematics.import_telematics``. File readings are
    history, not live: an undated current mileage does not bound them."""

    def __init__(self, renderer: Renderer, limits: OdometerLimits, faults: FaultPolicy, source: str, now: Any) -> None:
        self.renderer = renderer
        self.limits = limits
        self.faults = faults
        self.source = source
        self._now = now  # a callable returning aware UTC (storage.clock.utcnow)

    def __call__(self, session: Session, rows: Sequence[TelematicsRow]) -> list[RowOutcome]:
        readings = [Reading(r.vin, r.odometer_km, r.at, r.fault_codes) for r in rows]
        result = apply_readings(
            session,
            self.renderer,
            readings,
            self._now(),
            limits=self.limits,
            faults=self.faults,
            source=self.source,
            live=False,
        )
        outcomes = []
        for item in result.results:
            counts = {"new_faults": item.new_faults, "alerts": item.alerts}
            counts = {k: v for k, v in counts.items() if v}
            if item.status is ReadingStatus.unknown_vin:
                outcomes.append(RowOutcome.rejected("vin", item.reason or "", unknown_vins=1, **counts))
            elif item.status is ReadingStatus.rejected:
                outcomes.append(RowOutcome.rejected("odometer_km", item.reason or "", **counts))
            else:
                status = Status.imported if item.status is ReadingStatus.applied else Status.unchanged
                outcomes.append(RowOutcome(status, counts=tuple(counts.items())))
        return outcomes


# --- fault codes ----------------------------------------------------------------------------


def report_faults(
    session: Session,
    renderer: Renderer,
    vehicle: Vehicle,
    codes: Sequence[str],
    at: datetime,
    now: datetime,
    *,
    policy: FaultPolicy,
    source: str,
    timezone: str,
) -> tuple[int, int]:
    """Record fault codes reported for ``vehicle`` at ``at``; a code that starts a new
    occurrence and is recent tells the owner and the partner (one message each, listing the
    new codes). Returns (new occurrences, pushes enqueued). Idempotent for a re-sent report."""
    fresh: list[VehicleFault] = []
    for code in dict.fromkeys(codes):
        latest = (
            session.execute(
                select(VehicleFault)
                .where(col(VehicleFault.vehicle_id) == vehicle.id, col(VehicleFault.code) == code)
                .order_by(col(VehicleFault.last_seen_at).desc())
                .limit(1)
            )
            .scalars()
            .first()
        )
        window = policy.reopen_after
        if latest is not None and latest.first_seen_at - window <= at <= latest.last_seen_at + window:
            if at > latest.last_seen_at:
                latest.last_seen_at = at
            continue
        fault = VehicleFault(
            vehicle_id=pk(vehicle),
            code=code,
            first_seen_at=at,
            last_seen_at=at,
            source=source[:80],
            created_at=now,
        )
        session.add(fault)
        fresh.append(fault)
    session.flush()
    if not fresh or at < now - policy.alert_max_age:
        return len(fresh), 0
    for fault in fresh:
        fault.alerted_at = now
    return len(fresh), _alert(session, renderer, vehicle, fresh, at, timezone)


def _alert(
    session: Session,
    renderer: Renderer,
    vehicle: Vehicle,
    faults: Sequence[VehicleFault],
    at: datetime,
    timezone: str,
) -> int:
    owner = session.get(Owner, vehicle.owner_id)
    if owner is None:
        return 0
    codes = [f.code for f in faults]
    key = f"fault:{vehicle.id}:{faults[0].id}"
    label = vehicle_label(vehicle)
    local = at.astimezone(ZoneInfo(timezone))
    pushes = []
    if owner.telegram_user_id is not None:
        pushes.append(
            Push(
                dedupe_key=f"{key}:owner",
                chat_id=owner.telegram_user_id,
                owner_id=owner.id,
                partner_id=owner.partner_id,
                text=renderer.render("service/fault_owner", owner.locale, codes=codes, car=label, at=local),
                topic="fault",
                subject=f"vehicle:{vehicle.id}",
            )
        )
    partner = session.get(Partner, owner.partner_id) if owner.partner_id else None
    if partner is not None and partner.telegram_user_id is not None:
        pushes.append(
            Push(
                dedupe_key=f"{key}:partner",
                chat_id=partner.telegram_user_id,
                owner_id=owner.id,
                partner_id=partner.id,
                text=renderer.render(
                    "service/fault_partner",
                    None,
                    codes=codes,
                    car=label,
                    at=local,
                    owner_name=owner.name,
                    owner_ref=owner.external_id or str(owner.id),
                    online=owner.telegram_user_id is not None,
                ),
                topic="fault",
                subject=f"vehicle:{vehicle.id}",
            )
        )
    return sum(enqueue(session, push) for push in pushes)
