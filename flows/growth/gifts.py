"""Gifts: granted once per owner and type, redeemed by the owner's own partner, reminded
before they expire, and those reminders stopped by redemption.

Codes are random (``secrets``) over an alphabet without look-alikes (no 0/O, 1/I/L), so an
owner can read one aloud at the counter and nobody can guess the next one. A redeemed gift
cancels its queued reminders twice over: ``cancel_topic`` at redemption, and a send-time
check (``register_suppressions``) for reminders planned by another process meanwhile.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from flows.delivery.outbox import Candidate, Push, Suppressions, cancel_topic, enqueue, job_scope
from flows.errors import AutoCircleError
from flows.growth.gift_types import DEFAULT_GIFT_TYPES, GiftType
from flows.templating import Renderer
from storage.db import rowcount
from storage.events import EventKind, record
from storage.gift_models import GiftGrant
from storage.models import MessageClass, Owner

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
REMINDER_TOPIC = "gift_reminder"
REDEEMED = "gift_redeemed"
DEFAULT_REMINDER_OFFSETS = (timedelta(days=3), timedelta(days=1))
_SEPARATORS = re.compile(r"[\s\-_]")


class GiftError(AutoCircleError):
    """A gift code could not be redeemed; each subclass has its own answer."""


class UnknownGiftCodeError(GiftError):
    """No gift has this code (mistyped or made up)."""


class ExpiredGiftCodeError(GiftError):
    """The gift's validity has passed."""


class UsedGiftCodeError(GiftError):
    """The gift was already redeemed."""


class ForeignGiftCodeError(GiftError):
    """The gift belongs to an owner of another partner."""


class UnknownGiftTypeError(AutoCircleError):
    """The gift type is not in the catalogue."""


@dataclass(frozen=True)
class Grant:
    id: int
    owner_id: int
    gift_type: str
    code: str
    granted_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    value: str  # in the owner's locale
    created: bool = False  # True when this call made the grant

    def status(self, now: datetime) -> str:
        """``redeemed``, ``expired`` or ``active``."""
        if self.redeemed_at is not None:
            return "redeemed"
        return "expired" if now >= self.expires_at else "active"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str:
    """What a partner typed, as stored: upper case, spaces and dashes removed."""
    return _SEPARATORS.sub("", text or "").upper()


def is_well_formed(code: str) -> bool:
    return len(code) == CODE_LENGTH and all(c in CODE_ALPHABET for c in code)


def _to_grant(row: GiftGrant, locale: str | None, catalogue: Mapping[str, GiftType], created: bool = False) -> Grant:
    return Grant(
        id=row.id or 0,
        owner_id=row.owner_id,
        gift_type=row.gift_type,
        code=row.code,
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        redeemed_at=row.redeemed_at,
        value=value_of(row.gift_type, locale, catalogue),
        created=created,
    )


def value_of(gift_type: str, locale: str | None, catalogue: Mapping[str, GiftType] = DEFAULT_GIFT_TYPES) -> str:
    """A gift type's value in words, in the locale the message around it is written in."""
    kind = catalogue.get(gift_type)
    return kind.value(locale) if kind else gift_type


def _find(session: Session, owner_id: int, gift_type: str) -> GiftGrant | None:
    return (
        session.execute(
            select(GiftGrant).where(col(GiftGrant.owner_id) == owner_id, col(GiftGrant.gift_type) == gift_type)
        )
        .scalars()
        .first()
    )


def grant(
    session: Session,
    owner_id: int,
    gift_type: str,
    now: datetime,
    *,
    renderer: Renderer | None = None,
    catalogue: Mapping[str, GiftType] = DEFAULT_GIFT_TYPES,
) -> Grant:
    """Give the owner this gift once; a second call returns the first grant unchanged.

    With a ``renderer`` a new grant is announced to the owner through the outbox."""
    kind = catalogue.get(gift_type)
    if kind is None:
        raise UnknownGiftTypeError(f"unknown gift type {gift_type!r}")
    owner = session.get(Owner, owner_id)
    if owner is None:
        raise LookupError(f"owner {owner_id} not found")
    existing = _find(session, owner_id, gift_type)
    if existing is not None:
        return _to_grant(existing, owner.locale, catalogue)
    for _ in range(5):
        row = GiftGrant(
            owner_id=owner_id,
            gift_type=gift_type,
            code=new_code(),
            granted_at=now,
            expires_at=now + timedelta(days=kind.validity_days),
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            existing = _find(session, owner_id, gift_type)
            if existing is not None:  # granted by someone else meanwhile
                return _to_grant(existing, owner.locale, catalogue)
            continue  # a code collision: draw again
        result = _to_grant(row, owner.locale, catalogue, created=True)
        if renderer is not None:
            _announce(session, renderer, owner, result, catalogue)
        return result
    raise RuntimeError("could not draw a free gift code")


def _announce(session: Session, renderer: Renderer, owner: Owner, g: Grant, catalogue: Mapping[str, GiftType]) -> None:
    if owner.telegram_user_id is None:
        return
    loc = renderer.locale_for(owner.locale)
    text = renderer.render(
        "gifts/granted", loc, value=value_of(g.gift_type, loc, catalogue), code=g.code, expires_at=g.expires_at
    )
    enqueue(
        session,
        Push(
            dedupe_key=f"gift-granted:{g.id}",
            chat_id=owner.telegram_user_id,
            owner_id=owner.id,
            text=text,
            message_class=MessageClass.transactional,
            expires_at=g.expires_at,
        ),
    )


def redeem(
    session: Session,
    partner_id: int,
    code: str,
    now: datetime,
    *,
    locale: str | None = None,
    catalogue: Mapping[str, GiftType] = DEFAULT_GIFT_TYPES,
) -> Grant:
    """Mark the gift with this code redeemed by the partner (their own owners only); the
    returned value is worded in ``locale`` (the partner's)."""
    wanted = normalize_code(code)
    row = None
    if is_well_formed(wanted):
        row = session.execute(select(GiftGrant).where(col(GiftGrant.code) == wanted)).scalars().first()
    if row is None:
        raise UnknownGiftCodeError(wanted)
    owner = session.get(Owner, row.owner_id)
    if owner is None or owner.partner_id != partner_id:
        raise ForeignGiftCodeError(wanted)  # says nothing about its state to another partner
    if row.redeemed_at is not None:
        raise UsedGiftCodeError(wanted)
    if now >= row.expires_at:
        raise ExpiredGiftCodeError(wanted)
    done = session.execute(
        update(GiftGrant)
        .where(col(GiftGrant.id) == row.id, col(GiftGrant.redeemed_at).is_(None))
        .values(redeemed_at=now, redeemed_by_partner_id=partner_id)
    )
    if rowcount(done) != 1:  # redeemed at the same moment at another counter
        raise UsedGiftCodeError(wanted)
    session.refresh(row)
    record(
        session,
        row.owner_id,
        EventKind.gift_redeemed,
        now,
        gift_type=row.gift_type,
        grant_id=row.id,
        partner_id=partner_id,
    )
    cancel_topic(session, REMINDER_TOPIC, f"gift:{row.id}", REDEEMED, now)
    return _to_grant(row, locale, catalogue)


def gifts_of(
    session: Session,
    owner_id: int,
    *,
    locale: str | None = None,
    catalogue: Mapping[str, GiftType] = DEFAULT_GIFT_TYPES,
) -> list[Grant]:
    """The owner's gifts, values worded in ``locale`` (default: the owner's own)."""
    if locale is None:
        owner = session.get(Owner, owner_id)
        locale = owner.locale if owner else None
    rows = session.execute(
        select(GiftGrant)
        .where(col(GiftGrant.owner_id) == owner_id)
        .order_by(col(GiftGrant.granted_at), col(GiftGrant.id))
    ).scalars()
    return [_to_grant(r, locale, catalogue) for r in rows]


def expiring(
    session: Session,
    offset: timedelta,
    now: datetime,
    *,
    catalogue: Mapping[str, GiftType] = DEFAULT_GIFT_TYPES,
) -> list[tuple[int, Grant]]:
    """Unredeemed grants that expire within ``offset`` from now (and have not yet expired):
    the date trigger "``offset`` before a gift expires" of reminder flows."""
    rows = session.execute(
        select(GiftGrant, col(Owner.locale))
        .join(Owner, col(Owner.id) == col(GiftGrant.owner_id))
        .where(
            col(GiftGrant.redeemed_at).is_(None),
            col(GiftGrant.expires_at) > now,
            col(GiftGrant.expires_at) <= now + offset,
        )
        .order_by(col(GiftGrant.expires_at), col(GiftGrant.id))
    ).all()
    return [(row.owner_id, _to_grant(row, locale, catalogue)) for row, locale in rows]


def plan_reminders(
    session: Session,
    renderer: Renderer,
    now: datetime,
    offsets: Sequence[timedelta] = DEFAULT_REMINDER_OFFSETS,
    *,
    catalogue: Mapping[str, GiftType] = DEFAULT_GIFT_TYPES,
) -> int:
    """Enqueue the reminder now due for each unredeemed gift (3 days and 1 day before expiry
    by default); idempotent per gift and offset, so the scheduler may run it every few minutes.
    Only the nearest offset is sent: a gift granted two days before expiry gets the 1-day one.
    Returns how many pushes were created."""
    if not offsets:
        return 0
    due: dict[int, tuple[timedelta, Grant]] = {}
    for offset in sorted(offsets, reverse=True):  # nearer offsets overwrite farther ones
        for _, g in expiring(session, offset, now, catalogue=catalogue):
            if g.expires_at - offset >= g.granted_at:
                due[g.id] = (offset, g)
    chats = _chats(session, {g.owner_id for _, g in due.values()})
    created = 0
    for offset, g in due.values():
        chat, locale = chats.get(g.owner_id, (None, None))
        if chat is None:
            continue
        days = max(1, round(offset / timedelta(days=1)))
        loc = renderer.locale_for(locale)
        text = renderer.render(
            "gifts/reminder",
            loc,
            value=value_of(g.gift_type, loc, catalogue),
            code=g.code,
            expires_at=g.expires_at,
            days=days,
        )
        created += enqueue(
            session,
            Push(
                dedupe_key=f"gift-reminder:{g.id}:{int(offset.total_seconds())}",
                chat_id=chat,
                owner_id=g.owner_id,
                text=text,
                message_class=MessageClass.transactional,
                expires_at=g.expires_at,
                topic=REMINDER_TOPIC,
                subject=f"gift:{g.id}",
            ),
        )
    return created


def _chats(session: Session, owner_ids: set[int]) -> dict[int, tuple[int | None, str | None]]:
    if not owner_ids:
        return {}
    rows = session.execute(
        select(col(Owner.id), col(Owner.telegram_user_id), col(Owner.locale)).where(col(Owner.id).in_(owner_ids))
    ).all()
    return {oid: (chat, locale) for oid, chat, locale in rows}


def redeemed_reminders(session: Session, candidates: Sequence[Candidate]) -> dict[int, str]:
    """Send-time check for ``gift_reminder`` pushes: veto those whose gift is redeemed."""
    by_grant: dict[int, list[int]] = {}
    for c in candidates:
        if c.subject and c.subject.startswith("gift:") and c.subject[5:].isdigit():
            by_grant.setdefault(int(c.subject[5:]), []).append(c.id)
    if not by_grant:
        return {}
    redeemed = session.execute(
        select(col(GiftGrant.id)).where(col(GiftGrant.id).in_(by_grant), col(GiftGrant.redeemed_at).is_not(None))
    ).scalars()
    return {outbox_id: REDEEMED for gid in redeemed for outbox_id in by_grant[gid]}


def register_suppressions(suppressions: Suppressions) -> Suppressions:
    """Install the "gift redeemed" veto on the sender's suppressions; returns them."""
    suppressions.register(REMINDER_TOPIC, redeemed_reminders)
    return suppressions


def owner_name(session: Session, owner_id: int) -> str:
    owner = session.get(Owner, owner_id)
    return owner.name if owner else ""


def reminder_job(renderer: Renderer, offsets: Sequence[timedelta] = DEFAULT_REMINDER_OFFSETS) -> Callable[[Any], int]:
    """A scheduler job: ``scheduler.every("gifts.reminders", reminder_job(r), minutes=15)``.

    The job gets a context with ``engine``, ``now`` (the application's clock) and ``policy``;
    it is the transaction boundary, so it commits."""

    def job(ctx: Any) -> int:
        with job_scope(ctx) as session:
            return plan_reminders(session, renderer, ctx.now, offsets)

    return job
