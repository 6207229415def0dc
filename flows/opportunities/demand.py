"""Demand-side accounts (shippers, fleets, companies needing transport) and their staff.

An operator adds accounts (CLI or an import file); each staff member gets a one-time
registration code, the same scheme as partners (``flows.community.partners``: random,
shown once, stored as a hash, valid seven days, redeemable once by a conditional UPDATE).
Failed redemptions are counted per Telegram user in ``verification_failure`` (via
``demand_code``); after ``MAX_FAILURES`` in ``FAILURE_WINDOW`` the user is refused without a
lookup, so codes cannot be guessed.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from flows.community.partners import (
    CODE_TTL,
    generate_registration_code,
    normalize_registration_code,
)
from flows.errors import InvalidFileError, InvalidInputError
from flows.opportunities.errors import DemandNotFoundError, DuplicateDemandError, StaffCodeError
from storage.audit import AuditKind, record_audit
from storage.db import rowcount
from storage.importing.errors import ImportFileError
from storage.importing.readers import open_source
from storage.models import Partner
from storage.opportunity_models import DemandAccount, DemandStaff
from storage.security_models import VerificationFailure

_HASH_DOMAIN = b"autocircle/demand-staff-registration/v1:"
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(hours=24)
VIA = "demand_code"


def hash_code(code: str) -> str:
    return hashlib.sha256(_HASH_DOMAIN + normalize_registration_code(code).encode()).hexdigest()


@dataclass(frozen=True)
class IssuedStaffCode:
    demand_code: str
    company: str
    staff_id: int
    name: str
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class DemandSummary:
    code: str
    company: str
    city: str
    contact_name: str
    contact_phone: str
    active: bool
    staff: int
    registered_staff: int
    tasks: int


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str


@dataclass(frozen=True)
class DemandImportResult:
    created: int
    updated: int
    rejected: tuple[RejectedRow, ...]
    codes: tuple[IssuedStaffCode, ...]


def _clean(value: str, what: str, *, required: bool = True, limit: int = 120) -> str:
    text = " ".join(unicodedata.normalize("NFKC", value or "").split())
    if required and not text:
        raise InvalidInputError(f"{what} is empty")
    if len(text) > limit:
        raise InvalidInputError(f"{what} is longer than {limit} characters")
    return text


def _clean_code(value: str) -> str:
    code = _clean(value, "account code", limit=32)
    if " " in code:
        raise InvalidInputError(f"account code {code!r} contains spaces")
    return code


def find_account(session: Session, code: str) -> DemandAccount:
    account = session.exec(select(DemandAccount).where(col(DemandAccount.code) == code.strip())).first()
    if account is None:
        raise DemandNotFoundError(f"no demand-side account with code {code.strip()!r}")
    return account


def create_account(
    session: Session,
    *,
    code: str,
    company: str,
    city: str = "",
    contact_name: str = "",
    contact_phone: str = "",
    partner_advisor_code: str | None = None,
    now: datetime,
    staff_name: str | None = None,
) -> IssuedStaffCode:
    """Add an account and issue the first staff member's code."""
    code = _clean_code(code)
    if session.exec(select(col(DemandAccount.id)).where(col(DemandAccount.code) == code)).first() is not None:
        raise DuplicateDemandError(f"a demand-side account with code {code!r} already exists")
    partner_id = None
    if partner_advisor_code:
        partner_id = session.exec(
            select(col(Partner.id)).where(col(Partner.advisor_code) == partner_advisor_code.strip())
        ).first()
        if partner_id is None:
            raise InvalidInputError(f"no partner with advisor code {partner_advisor_code!r}")
    account = DemandAccount(
        code=code,
        company=_clean(company, "company"),
        city=_clean(city, "city", required=False),
        contact_name=_clean(contact_name, "contact", required=False),
        contact_phone=_clean(contact_phone, "phone", required=False, limit=32),
        partner_id=partner_id,
        created_at=now,
    )
    session.add(account)
    session.flush()
    return _issue(session, account, staff_name or account.contact_name, now)


def issue_staff_code(session: Session, code: str, now: datetime, *, name: str = "") -> IssuedStaffCode:
    """A code for one more staff member of the account (each person registers with their own)."""
    account = find_account(session, code)
    return _issue(session, account, name or account.contact_name, now)


def _issue(session: Session, account: DemandAccount, name: str, now: datetime) -> IssuedStaffCode:
    assert account.id is not None
    code = generate_registration_code()
    staff = DemandStaff(
        demand_id=account.id,
        name=_clean(name, "name", required=False),
        registration_code_hash=hash_code(code),
        registration_expires_at=now + CODE_TTL,
        created_at=now,
    )
    session.add(staff)
    session.flush()
    assert staff.id is not None and staff.registration_expires_at is not None
    record_audit(
        session,
        AuditKind.demand_staff_code_issued,
        subject=f"demand:{account.code}",
        at=now,
        staff_id=staff.id,
        expires_at=staff.registration_expires_at.isoformat(),
    )
    return IssuedStaffCode(account.code, account.company, staff.id, staff.name, code, staff.registration_expires_at)


def failures(session: Session, user_id: int, now: datetime) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(VerificationFailure)
            .where(
                col(VerificationFailure.user_id) == user_id,
                col(VerificationFailure.via) == VIA,
                col(VerificationFailure.at) > now - FAILURE_WINDOW,
            )
        ).one()
    )


def _fail(session: Session, user_id: int, now: datetime, reason: str, message: str) -> StaffCodeError:
    session.add(VerificationFailure(user_id=user_id, via=VIA, reason=reason, at=now))
    record_audit(session, AuditKind.demand_staff_code_failed, actor=f"tg:{user_id}", at=now, reason=reason)
    session.flush()
    return StaffCodeError(message, key=_CODE_KEYS[reason])


#: a failed redemption's reason → its message key (flows.opportunities.errors.MESSAGES)
_CODE_KEYS = {"not_found": "code_not_found", "used": "code_used", "expired": "code_expired"}


def redeem_staff_code(session: Session, code: str, telegram_user_id: int, now: datetime) -> DemandStaff:
    """Link the Telegram user to the staff record the code was issued for; spend the code."""
    if failures(session, telegram_user_id, now) >= MAX_FAILURES:
        raise StaffCodeError("too many wrong codes: try again tomorrow or ask the operator", key="code_locked")
    digest = hash_code(code)
    staff = session.exec(select(DemandStaff).where(col(DemandStaff.registration_code_hash) == digest)).first()
    if staff is None or not staff.active:
        raise _fail(session, telegram_user_id, now, "not_found", "code not recognised: check it and retry")
    if staff.registered_at is not None:
        raise _fail(
            session, telegram_user_id, now, "used", "this code was already used; ask the operator for a new one"
        )
    if staff.registration_expires_at is None or now >= staff.registration_expires_at:
        raise _fail(session, telegram_user_id, now, "expired", "this code has expired; ask the operator for a new one")
    other = session.exec(
        select(col(DemandStaff.id)).where(col(DemandStaff.telegram_user_id) == telegram_user_id)
    ).first()
    if other is not None:
        raise StaffCodeError(
            "this Telegram account is already registered for a demand-side account", key="code_account_in_use"
        )
    spent = session.exec(
        update(DemandStaff)
        .where(
            col(DemandStaff.id) == staff.id,
            col(DemandStaff.registered_at).is_(None),
            col(DemandStaff.registration_code_hash) == digest,
        )
        .values(telegram_user_id=telegram_user_id, registered_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(spent) != 1:
        raise StaffCodeError("this code was already used; ask the operator for a new one", key="code_used")
    session.refresh(staff)
    account = session.get(DemandAccount, staff.demand_id)
    record_audit(
        session,
        AuditKind.demand_staff_registered,
        actor=f"tg:{telegram_user_id}",
        subject=f"demand:{account.code if account else staff.demand_id}",
        at=now,
        staff_id=staff.id,
    )
    return staff


def demand_of_user(user_id: int) -> Any:
    """The demand account id of this user's active staff account at an active account, as a
    scalar subquery (identity resolution folds it into its one SELECT)."""
    return (
        select(col(DemandStaff.demand_id))
        .join(DemandAccount, col(DemandAccount.id) == col(DemandStaff.demand_id))
        .where(
            col(DemandStaff.telegram_user_id) == user_id,
            col(DemandStaff.active).is_(True),
            col(DemandAccount.active).is_(True),
        )
        .limit(1)
        .scalar_subquery()
    )


def staff_of_user(session: Session, user_id: int) -> tuple[int, int] | None:
    """(staff id, demand account id) of an active registered staff member, else None."""
    row = session.exec(
        select(col(DemandStaff.id), col(DemandStaff.demand_id))
        .join(DemandAccount, col(DemandAccount.id) == col(DemandStaff.demand_id))
        .where(
            col(DemandStaff.telegram_user_id) == user_id,
            col(DemandStaff.active).is_(True),
            col(DemandAccount.active).is_(True),
        )
    ).first()
    return (int(row[0]), int(row[1])) if row and row[0] is not None else None


def staff_chats(session: Session, demand_id: int) -> list[int]:
    return [
        int(u)
        for u in session.exec(
            select(col(DemandStaff.telegram_user_id)).where(
                col(DemandStaff.demand_id) == demand_id,
                col(DemandStaff.telegram_user_id).is_not(None),
                col(DemandStaff.active).is_(True),
            )
        )
        if u is not None
    ]


def list_accounts(session: Session) -> list[DemandSummary]:
    from storage.opportunity_models import Task

    out = []
    for account in session.exec(select(DemandAccount).order_by(col(DemandAccount.code))):
        staff = list(session.exec(select(DemandStaff).where(col(DemandStaff.demand_id) == account.id)))
        tasks = session.exec(select(func.count()).select_from(Task).where(col(Task.demand_id) == account.id)).one()
        out.append(
            DemandSummary(
                account.code,
                account.company,
                account.city,
                account.contact_name,
                account.contact_phone,
                account.active,
                len(staff),
                sum(1 for s in staff if s.registered_at),
                int(tasks),
            )
        )
    return out


# --- import ---------------------------------------------------------------------------------

_HEADERS = {
    "code": "code",
    "account code": "code",
    "编号": "code",
    "客户编号": "code",
    "company": "company",
    "公司": "company",
    "公司名称": "company",
    "city": "city",
    "城市": "city",
    "contact": "contact",
    "contact name": "contact",
    "联系人": "contact",
    "phone": "phone",
    "contact phone": "phone",
    "电话": "phone",
    "联系电话": "phone",
    "partner": "partner",
    "advisor code": "partner",
    "顾问编号": "partner",
}
_REQUIRED = ("code", "company")


def _key(value: Any) -> str:
    return " ".join(unicodedata.normalize("NFKC", str(value or "")).strip().lower().replace("_", " ").split())


def import_accounts(session: Session, path: Path, now: datetime) -> DemandImportResult:
    """Create new accounts (each with a first staff code) and update known ones by code; a bad
    row is reported with its line and reason while the good rows import."""

    def is_header(values: list[object]) -> bool:
        named = {_HEADERS.get(_key(v)) for v in values}
        return all(f in named for f in _REQUIRED)

    try:
        source = open_source(path, is_header=is_header)
    except ImportFileError as exc:
        raise InvalidFileError(str(exc)) from None
    created = updated = 0
    rejected: list[RejectedRow] = []
    codes: list[IssuedStaffCode] = []
    try:
        columns: dict[str, int] = {}
        for i, title in enumerate(source.header):
            field = _HEADERS.get(_key(title))
            if field and field not in columns:
                columns[field] = i
        missing = [f for f in _REQUIRED if f not in columns]
        if missing:
            raise InvalidFileError(f"{path.name}: missing column(s) {', '.join(missing)} (code/编号, company/公司)")
        seen: set[str] = set()
        for line, values, problem in source.rows():
            if problem:
                rejected.append(RejectedRow(line, problem))
                continue
            cells = ["" if v is None else unicodedata.normalize("NFKC", str(v)).strip() for v in values]

            def pick(field: str, cells: list[str] = cells) -> str:
                i = columns.get(field)
                return cells[i] if i is not None and i < len(cells) else ""

            try:
                code = _clean_code(pick("code"))
                if code in seen:
                    raise InvalidInputError(f"account code {code} repeats an earlier line")
                seen.add(code)
                existing = session.exec(select(DemandAccount).where(col(DemandAccount.code) == code)).first()
                if existing is not None:
                    existing.company = _clean(pick("company"), "company")
                    existing.city = _clean(pick("city"), "city", required=False) or existing.city
                    existing.contact_name = _clean(pick("contact"), "contact", required=False) or existing.contact_name
                    existing.contact_phone = (
                        _clean(pick("phone"), "phone", required=False, limit=32) or existing.contact_phone
                    )
                    session.add(existing)
                    updated += 1
                    continue
                with session.begin_nested():
                    codes.append(
                        create_account(
                            session,
                            code=code,
                            company=pick("company"),
                            city=pick("city"),
                            contact_name=pick("contact"),
                            contact_phone=pick("phone"),
                            partner_advisor_code=pick("partner") or None,
                            now=now,
                        )
                    )
                created += 1
            except InvalidInputError as exc:
                rejected.append(RejectedRow(line, str(exc)))
    except ImportFileError as exc:
        raise InvalidFileError(f"{path.name}: {exc}") from None
    finally:
        source.close()
    session.flush()
    return DemandImportResult(created, updated, tuple(rejected), tuple(codes))
