"""Owner onboarding: from ``/start`` (with or without a personal token) to a verified owner.

Verification matches what the person proves (their own phone contact, or the last six
characters of a VIN) against the imported records, the inviting partner's owners first.
Three failed matches tell the partner, who helps in person. People not in the database can
register as prospects and are routed to a partner of the dealer they choose.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlmodel import Session

from flows import referrals
from flows.outbox import Push, enqueue
from flows.phones import to_e164
from flows.segment_rules import completed_months, familiarity_for_months
from flows.templating import Renderer
from storage.events import EventKind, record
from storage.segments import Familiarity  # onboarding's answer is the segment's familiarity
from storage.models import (
    Circle,
    Dealer,
    FunnelStage,
    InviteToken,
    Owner,
    Partner,
    PartnerRole,
    Prospect,
    Vehicle,
)

MAX_FAILURES = 3
PUBLIC_START_PARAMS = frozenset({"circle", "verify"})  # shared links, not personal tokens
VIN_SUFFIX = re.compile(r"^[A-HJ-NPR-Z0-9]{6}$")


class StartKind(str, enum.Enum):
    already_verified = "already_verified"
    token_ok = "token_ok"
    token_unknown = "token_unknown"
    token_taken = "token_taken"
    plain = "plain"


@dataclass(frozen=True)
class StartResult:
    kind: StartKind
    owner_id: int | None = None
    partner_id: int | None = None
    owner_name: str = ""
    referral: referrals.Touch = referrals.Touch.not_referral  # what a referral link did


class MatchFailure(str, enum.Enum):
    not_found = "not_found"
    ambiguous = "ambiguous"
    taken = "taken"
    bad_format = "bad_format"


@dataclass(frozen=True)
class MatchResult:
    owner_id: int | None = None
    owner_name: str = ""
    failure: MatchFailure | None = None

    @property
    def ok(self) -> bool:
        return self.owner_id is not None


def start(session: Session, user_id: int, token: str | None, now: datetime) -> StartResult:
    """Resolve ``/start [TOKEN]``; a valid personal token marks its owner ``online``; a
    referral token records the first touch and continues as a plain start."""
    touched = referrals.Touch.not_referral
    if referrals.is_referral_token(token):
        touched = referrals.touch(session, user_id, token, now)
        token = None
    linked = session.execute(select(Owner).where(Owner.telegram_user_id == user_id)).scalars().first()
    if linked is not None and linked.stage == FunnelStage.verified.value:
        return StartResult(StartKind.already_verified, linked.id, linked.partner_id, linked.name, touched)
    if not token or token in PUBLIC_START_PARAMS:
        return StartResult(StartKind.plain)
    invite = session.execute(select(InviteToken).where(InviteToken.token == token)).scalars().first()
    if invite is None:
        return StartResult(StartKind.token_unknown)
    owner = session.get(Owner, invite.owner_id)
    if owner is None:
        return StartResult(StartKind.token_unknown)
    if owner.telegram_user_id is not None and owner.telegram_user_id != user_id:
        return StartResult(StartKind.token_taken)
    if invite.used_at is None:
        invite.used_at = now
    mark_online(session, owner, now)
    return StartResult(StartKind.token_ok, owner.id, invite.partner_id or owner.partner_id, owner.name)


def mark_online(session: Session, owner: Owner, now: datetime) -> None:
    """The funnel's ``online``: the owner's Telegram user started the bot."""
    if owner.online_at is None:
        owner.online_at = now
        record(session, owner.id, EventKind.online, now)
    if owner.stage in (FunnelStage.imported.value, FunnelStage.invited.value):
        owner.stage = FunnelStage.online.value
    owner.updated_at = now


def verify_by_phone(
    session: Session,
    user_id: int,
    phone: str,
    *,
    hint_owner_id: int | None,
    hint_partner_id: int | None,
    now: datetime,
    referral_policy: referrals.ReferralPolicy = referrals.DEFAULT_POLICY,
) -> MatchResult:
    """Match the user's own shared contact against imported phone numbers."""
    e164 = to_e164(phone)
    if e164 is None:
        return MatchResult(failure=MatchFailure.bad_format)
    candidates = list(session.execute(select(Owner).where(Owner.phone == e164)).scalars())
    return _link_best(session, user_id, candidates, hint_owner_id, hint_partner_id, now, "phone", referral_policy)


def verify_by_vin_suffix(
    session: Session,
    user_id: int,
    text: str,
    *,
    hint_owner_id: int | None,
    hint_partner_id: int | None,
    now: datetime,
    referral_policy: referrals.ReferralPolicy = referrals.DEFAULT_POLICY,
) -> MatchResult:
    """Match the last six characters of a VIN (the inviting partner's owners first)."""
    suffix = re.sub(r"[\s\-]", "", text).upper()
    if not VIN_SUFFIX.match(suffix):
        return MatchResult(failure=MatchFailure.bad_format)
    query = select(Owner).join(Vehicle, Vehicle.owner_id == Owner.id)
    scoped = None
    if hint_owner_id is not None:
        scoped = query.where(Owner.id == hint_owner_id)
    elif hint_partner_id is not None:
        scoped = query.where(Owner.partner_id == hint_partner_id)
    pattern = "%" + suffix
    candidates: list[Owner] = []
    if scoped is not None:
        candidates = list(session.execute(scoped.where(Vehicle.vin.like(pattern))).scalars().unique())
    if not candidates:
        candidates = list(session.execute(query.where(Vehicle.vin.like(pattern))).scalars().unique())
    return _link_best(session, user_id, candidates, hint_owner_id, hint_partner_id, now, "vin", referral_policy)


def _link_best(
    session: Session,
    user_id: int,
    candidates: list[Owner],
    hint_owner_id: int | None,
    hint_partner_id: int | None,
    now: datetime,
    via: str,
    referral_policy: referrals.ReferralPolicy,
) -> MatchResult:
    if not candidates:
        return MatchResult(failure=MatchFailure.not_found)
    free = [o for o in candidates if o.telegram_user_id in (None, user_id)]
    if not free:
        return MatchResult(failure=MatchFailure.taken)
    for narrow in (
        [o for o in free if o.id == hint_owner_id],
        [o for o in free if hint_partner_id is not None and o.partner_id == hint_partner_id],
        free,
    ):
        if len(narrow) == 1:
            owner = narrow[0]
            link_owner(session, owner, user_id, now, via, referral_policy)
            return MatchResult(owner_id=owner.id, owner_name=owner.name)
        if len(narrow) > 1:
            return MatchResult(failure=MatchFailure.ambiguous)
    return MatchResult(failure=MatchFailure.not_found)


def link_owner(
    session: Session, owner: Owner, user_id: int, now: datetime, via: str,
    referral_policy: referrals.ReferralPolicy = referrals.DEFAULT_POLICY,
) -> None:
    """Link the Telegram user and mark the owner ``verified`` (and ``online`` if not yet);
    a referral this user was touched by qualifies under ``referral_policy``."""
    owner.telegram_user_id = user_id
    mark_online(session, owner, now)
    if owner.verified_at is None:
        owner.verified_at = now
    owner.stage = FunnelStage.verified.value
    owner.unreachable = False
    session.flush()
    record(session, owner.id, EventKind.verified, now, via=via)
    referrals.on_verified(session, owner.id, now, policy=referral_policy)


def record_failure(
    session: Session,
    renderer: Renderer,
    *,
    user_id: int,
    user_label: str,
    failures: int,
    hint_owner_id: int | None,
    hint_partner_id: int | None,
    now: datetime,
) -> bool:
    """Log a failed match; at the third, tell the partner. Returns True when they were told."""
    record(session, hint_owner_id, EventKind.verification_failed, now, user_id=user_id, attempt=failures)
    if failures < MAX_FAILURES:
        return False
    partner = session.get(Partner, hint_partner_id) if hint_partner_id else None
    if partner is None or partner.telegram_user_id is None:
        return False
    owner = session.get(Owner, hint_owner_id) if hint_owner_id else None
    text = renderer.render(
        "partner/verification_failed",
        None,
        user_label=user_label,
        user_id=user_id,
        owner_name=owner.name if owner else "",
        owner_ref=(owner.external_id or str(owner.id)) if owner else "",
    )
    enqueue(
        session,
        Push(
            dedupe_key=f"verify-failed:{user_id}:{now:%Y%m%d}",
            chat_id=partner.telegram_user_id,
            partner_id=partner.id,
            text=text,
        ),
    )
    return True


def suggest_familiarity(
    purchase: date | None, today: date, novice_max_months: int, skilled_max_months: int
) -> Familiarity:
    """Cold-start maturity with the car, from its age (the owner may correct it)."""
    if purchase is None:
        return Familiarity.novice
    return familiarity_for_months(completed_months(purchase, today), novice_max_months, skilled_max_months)


def earliest_purchase(session: Session, owner_id: int) -> date | None:
    return session.execute(
        select(func.min(Vehicle.purchase_date)).where(Vehicle.owner_id == owner_id)
    ).scalar()


def set_familiarity(session: Session, owner_id: int, value: Familiarity, now: datetime) -> None:
    owner = session.get(Owner, owner_id)
    if owner is None:
        return
    owner.familiarity = value.value
    owner.updated_at = now
    record(session, owner_id, EventKind.familiarity_set, now, value=value.value)


def set_locale(session: Session, owner_id: int, locale: str, now: datetime) -> None:
    owner = session.get(Owner, owner_id)
    if owner is None:
        return
    owner.locale = locale
    owner.updated_at = now
    record(session, owner_id, EventKind.locale_set, now, value=locale)


def circle_link_for(session: Session, owner_id: int) -> str | None:
    """The invite link of the owner's partner's circle for the owner's product line."""
    owner = session.get(Owner, owner_id)
    if owner is None or owner.partner_id is None:
        return None
    circles = list(
        session.execute(
            select(Circle).where(Circle.partner_id == owner.partner_id).order_by(Circle.id)
        ).scalars()
    )
    for circle in circles:
        if circle.product_line == owner.product_line and circle.invite_link:
            return circle.invite_link
    return next((c.invite_link for c in circles if c.invite_link), None)


@dataclass(frozen=True)
class DealerChoice:
    code: str
    name: str


def dealers(session: Session) -> list[DealerChoice]:
    rows = session.execute(select(Dealer.code, Dealer.name).order_by(Dealer.code)).all()
    return [DealerChoice(code, name or code) for code, name in rows]


@dataclass(frozen=True)
class ProspectResult:
    prospect_id: int
    partner_id: int | None
    partner_name: str


def register_prospect(
    session: Session,
    renderer: Renderer,
    *,
    user_id: int,
    name: str,
    phone: str,
    model: str,
    dealer_code: str,
    now: datetime,
) -> ProspectResult:
    """Store a prospect and route them to the dealer's sales partner with the fewest."""
    partner = _route_partner(session, dealer_code)
    prospect = session.execute(
        select(Prospect).where(Prospect.telegram_user_id == user_id)
    ).scalars().first()
    if prospect is None:
        prospect = Prospect(telegram_user_id=user_id, name=name, phone=phone, created_at=now)
        session.add(prospect)
    prospect.name, prospect.phone, prospect.model_of_interest = name, phone, model
    prospect.dealer_code = dealer_code
    prospect.partner_id = partner.id if partner else None
    session.flush()
    referrals.on_prospect(session, prospect.id, user_id)
    record(session, None, EventKind.prospect_registered, now, prospect_id=prospect.id, dealer=dealer_code)
    if partner is not None and partner.telegram_user_id is not None:
        enqueue(
            session,
            Push(
                dedupe_key=f"prospect:{prospect.id}",
                chat_id=partner.telegram_user_id,
                partner_id=partner.id,
                text=renderer.render(
                    "partner/new_prospect", None, prospect_id=prospect.id, name=name,
                    phone=phone, model=model, user_id=user_id,
                ),
            ),
        )
    return ProspectResult(prospect.id or 0, partner.id if partner else None, partner.name if partner else "")


def _route_partner(session: Session, dealer_code: str) -> Partner | None:
    dealer_id = session.execute(select(Dealer.id).where(Dealer.code == dealer_code)).scalar()
    if dealer_id is None:
        return None
    load = (
        select(Partner, func.count(Prospect.id).label("n"))
        .outerjoin(Prospect, Prospect.partner_id == Partner.id)
        .where(Partner.dealer_id == dealer_id, Partner.active.is_(True))
        .group_by(Partner.id)
        .order_by((Partner.role != PartnerRole.sales.value), "n", Partner.id)
    )
    row = session.execute(load).first()
    return row[0] if row else None
