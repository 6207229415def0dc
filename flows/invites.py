"""Personal deep links for owners not yet online: ``t.me/<bot>?start=<token>``.

A token is random (``secrets``), URL-safe, well under Telegram's 64-character limit for
``start`` parameters, and belongs to one owner. Issuing it moves the owner to ``invited``.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from storage.events import EventKind, record
from storage.models import FunnelStage, InviteToken, Owner

TOKEN_BYTES = 18  # 24 URL-safe characters, 144 bits


@dataclass(frozen=True)
class InviteRow:
    owner_id: int
    external_id: str
    name: str
    phone: str
    token: str
    link: str


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def deep_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start={token}"


def issue_invites(
    session: Session, partner_id: int, bot_username: str, now: datetime, *, limit: int | None = None
) -> list[InviteRow]:
    """Links for the partner's owners not yet online; an owner keeps one token."""
    owners = session.execute(
        select(Owner)
        .where(
            Owner.partner_id == partner_id,
            Owner.telegram_user_id.is_(None),
            Owner.stage.in_([FunnelStage.imported.value, FunnelStage.invited.value]),
        )
        .order_by(Owner.id)
        .limit(limit)
    ).scalars()
    rows = []
    for owner in owners:
        token = session.execute(
            select(InviteToken.token)
            .where(InviteToken.owner_id == owner.id)
            .order_by(InviteToken.id)
        ).scalar()
        if token is None:
            token = new_token()
            session.add(InviteToken(token=token, owner_id=owner.id or 0, partner_id=partner_id, created_at=now))
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
                token=token,
                link=deep_link(bot_username, token),
            )
        )
    session.flush()
    return rows


COLUMNS = ("owner_id", "name", "phone", "token", "link")


def to_csv(rows: Sequence[InviteRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row.external_id or row.owner_id, row.name, row.phone, row.token, row.link])
    return buffer.getvalue()


def to_xlsx(rows: Sequence[InviteRow]) -> bytes:
    """The same list as an Excel sheet for bulk sending by SMS."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("invites")
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([row.external_id or str(row.owner_id), row.name, row.phone, row.token, row.link])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
