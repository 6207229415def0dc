"""Channel partners: create, list, import, and the one-time code that links a partner to Telegram.

A partner proves who they are in the bot with a registration code the operator hands them.
The code is random (``secrets``), shown once, stored only as a hash, valid for seven days and
redeemable once; issuing a new one replaces the old. Services take a Session and plain values,
never commit (the caller owns the unit of work), and return frozen dataclasses.

An account can be cut off (issue 11, item 2): re-issuing a code unlinks the Telegram account
the partner had (a lost or shared phone stops being a partner at once, the new code links the
new one), and ``deactivate_partner`` ends the partner's rights while keeping the link for the
record (``flows.community.roles`` only resolves active partners; queued notices to them are skipped).
Wrong codes are limited as merchant and demand staff codes are: each failed redemption is a
``partner_code_failed`` audit row, and after ``MAX_CODE_FAILURES`` of them in
``CODE_FAILURE_WINDOW`` the Telegram account is refused without a lookup (``count_audit``).
A cut-off partner's words stop going out too (``stop_outgoing``): their circle posts are
switched off and their pending campaigns cancelled, as on a handover.
Each of these, and a redemption, is an audit row.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from flows.errors import (
    DuplicatePartnerError,
    ExpiredRegistrationCodeError,
    InvalidFileError,
    InvalidInputError,
    LockedRegistrationError,
    PartnerNotFoundError,
    RegistrationError,
    TelegramAccountInUseError,
    UnknownRegistrationCodeError,
    UsedRegistrationCodeError,
)
from flows.growth import campaigns, circle_posts
from storage import outbox as outbox_store
from storage.audit import AuditKind, count_audit, record_audit
from storage.db import rowcount
from storage.importing.errors import ImportFileError
from storage.importing.readers import open_source
from storage.models import Dealer, Owner, Partner, PartnerRole

# --- registration codes -------------------------------------------------------------------

#: No 0/O, 1/I/L: codes are read aloud and typed from paper. 31 symbols ** 10 ≈ 2**49.5.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
CODE_GROUPS = (4, 4, 2)
CODE_TTL = timedelta(days=7)
_HASH_DOMAIN = b"autocircle/partner-registration/v1:"
MAX_CODE_FAILURES = 5  # wrong codes per Telegram account in CODE_FAILURE_WINDOW, as for staff codes
CODE_FAILURE_WINDOW = timedelta(hours=24)
MAX_CODE_LENGTH = 32  # the dealer.code / partner.advisor_code column width


def generate_registration_code() -> str:
    """A fresh random code grouped for reading, e.g. ``K7QX-M3PR-TW``."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    parts, start = [], 0
    for size in CODE_GROUPS:
        parts.append(raw[start : start + size])
        start += size
    return "-".join(parts)


def normalize_registration_code(code: str) -> str:
    """Fold what people change when typing a code: case, full-width forms, spaces, dashes."""
    folded = unicodedata.normalize("NFKC", code).upper()
    return "".join(ch for ch in folded if not (ch.isspace() or ch == "_" or unicodedata.category(ch) == "Pd"))


def hash_registration_code(code: str) -> str:
    """The only form of a code that is stored; equal for every spelling that normalises alike."""
    normalized = normalize_registration_code(code)
    return hashlib.sha256(_HASH_DOMAIN + normalized.encode("utf-8")).hexdigest()


def looks_like_code(normalized: str) -> bool:
    """A normalised text has a registration code's shape (length and alphabet); the merchant
    directory's codes share it."""
    return len(normalized) == CODE_LENGTH and all(ch in CODE_ALPHABET for ch in normalized)


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCode:
    """A registration code in clear text: show it once, it is not stored."""

    partner_id: int
    advisor_code: str
    name: str
    code: str
    expires_at: datetime
    unlinked_telegram_user_id: int | None = None  # the account that lost partner rights


@dataclass(frozen=True)
class PartnerState:
    """The outcome of deactivating or reactivating a partner."""

    partner_id: int
    advisor_code: str
    name: str
    active: bool
    changed: bool  # False: it already was in that state
    telegram_linked: bool
    notices_skipped: int = 0  # queued notices to the partner's chat that will not go out
    posts_stopped: tuple[int, ...] = ()  # circle posts of theirs switched off
    campaigns_cancelled: tuple[int, ...] = ()  # campaigns of theirs that will not go out


@dataclass(frozen=True)
class PartnerSummary:
    """One row of the partner list."""

    advisor_code: str
    name: str
    dealer_code: str
    dealer_name: str
    role: str
    active: bool
    registered_at: datetime | None
    registration_expires_at: datetime | None
    telegram_linked: bool
    owners: int

    def registration_status(self, now: datetime) -> str:
        """``registered``, ``pending`` (a code is out), ``expired`` or ``none``."""
        if self.registered_at is not None:
            return "registered"
        if self.registration_expires_at is None:
            return "none"
        return "pending" if now < self.registration_expires_at else "expired"


@dataclass(frozen=True)
class RejectedRow:
    """A file row that was skipped, with its line number in the file and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class PartnerImportResult:
    created: int
    updated: int
    unchanged: int
    rejected: tuple[RejectedRow, ...]
    codes: tuple[IssuedCode, ...]


# --- validation ---------------------------------------------------------------------------

_ROLE_WORDS = {
    "sales": PartnerRole.sales,
    "销售": PartnerRole.sales,
    "销售顾问": PartnerRole.sales,
    "service": PartnerRole.service,
    "服务": PartnerRole.service,
    "服务顾问": PartnerRole.service,
    "售后": PartnerRole.service,
}


def parse_role(value: str) -> PartnerRole:
    """Accept the English and Chinese words dealers use for the two advisor jobs."""
    key = unicodedata.normalize("NFKC", value).strip().lower()
    if not key:
        raise InvalidInputError("role is empty")
    try:
        return _ROLE_WORDS[key]
    except KeyError:
        raise InvalidInputError(f"unknown role {value!r}: use sales|service|销售|服务") from None


def _clean_code(value: str, what: str) -> str:
    code = unicodedata.normalize("NFKC", value).strip()
    if not code:
        raise InvalidInputError(f"{what} is empty")
    if len(code) > MAX_CODE_LENGTH:
        raise InvalidInputError(f"{what} {code!r} is longer than {MAX_CODE_LENGTH} characters")
    if any(ch.isspace() for ch in code):
        raise InvalidInputError(f"{what} {code!r} contains spaces")
    return code


def _clean_name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise InvalidInputError("name is empty")
    return name


def _require_aware(now: datetime) -> None:
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (storage.clock.utcnow())")


# --- services -----------------------------------------------------------------------------


def find_partner(session: Session, advisor_code: str) -> Partner:
    """The partner with this advisor code, or ``PartnerNotFoundError``."""
    code = advisor_code.strip()
    partner = session.exec(select(Partner).where(col(Partner.advisor_code) == code)).first()
    if partner is None:
        raise PartnerNotFoundError(f"no partner with advisor code {code!r}")
    return partner


def create_partner(
    session: Session,
    *,
    name: str,
    dealer_code: str,
    advisor_code: str,
    role: str | PartnerRole,
    now: datetime,
    dealer_name: str | None = None,
    actor: str = "cli",
) -> IssuedCode:
    """Add a partner (and its dealer if the code is new) and issue its first registration code."""
    _require_aware(now)
    name = _clean_name(name)
    advisor_code = _clean_code(advisor_code, "advisor code")
    dealer_code = _clean_code(dealer_code, "dealer code")
    role = role if isinstance(role, PartnerRole) else parse_role(role)
    exists = session.exec(select(col(Partner.id)).where(col(Partner.advisor_code) == advisor_code)).first()
    if exists is not None:
        raise DuplicatePartnerError(f"a partner with advisor code {advisor_code!r} already exists")
    dealer = _dealer(session, dealer_code, dealer_name, now)
    return _add_partner(session, dealer, name, advisor_code, role, now, actor)


def issue_registration_code(session: Session, advisor_code: str, now: datetime, *, actor: str = "cli") -> IssuedCode:
    """Replace the partner's code with a new one; the old code stops working at once.

    Re-issuing also clears ``registered_at`` and unlinks the Telegram account: a code is
    re-issued when the partner lost the account or it fell into other hands, so the old
    account loses partner rights now (not when the new code is redeemed), and the notices
    queued for it are skipped. The partner is pending until the new code is redeemed.
    """
    _require_aware(now)
    partner = find_partner(session, advisor_code)
    return _issue(session, partner, now, actor)


def deactivate_partner(session: Session, advisor_code: str, now: datetime, *, actor: str = "cli") -> PartnerState:
    """Cut the partner off at once: no partner rights for their account, no registration with
    an outstanding code, and the notices queued for their chat are skipped. Owners and circles
    stay with the partner until a handover moves them. Idempotent."""
    _require_aware(now)
    partner = find_partner(session, advisor_code)
    assert partner.id is not None
    if not partner.active:
        return _state(partner, changed=False)
    partner.active = False
    session.add(partner)
    skipped = 0
    if partner.telegram_user_id is not None:
        skipped = outbox_store.skip_partner_notices(
            session, partner.id, partner.telegram_user_id, outbox_store.PARTNER_INACTIVE, now
        )
    stopped = stop_outgoing(session, partner.id, STOPPED_DEACTIVATED, now)
    record_audit(
        session,
        AuditKind.partner_deactivated,
        actor=actor,
        subject=f"partner:{partner.advisor_code}",
        at=now,
        telegram_user_id=partner.telegram_user_id,
        notices_skipped=skipped,
        **stopped.audit(),
    )
    session.flush()
    return _state(partner, changed=True, skipped=skipped, stopped=stopped)


STOPPED_DEACTIVATED = "partner deactivated"  # why their posts and campaigns stopped
STOPPED_HANDED_OVER = "partner handed over"


@dataclass(frozen=True)
class Stopped:
    """What of a partner's own stopped going out, and why (``stop_outgoing``)."""

    reason: str
    posts: tuple[int, ...]
    campaigns: tuple[int, ...]

    def audit(self) -> dict[str, Any]:
        """The audit row's account of it."""
        return {
            "stopped_reason": self.reason,
            "posts_stopped": list(self.posts),
            "campaigns_cancelled": list(self.campaigns),
        }


def stop_outgoing(session: Session, partner_id: int, reason: str, now: datetime) -> Stopped:
    """A partner who is cut off or hands over stops speaking: their circle posts are switched
    off and their pending campaigns cancelled (what of them is queued is skipped with
    ``reason``)."""
    return Stopped(
        reason,
        tuple(circle_posts.stop_partner_posts(session, partner_id, reason, now)),
        tuple(campaigns.cancel_partner_campaigns(session, partner_id, reason, now)),
    )


def reactivate_partner(session: Session, advisor_code: str, now: datetime, *, actor: str = "cli") -> PartnerState:
    """Give a deactivated partner their rights back, on the Telegram account still linked
    (re-issue a code instead to move them to another account). Idempotent."""
    _require_aware(now)
    partner = find_partner(session, advisor_code)
    if partner.active:
        return _state(partner, changed=False)
    partner.active = True
    session.add(partner)
    record_audit(
        session,
        AuditKind.partner_reactivated,
        actor=actor,
        subject=f"partner:{partner.advisor_code}",
        at=now,
        telegram_user_id=partner.telegram_user_id,
    )
    session.flush()
    return _state(partner, changed=True)


def _state(partner: Partner, *, changed: bool, skipped: int = 0, stopped: Stopped | None = None) -> PartnerState:
    assert partner.id is not None
    return PartnerState(
        partner_id=partner.id,
        advisor_code=partner.advisor_code,
        name=partner.name,
        active=partner.active,
        changed=changed,
        telegram_linked=partner.telegram_user_id is not None,
        notices_skipped=skipped,
        posts_stopped=stopped.posts if stopped else (),
        campaigns_cancelled=stopped.campaigns if stopped else (),
    )


_UNKNOWN = "registration code not recognised: check it and retry"
_USED = "this registration code was already used; ask the operator for a new one"


def redeem_registration_code(session: Session, code: str, telegram_user_id: int, now: datetime) -> Partner:
    """Link the Telegram user to the partner the code was issued to; the code is then spent.

    A wrong, used or expired code is an audit row (the caller commits it with the reply);
    past ``MAX_CODE_FAILURES`` of them in the window the account is refused at once."""
    _require_aware(now)
    actor = f"user:{telegram_user_id}"
    since = now - CODE_FAILURE_WINDOW
    if count_audit(session, AuditKind.partner_code_failed, actor=actor, since=since) >= MAX_CODE_FAILURES:
        raise LockedRegistrationError("too many wrong codes: try again tomorrow or ask the operator")
    try:
        return _redeem(session, code, telegram_user_id, now)
    except (UnknownRegistrationCodeError, UsedRegistrationCodeError, ExpiredRegistrationCodeError) as exc:
        record_audit(session, AuditKind.partner_code_failed, actor=actor, at=now, reason=_FAILURE_REASONS[type(exc)])
        raise


_FAILURE_REASONS: dict[type[RegistrationError], str] = {
    UnknownRegistrationCodeError: "unknown",
    UsedRegistrationCodeError: "used",
    ExpiredRegistrationCodeError: "expired",
}


def _redeem(session: Session, code: str, telegram_user_id: int, now: datetime) -> Partner:
    normalized = normalize_registration_code(code)
    if not looks_like_code(normalized):
        raise UnknownRegistrationCodeError(_UNKNOWN)
    digest = hash_registration_code(normalized)
    partner = session.exec(select(Partner).where(col(Partner.registration_code_hash) == digest)).first()
    if partner is None or not partner.active:
        raise UnknownRegistrationCodeError(_UNKNOWN)
    if partner.registered_at is not None:
        raise UsedRegistrationCodeError(_USED)
    if partner.registration_expires_at is None or now >= partner.registration_expires_at:
        raise ExpiredRegistrationCodeError("this registration code has expired; ask the operator for a new one")
    other = session.exec(
        select(col(Partner.id)).where(col(Partner.telegram_user_id) == telegram_user_id, col(Partner.id) != partner.id)
    ).first()
    if other is not None:
        raise TelegramAccountInUseError("this Telegram account is already registered as another partner")
    # Spend the code with a conditional UPDATE: of two redemptions racing, exactly one wins.
    spent = session.exec(
        update(Partner)
        .where(
            col(Partner.id) == partner.id,
            col(Partner.registration_code_hash) == digest,
            col(Partner.registered_at).is_(None),
        )
        .values(telegram_user_id=telegram_user_id, registered_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(spent) != 1:
        raise UsedRegistrationCodeError(_USED)
    session.refresh(partner)
    record_audit(
        session,
        AuditKind.partner_registered,
        actor=f"user:{telegram_user_id}",
        subject=f"partner:{partner.advisor_code}",
        at=now,
        telegram_user_id=telegram_user_id,
    )
    return partner


def list_partners(session: Session) -> list[PartnerSummary]:
    """Every partner with its dealer and owner count, by dealer then advisor code."""
    owners = (
        select(col(Owner.partner_id), func.count().label("n"))
        .where(col(Owner.partner_id).is_not(None))
        .group_by(col(Owner.partner_id))
        .subquery()
    )
    stmt = (
        select(Partner, Dealer, func.coalesce(owners.c.n, 0))
        .join(Dealer, col(Dealer.id) == col(Partner.dealer_id))
        .outerjoin(owners, owners.c.partner_id == col(Partner.id))
        .order_by(col(Dealer.code), col(Partner.advisor_code))
    )
    return [
        PartnerSummary(
            advisor_code=p.advisor_code,
            name=p.name,
            dealer_code=d.code,
            dealer_name=d.name,
            role=p.role,
            active=p.active,
            registered_at=p.registered_at,
            registration_expires_at=p.registration_expires_at,
            telegram_linked=p.telegram_user_id is not None,
            owners=int(n),
        )
        for p, d, n in session.exec(stmt)
    ]


def _dealer(session: Session, code: str, name: str | None, now: datetime) -> Dealer:
    """Get or create the dealer; a given name is the latest word on what it is called."""
    dealer = session.exec(select(Dealer).where(col(Dealer.code) == code)).first()
    name = " ".join((name or "").split())
    if dealer is None:
        dealer = Dealer(code=code, name=name, created_at=now)
        session.add(dealer)
        session.flush()
    elif name and dealer.name != name:
        dealer.name = name
        session.add(dealer)
    return dealer


def _add_partner(
    session: Session,
    dealer: Dealer,
    name: str,
    advisor_code: str,
    role: PartnerRole,
    now: datetime,
    actor: str,
) -> IssuedCode:
    assert dealer.id is not None
    partner = Partner(name=name, dealer_id=dealer.id, advisor_code=advisor_code, role=role.value, created_at=now)
    session.add(partner)
    session.flush()
    return _issue(session, partner, now, actor)


def _issue(session: Session, partner: Partner, now: datetime, actor: str) -> IssuedCode:
    """A new code replaces the old; the account linked so far is unlinked (see
    ``issue_registration_code``)."""
    code = generate_registration_code()
    partner.registration_code_hash = hash_registration_code(code)
    partner.registration_expires_at = now + CODE_TTL
    partner.registered_at = None
    unlinked = partner.telegram_user_id
    partner.telegram_user_id = None
    session.add(partner)
    session.flush()
    assert partner.id is not None
    skipped = 0
    if unlinked is not None:
        skipped = outbox_store.skip_partner_notices(
            session, partner.id, unlinked, outbox_store.PARTNER_ACCOUNT_CHANGED, now
        )
    record_audit(
        session,
        AuditKind.partner_code_issued,
        actor=actor,
        subject=f"partner:{partner.advisor_code}",
        at=now,
        expires_at=partner.registration_expires_at.isoformat(),
        unlinked_telegram_user_id=unlinked,
        notices_skipped=skipped,
    )
    return IssuedCode(
        partner_id=partner.id,
        advisor_code=partner.advisor_code,
        name=partner.name,
        code=code,
        expires_at=partner.registration_expires_at,
        unlinked_telegram_user_id=unlinked,
    )


# --- import from a file -------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerRow:
    """One data row of a partner file, as text, with its line (CSV) or row (XLSX) number."""

    line: int
    name: str
    dealer_code: str
    dealer_name: str
    advisor_code: str
    role: str
    problem: str | None = None  # the row could not be read as text (bad bytes)


_HEADERS = {
    "name": "name",
    "姓名": "name",
    "dealer code": "dealer_code",
    "经销商代码": "dealer_code",
    "dealer name": "dealer_name",
    "经销商名称": "dealer_name",
    "advisor code": "advisor_code",
    "顾问编号": "advisor_code",
    "role": "role",
    "岗位": "role",
}
_REQUIRED = ("name", "dealer_code", "advisor_code", "role")


def read_partner_file(path: Path) -> list[PartnerRow]:
    """Rows of a partner file, read like the owner export (``storage.importing.readers``):
    CSV in UTF-8, UTF-8 with BOM, UTF-16 or GBK/GB18030, comma, tab or semicolon separated, or
    XLSX, told apart by content rather than name; title rows above the header and blank rows
    are skipped. A row with bytes that are not text carries that as its problem."""
    try:
        source = open_source(path, is_header=_is_header)
    except ImportFileError as exc:
        raise InvalidFileError(str(exc)) from None
    try:
        columns = _columns(source.header, path.name)
        return [
            PartnerRow(
                line=line,
                name=_pick(cells, columns, "name"),
                dealer_code=_pick(cells, columns, "dealer_code"),
                dealer_name=_pick(cells, columns, "dealer_name"),
                advisor_code=_pick(cells, columns, "advisor_code"),
                role=_pick(cells, columns, "role"),
                problem=problem,
            )
            for line, values, problem in source.rows()
            for cells in ([_cell(v) for v in values],)
        ]
    except ImportFileError as exc:  # a malformed CSV line further down
        raise InvalidFileError(f"{path.name}: {exc}") from None
    finally:
        source.close()


def _is_header(values: list[object]) -> bool:
    named = {_HEADERS.get(_header_key(v)) for v in values}
    return all(field in named for field in _REQUIRED)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # spreadsheets turn advisor code 101 into 101.0
    return unicodedata.normalize("NFKC", str(value)).strip()


def _header_key(value: Any) -> str:
    text = _cell(value).lower().replace("_", " ").replace("-", " ")
    return " ".join(text.split())


def _pick(values: list[str], columns: dict[str, int], field: str) -> str:
    index = columns.get(field)
    return values[index] if index is not None and index < len(values) else ""


def _columns(header: Sequence[Any], filename: str) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        field = _HEADERS.get(_header_key(title))
        if field and field not in columns:
            columns[field] = index
    missing = [f.replace("_", " ") for f in _REQUIRED if f not in columns]
    if missing:
        raise InvalidFileError(
            f"{filename}: missing column(s) {', '.join(missing)} "
            "(expected name/姓名, dealer code/经销商代码, advisor code/顾问编号, role/岗位)"
        )
    return columns


def import_partners(
    session: Session, rows: Iterable[PartnerRow], now: datetime, *, actor: str = "cli"
) -> PartnerImportResult:
    """Create missing partners and update names/roles of known ones, keyed by advisor code.

    A bad row is recorded with its line and reason and the rest go on: one typo in a file of
    two hundred advisors should not block the other 199. Moving a partner to another dealer is
    refused here (owners and circles hang off the partner; that is a deliberate handover).
    """
    _require_aware(now)
    known = {
        p.advisor_code: (p, d.code)
        for p, d in session.exec(select(Partner, Dealer).join(Dealer, col(Dealer.id) == col(Partner.dealer_id)))
    }
    seen: dict[str, int] = {}
    created = updated = unchanged = 0
    rejected: list[RejectedRow] = []
    codes: list[IssuedCode] = []
    for row in rows:
        if row.problem:
            rejected.append(RejectedRow(row.line, row.problem))
            continue
        try:
            name = _clean_name(row.name)
            advisor_code = _clean_code(row.advisor_code, "advisor code")
            dealer_code = _clean_code(row.dealer_code, "dealer code")
            role = parse_role(row.role)
        except InvalidInputError as exc:
            rejected.append(RejectedRow(row.line, str(exc)))
            continue
        if advisor_code in seen:
            rejected.append(RejectedRow(row.line, f"advisor code {advisor_code} repeats line {seen[advisor_code]}"))
            continue
        seen[advisor_code] = row.line
        if advisor_code in known:
            partner, current_dealer = known[advisor_code]
            if current_dealer != dealer_code:
                rejected.append(
                    RejectedRow(
                        row.line,
                        f"advisor code {advisor_code} is at dealer {current_dealer}, "
                        f"not {dealer_code}; moving partners is not done by import",
                    )
                )
                continue
            _dealer(session, dealer_code, row.dealer_name, now)
            if partner.name == name and partner.role == role.value:
                unchanged += 1
                continue
            partner.name, partner.role = name, role.value
            session.add(partner)
            updated += 1
            continue
        dealer = _dealer(session, dealer_code, row.dealer_name, now)
        codes.append(_add_partner(session, dealer, name, advisor_code, role, now, actor))
        created += 1
    session.flush()
    return PartnerImportResult(created, updated, unchanged, tuple(rejected), tuple(codes))
