"""Personal deep links for owners not yet on the bot: ``t.me/<bot>?start=<token>``.

A token is random (``secrets``), URL-safe, well under Telegram's 64-character limit for
``start`` parameters, and belongs to one owner. Issuing it moves the owner to ``invited``.

A link is a key to an owner record, so it does not live for ever (issue 11, item 2): it
works until ``expires_at`` (``valid_days`` after issue; a token from before expiry existed
counts from ``created_at``), and only while its owner is not linked to a Telegram account
(``flows.community.onboarding`` refuses it at ``/start``). Issuing again hands out the owner's live
token, or a fresh one when the last has expired; an expired token is never revived.
Issuing never covers an owner who is already linked, and does cover one who opened a link
(``online``) without verifying: once that link expires, the partner needs a fresh one to
send. Export cells pass through
``storage.cells.safe_cell``: an owner's name is imported text and must not become a formula.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from storage.audit import AuditKind, record_audit
from storage.cells import safe_row
from storage.events import EventKind, record
from storage.models import FunnelStage, InviteToken, Owner, Partner

TOKEN_BYTES = 18  # 24 URL-safe characters, 144 bits
DEFAULT_VALID_DAYS = 30  # the default of ``Settings.security.invite_valid_days``


@dataclass(frozen=True)
class InviteRow:
    owner_id: int
    external_id: str
    name: str
    phone: str
    token: str
    link: str
    expires_at: datetime | None = None


def new_token() -> str:
    """A random URL-safe token that starts with a letter or digit.

    One ``token_urlsafe`` in 64 starts with ``-``, which an export cell must neutralise with an
    apostrophe (a spreadsheet reads it as a formula), and the exported token would then differ
    from the stored one; drawing again keeps the exported token exactly the link's.
    """
    while True:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        if token[0].isalnum():
            return token


def deep_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start={token}"


def _aware(at: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were stored as UTC."""
    return at if at.utcoffset() is not None else at.replace(tzinfo=UTC)


def token_expiry(invite: InviteToken, valid_days: int = DEFAULT_VALID_DAYS) -> datetime:
    """When ``invite`` stops working: its ``expires_at``, or ``valid_days`` after it was made
    for a token issued before expiry existed (aware UTC)."""
    if invite.expires_at is not None:
        return _aware(invite.expires_at)
    return _aware(invite.created_at) + timedelta(days=valid_days)


def token_expired(invite: InviteToken, now: datetime, valid_days: int = DEFAULT_VALID_DAYS) -> bool:
    """True once ``now`` has reached the token's expiry."""
    return _aware(now) >= token_expiry(invite, valid_days)


def issue_invites(
    session: Session,
    partner_id: int,
    bot_username: str,
    now: datetime,
    *,
    limit: int | None = None,
    valid_days: int = DEFAULT_VALID_DAYS,
    actor: str = "system",
) -> list[InviteRow]:
    """Links for the partner's owners not linked to a Telegram account yet: imported,
    invited, or online (they opened a link but did not verify); never for a linked owner.

    An owner keeps their live token; one whose token has expired gets a fresh token valid for
    ``valid_days`` and the old one stays dead (its expiry is written down, so a later change
    of the setting does not bring it back). One ``invites_issued`` audit row per call.
    """
    if valid_days < 1:
        raise ValueError("valid_days must be at least 1")
    owners = session.execute(
        select(Owner)
        .where(
            col(Owner.partner_id) == partner_id,
            col(Owner.telegram_user_id).is_(None),
            col(Owner.stage).in_([FunnelStage.imported.value, FunnelStage.invited.value, FunnelStage.online.value]),
        )
        .order_by(col(Owner.id))
        .limit(limit)
    ).scalars()
    rows = []
    fresh = 0
    for owner in owners:
        invite = (
            session.execute(
                select(InviteToken).where(col(InviteToken.owner_id) == owner.id).order_by(col(InviteToken.id).desc())
            )
            .scalars()
            .first()
        )
        if invite is not None and token_expired(invite, now, valid_days):
            if invite.expires_at is None:
                invite.expires_at = token_expiry(invite, valid_days)
            invite = None
        if invite is None:
            invite = InviteToken(
                token=new_token(),
                owner_id=owner.id or 0,
                partner_id=partner_id,
                created_at=now,
                expires_at=now + timedelta(days=valid_days),
            )
            session.add(invite)
            fresh += 1
        elif invite.partner_id != partner_id:
            invite.partner_id = partner_id  # the owner's partner now: their notices go there
        if owner.stage == FunnelStage.imported.value:
            owner.stage = FunnelStage.invited.value
            owner.invited_at = now
            owner.updated_at = now
            record(session, owner.id, EventKind.invited, now, partner_id=partner_id)
        rows.append(
            InviteRow(
                owner_id=owner.id or 0,
                external_id=owner.external_id or "",
                name=owner.name,
                phone=owner.phone or "",
                token=invite.token,
                link=deep_link(bot_username, invite.token),
                expires_at=token_expiry(invite, valid_days),
            )
        )
    advisor = session.execute(select(col(Partner.advisor_code)).where(col(Partner.id) == partner_id)).scalar()
    record_audit(
        session,
        AuditKind.invites_issued,
        actor=actor,
        subject=f"partner:{advisor or partner_id}",
        at=now,
        owners=len(rows),
        fresh=fresh,
        valid_days=valid_days,
    )
    session.flush()
    return rows


COLUMNS = ("owner_id", "name", "phone", "token", "link")


def _cells(row: InviteRow) -> list[object]:
    """One export line; every text cell is imported data, so none may start a formula."""
    return safe_row([row.external_id or str(row.owner_id), row.name, row.phone, row.token, row.link])


def to_csv(rows: Sequence[InviteRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(_cells(row))
    return buffer.getvalue()


def to_xlsx(rows: Sequence[InviteRow]) -> bytes:
    """The same list as an Excel sheet for bulk sending by SMS."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("invites")
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append(_cells(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
