"""Owner onboarding: from ``/start`` (with or without a personal token) to a verified owner.

Verification matches what the person proves against the imported records, and it cannot be
won by guessing (issue 11):

* a VIN ending is matched only against the owner that the personal invite link names; without
  a link a VIN ending never searches the database (the reply asks for the phone contact or the
  personal link);
* a shared phone contact (the user's own, which Telegram vouches for) may find any owner, the
  inviting partner's first;
* every failed attempt is a ``verification_failure`` row; too many per Telegram user or per
  owner record inside a window lock verification (it survives restarts and ``/start``), a
  locked attempt is refused before any matching, and the partner (or the operators, for a
  plain ``/start``) hears once per lockout with the reasons. The owner record's lock holds
  for VIN endings only: the owner's own phone contact (which Telegram vouches for) still
  verifies them after strangers failed on their leaked link;
* "no match", "ambiguous" and "linked to another account" look the same to the person.

People not in the database can register as prospects and are routed to a partner of the
dealer they choose.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlmodel import Session, col

from flows.community import invites
from flows.community.phones import to_e164
from flows.delivery.outbox import Push, enqueue
from flows.growth import referrals
from flows.segments.rules import completed_months, familiarity_for_months
from flows.templating import Renderer
from storage.audit import AuditKind, record_audit
from storage.db import pk, table_of
from storage.events import EventKind, record
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
from storage.security_models import VerificationFailure
from storage.segments import Familiarity  # onboarding's answer is the segment's familiarity

PUBLIC_START_PARAMS = frozenset({"circle", "verify"})  # shared links, not personal tokens
VIN_SUFFIX = re.compile(r"^[A-HJ-NPR-Z0-9]{6}$")


class StartKind(str, enum.Enum):
    already_verified = "already_verified"
    token_ok = "token_ok"
    token_dead = "token_dead"  # unknown, expired, or its owner is linked to another account
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
    needs_link = "needs_link"  # a VIN ending without a personal link: nothing was searched
    locked = "locked"  # too many failures: refused before any matching


COUNTED = (MatchFailure.not_found, MatchFailure.ambiguous, MatchFailure.taken)


@dataclass(frozen=True)
class MatchResult:
    owner_id: int | None = None
    owner_name: str = ""
    failure: MatchFailure | None = None
    left: int = 0  # failed tries left before the lockout (after a counted failure)
    just_locked: bool = False  # this attempt started a lockout

    @property
    def ok(self) -> bool:
        return self.owner_id is not None


@dataclass(frozen=True)
class VerifyLimits:
    """The lockout (``Settings.security``): failures per Telegram user and per owner record
    inside a sliding window."""

    max_per_user: int = 5
    max_per_owner: int = 10
    window: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Attempt:
    """Who is trying, what their link named, and where a lockout notice goes."""

    user_id: int
    user_label: str = ""
    hint_owner_id: int | None = None
    hint_partner_id: int | None = None
    limits: VerifyLimits = VerifyLimits()
    operator_ids: Sequence[int] = ()


class Unresolved(enum.Enum):
    """``start``'s ``linked_owner_id`` when the caller has not looked the account up."""

    token = "unresolved"


UNRESOLVED = Unresolved.token


def start(
    session: Session,
    user_id: int,
    token: str | None,
    now: datetime,
    *,
    invite_valid_days: int = invites.DEFAULT_VALID_DAYS,
    linked_owner_id: int | Unresolved | None = UNRESOLVED,
) -> StartResult:
    """Resolve ``/start [TOKEN]``; a live personal token marks its owner ``online``; a
    referral token records the first touch and continues as a plain start. An unknown or
    expired token, or one whose owner another account already linked, is dead: it names no
    owner, so a VIN ending cannot be tried against anyone.

    ``linked_owner_id``: the owner already linked to ``user_id`` (``None``: none is), when the
    caller resolved it in this transaction (the bot's identity does, for every update), so a
    person not yet linked costs no lookup here; left out, it is looked up."""
    touched = referrals.Touch.not_referral
    if referrals.is_referral_token(token):
        touched = referrals.touch(session, user_id, token, now)
        token = None
    linked: Owner | None
    if isinstance(linked_owner_id, Unresolved):
        linked = session.execute(select(Owner).where(col(Owner.telegram_user_id) == user_id)).scalars().first()
    else:
        linked = session.get(Owner, linked_owner_id) if linked_owner_id is not None else None
    if linked is not None and linked.stage == FunnelStage.verified.value:
        return StartResult(StartKind.already_verified, linked.id, linked.partner_id, linked.name, touched)
    if not token or token in PUBLIC_START_PARAMS:
        return StartResult(StartKind.plain)
    found = session.execute(_token_statement(), {"token": token}).first()
    invite, owner = found if found is not None else (None, None)
    if invite is None or owner is None or invites.token_expired(invite, now, invite_valid_days):
        return StartResult(StartKind.token_dead)
    if owner.telegram_user_id is not None and owner.telegram_user_id != user_id:
        return StartResult(StartKind.token_dead)
    if invite.used_at is None:
        invite.used_at = now
    mark_online(session, owner, now)
    return StartResult(StartKind.token_ok, owner.id, invite.partner_id or owner.partner_id, owner.name)


@lru_cache(maxsize=1)
def _token_statement() -> Any:
    """A personal token and its owner in one query (bound ``token``), built once."""
    return (
        select(InviteToken, Owner)
        .outerjoin(Owner, col(Owner.id) == col(InviteToken.owner_id))
        .where(col(InviteToken.token) == bindparam("token"))
    )


def mark_online(session: Session, owner: Owner, now: datetime) -> None:
    """The funnel's ``online``: the owner's Telegram user started the bot. A repeated
    ``/start`` of an owner already online changes nothing, so it writes nothing (the update
    stays a reader: on SQLite it does not take the write lock across its replies)."""
    changed = False
    if owner.online_at is None:
        owner.online_at = now
        record(session, owner.id, EventKind.online, now)
        changed = True
    if owner.stage in (FunnelStage.imported.value, FunnelStage.invited.value):
        owner.stage = FunnelStage.online.value
        changed = True
    if changed:
        owner.updated_at = now


# --- counting failures ---------------------------------------------------------------------


def _failures(session: Session, by: str, value: int, since: datetime) -> int:
    return int(session.execute(_failures_statement(by), {"value": value, "since": since}).scalar() or 0)


@lru_cache(maxsize=2)
def _failures_statement(by: str) -> Any:
    """The failures of one user or owner record since a moment (bound ``value``, ``since``),
    built once: every ``/start`` and every attempt asks."""
    table = table_of(VerificationFailure)
    return select(func.count(table.c.id)).where(
        table.c[by] == bindparam("value"), table.c.at >= bindparam("since", type_=table.c.at.type)
    )


def user_failures(session: Session, user_id: int, now: datetime, limits: VerifyLimits) -> int:
    return _failures(session, "user_id", user_id, now - limits.window)


def owner_failures(session: Session, owner_id: int, now: datetime, limits: VerifyLimits) -> int:
    return _failures(session, "owner_id", owner_id, now - limits.window)


def user_locked(session: Session, user_id: int, now: datetime, limits: VerifyLimits) -> bool:
    """Whether this Telegram user may not try again yet (read from the database, so neither a
    restart nor ``/start`` lifts it)."""
    return user_failures(session, user_id, now, limits) >= limits.max_per_user


def owner_locked(session: Session, owner_id: int, now: datetime, limits: VerifyLimits) -> bool:
    """Whether this owner record may not be verified yet (many accounts failed on it)."""
    return owner_failures(session, owner_id, now, limits) >= limits.max_per_owner


# --- attempts -----------------------------------------------------------------------------


def verify_by_phone(
    session: Session,
    renderer: Renderer,
    attempt: Attempt,
    phone: str,
    *,
    now: datetime,
    referral_policy: referrals.ReferralPolicy = referrals.DEFAULT_POLICY,
) -> MatchResult:
    """Match the user's own shared contact against imported phone numbers (the caller has
    checked that the contact is the sender's own: Telegram vouches for that number). The
    user's lock applies; the owner record's lock does not (see the module docstring)."""
    if user_locked(session, attempt.user_id, now, attempt.limits):
        return MatchResult(failure=MatchFailure.locked)
    e164 = to_e164(phone)
    if e164 is None:
        return MatchResult(failure=MatchFailure.bad_format)
    candidates = list(session.execute(select(Owner).where(col(Owner.phone) == e164)).scalars())
    owner, failure = _best(candidates, attempt)
    # No per-owner lock here: it stops guessing on a leaked link, and guesses on that link
    # must not stop the real owner from proving who they are with their own number.
    if owner is not None:
        link_owner(session, owner, attempt.user_id, now, "phone", referral_policy)
        return MatchResult(owner_id=owner.id, owner_name=owner.name)
    assert failure is not None
    about = attempt.hint_owner_id
    if about is None and failure is MatchFailure.taken and len(candidates) == 1:
        about = candidates[0].id
    return _fail(session, renderer, attempt, failure, "phone", about, now)


def verify_by_vin_suffix(
    session: Session,
    renderer: Renderer,
    attempt: Attempt,
    text: str,
    *,
    now: datetime,
    referral_policy: referrals.ReferralPolicy = referrals.DEFAULT_POLICY,
) -> MatchResult:
    """Match the last six characters of a VIN against the one owner the personal link names.
    Without a link nothing is searched (a guess there could hit anyone in the database)."""
    if user_locked(session, attempt.user_id, now, attempt.limits):
        return MatchResult(failure=MatchFailure.locked)
    suffix = re.sub(r"[\s\-]", "", text).upper()
    if not VIN_SUFFIX.match(suffix):
        return MatchResult(failure=MatchFailure.bad_format)
    owner_id = attempt.hint_owner_id
    if owner_id is None:
        return MatchResult(failure=MatchFailure.needs_link)
    if owner_locked(session, owner_id, now, attempt.limits):
        return MatchResult(failure=MatchFailure.locked)
    owner = (
        session.execute(
            select(Owner)
            .join(Vehicle, col(Vehicle.owner_id) == col(Owner.id))
            .where(col(Owner.id) == owner_id, col(Vehicle.vin).like("%" + suffix))
        )
        .scalars()
        .first()
    )
    if owner is None:
        return _fail(session, renderer, attempt, MatchFailure.not_found, "vin", owner_id, now)
    if owner.telegram_user_id not in (None, attempt.user_id):
        return _fail(session, renderer, attempt, MatchFailure.taken, "vin", owner_id, now)
    link_owner(session, owner, attempt.user_id, now, "vin", referral_policy)
    return MatchResult(owner_id=owner.id, owner_name=owner.name)


def _best(candidates: list[Owner], attempt: Attempt) -> tuple[Owner | None, MatchFailure | None]:
    """The one owner the candidates point to (the link's owner, then the link's partner's,
    then the only one), or why there is none."""
    if not candidates:
        return None, MatchFailure.not_found
    free = [o for o in candidates if o.telegram_user_id in (None, attempt.user_id)]
    if not free:
        return None, MatchFailure.taken
    for narrow in (
        [o for o in free if o.id == attempt.hint_owner_id],
        [o for o in free if attempt.hint_partner_id is not None and o.partner_id == attempt.hint_partner_id],
        free,
    ):
        if len(narrow) == 1:
            return narrow[0], None
        if len(narrow) > 1:
            return None, MatchFailure.ambiguous
    return None, MatchFailure.not_found


def _fail(
    session: Session,
    renderer: Renderer,
    attempt: Attempt,
    failure: MatchFailure,
    via: str,
    owner_id: int | None,
    now: datetime,
) -> MatchResult:
    """Count one failed attempt (row, event, audit); the attempt that reaches a limit starts a
    lockout: audited once and told to whoever can help, once."""
    limits = attempt.limits
    row = VerificationFailure(user_id=attempt.user_id, owner_id=owner_id, via=via, reason=failure.value, at=now)
    session.add(row)
    session.flush()
    actor, subject = f"user:{attempt.user_id}", f"owner:{owner_id}" if owner_id else ""
    record_audit(
        session, AuditKind.verification_failed, actor=actor, subject=subject, at=now, reason=failure.value, via=via
    )
    if owner_id is not None:
        record(session, owner_id, EventKind.verification_failed, now, user_id=attempt.user_id, reason=failure.value)
    by_user = user_failures(session, attempt.user_id, now, limits)
    by_owner = owner_failures(session, owner_id, now, limits) if owner_id is not None else 0
    user_lock = by_user == limits.max_per_user
    owner_lock = owner_id is not None and by_owner == limits.max_per_owner
    if user_lock or owner_lock:
        record_audit(
            session,
            AuditKind.verification_locked,
            actor=actor,
            subject=subject,
            at=now,
            user_failures=by_user,
            owner_failures=by_owner,
            user_locked=user_lock,
            owner_locked=owner_lock,
        )
        _tell_lockout(session, renderer, attempt, row, owner_id, by_user, by_owner, user_lock, owner_lock, now)
    left = max(limits.max_per_user - by_user, 0)
    if left == 0 or by_owner >= limits.max_per_owner:
        return MatchResult(failure=MatchFailure.locked, just_locked=user_lock or owner_lock)
    return MatchResult(failure=failure, left=left)


def _tell_lockout(
    session: Session,
    renderer: Renderer,
    attempt: Attempt,
    row: VerificationFailure,
    owner_id: int | None,
    by_user: int,
    by_owner: int,
    user_lock: bool,
    owner_lock: bool,
    now: datetime,
) -> None:
    """One notice per lockout (keyed by the failure that started it) to the owner's partner as
    it is now (the one the link named at ``/start`` may have handed the owner over since),
    or to the operators when no partner can be reached."""
    limits = attempt.limits
    owner = session.get(Owner, owner_id) if owner_id else None
    partner_id = owner.partner_id if owner is not None else attempt.hint_partner_id
    partner = session.get(Partner, partner_id) if partner_id else None
    since = now - limits.window
    reasons = Counter(
        session.execute(
            select(col(VerificationFailure.reason)).where(
                col(VerificationFailure.user_id) == attempt.user_id, col(VerificationFailure.at) >= since
            )
        )
        .scalars()
        .all()
    )
    text = renderer.render(
        "partner/verification_failed",
        None,
        user_label=attempt.user_label or str(attempt.user_id),
        user_id=attempt.user_id,
        owner_name=owner.name if owner else "",
        owner_ref=(owner.external_id or str(owner.id)) if owner else "",
        failures=by_user,
        owner_failures=by_owner,
        user_locked=user_lock,
        owner_locked=owner_lock,
        hours=round(limits.window.total_seconds() / 3600),
        reasons=dict(sorted(reasons.items())),
    )
    if partner is not None and partner.active and partner.telegram_user_id is not None:
        chats = [(partner.telegram_user_id, partner.id)]
    else:
        chats = [(int(chat), None) for chat in attempt.operator_ids]
    for chat_id, to_partner in chats:
        enqueue(
            session,
            Push(
                dedupe_key=f"verify-locked:{row.id}:{chat_id}",
                chat_id=chat_id,
                partner_id=to_partner,
                text=text,
            ),
        )


def link_owner(
    session: Session,
    owner: Owner,
    user_id: int,
    now: datetime,
    via: str,
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
    owner.updated_at = now  # mark_online leaves it alone for an owner who is online already
    session.flush()
    record(session, owner.id, EventKind.verified, now, via=via)
    referrals.on_verified(session, pk(owner), now, policy=referral_policy)


def suggest_familiarity(
    purchase: date | None, today: date, novice_max_months: int, skilled_max_months: int
) -> Familiarity:
    """Cold-start maturity with the car, from its age (the owner may correct it)."""
    if purchase is None:
        return Familiarity.novice
    return familiarity_for_months(completed_months(purchase, today), novice_max_months, skilled_max_months)


def earliest_purchase(session: Session, owner_id: int) -> date | None:
    return session.execute(
        select(func.min(col(Vehicle.purchase_date))).where(col(Vehicle.owner_id) == owner_id)
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
    circles: list[Circle] = list(
        session.execute(
            select(Circle).where(col(Circle.partner_id) == owner.partner_id).order_by(col(Circle.id))
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
    rows = session.execute(select(col(Dealer.code), col(Dealer.name)).order_by(col(Dealer.code))).all()
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
    prospect: Prospect | None = (
        session.execute(select(Prospect).where(col(Prospect.telegram_user_id) == user_id)).scalars().first()
    )
    if prospect is None:
        prospect = Prospect(telegram_user_id=user_id, name=name, phone=phone, created_at=now)
        session.add(prospect)
    prospect.name, prospect.phone, prospect.model_of_interest = name, phone, model
    prospect.dealer_code = dealer_code
    prospect.partner_id = partner.id if partner else None
    session.flush()
    referrals.on_prospect(session, pk(prospect), user_id)
    record(session, None, EventKind.prospect_registered, now, prospect_id=prospect.id, dealer=dealer_code)
    if partner is not None and partner.telegram_user_id is not None:
        enqueue(
            session,
            Push(
                dedupe_key=f"prospect:{prospect.id}",
                chat_id=partner.telegram_user_id,
                partner_id=partner.id,
                text=renderer.render(
                    "partner/new_prospect",
                    None,
                    prospect_id=prospect.id,
                    name=name,
                    phone=phone,
                    model=model,
                    user_id=user_id,
                ),
            ),
        )
    return ProspectResult(prospect.id or 0, partner.id if partner else None, partner.name if partner else "")


def _route_partner(session: Session, dealer_code: str) -> Partner | None:
    dealer_id = session.execute(select(col(Dealer.id)).where(col(Dealer.code) == dealer_code)).scalar()
    if dealer_id is None:
        return None
    load = (
        select(Partner, func.count(col(Prospect.id)).label("n"))
        .outerjoin(Prospect, col(Prospect.partner_id) == col(Partner.id))
        .where(col(Partner.dealer_id) == dealer_id, col(Partner.active).is_(True))
        .group_by(col(Partner.id))
        .order_by((col(Partner.role) != PartnerRole.sales.value), "n", col(Partner.id))
    )
    row = session.execute(load).first()
    return row[0] if row else None
