"""Owners to Excel with their segment: the article's "export and analyse in Excel" step.

One row per owner: reference, name, phone, VINs, product line, partner, dealer, funnel stage,
familiarity, maturity, activity, cell (``not_online`` for owners never online, as in the
matrix), last activity, since when in the cell, online since. For partners phone and VIN
are masked (middle digits hidden); operators get them whole.

Big exports stay bounded in memory: rows are streamed from the database (``yield_per``: a
server-side cursor on PostgreSQL) into an openpyxl write-only workbook, which spools rows to
a temporary file; one owner's vehicles are folded on the fly from a query ordered by owner.
Times are written in the configured zone (Excel has no time zones), which the header names.
Text cells pass ``storage.cells.safe_cell``: an imported name such as ``=HYPERLINK(…)`` is
written as ``'=HYPERLINK(…)``, text, never a formula (phones in E.164 get the apostrophe too).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

from flows.community.phones import mask
from flows.templating import labels
from storage.cells import safe_row
from storage.models import Dealer, Owner, Partner, Vehicle
from storage.segments import is_online

NOT_ONLINE = "not_online"
BATCH = 2000

_HEADERS = {
    "zh": (
        "编号",
        "姓名",
        "手机",
        "VIN",
        "车型线",
        "顾问编号",
        "顾问",
        "经销商",
        "漏斗阶段",
        "熟悉度",
        "成熟度",
        "活跃度",
        "分层",
        "最近活跃 ({tz})",
        "进入该层 ({tz})",
        "上线时间 ({tz})",
    ),
    "en": (
        "ref",
        "name",
        "phone",
        "VIN",
        "product line",
        "advisor code",
        "partner",
        "dealer",
        "funnel stage",
        "familiarity",
        "maturity",
        "activity",
        "cell",
        "last active ({tz})",
        "in cell since ({tz})",
        "online since ({tz})",
    ),
}
_VALUES: dict[str, dict[str, str]] = {  # the export's own words over the one vocabulary catalogue
    "zh": {},
    "en": {NOT_ONLINE: "not online"},
}


@dataclass(frozen=True)
class ExportResult:
    rows: int


def mask_vin(vin: str) -> str:
    """VIN with the middle hidden: WMI (3) and the last 6 stay, e.g. ``LSV********123456``."""
    return vin[:3] + "*" * 8 + vin[-6:] if len(vin) == 17 else vin[:2] + "*" * max(len(vin) - 2, 0)


def export_owners(
    session: Session,
    target: Path | IO[bytes],
    *,
    partner_id: int | None = None,
    masked: bool,
    locale: str | None,
    timezone: str,
) -> ExportResult:
    """Write the owners (one partner's, or all) as an XLSX workbook to a path or binary stream."""
    from openpyxl import Workbook

    loc = locale if locale in _HEADERS else "zh"
    zone = ZoneInfo(timezone)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("owners")
    sheet.append([h.format(tz=timezone) for h in _HEADERS[loc]])
    count = 0
    for row in _rows(session, partner_id, masked, loc, zone):
        sheet.append(safe_row(row))  # names, notes, codes are imported text: never formulas
        count += 1
    book.save(target)
    return ExportResult(rows=count)


def owners_xlsx(
    session: Session, *, partner_id: int | None, masked: bool, locale: str | None, timezone: str
) -> tuple[bytes, int]:
    """The export as bytes (for sending as a document) and its row count."""
    buffer = io.BytesIO()
    result = export_owners(session, buffer, partner_id=partner_id, masked=masked, locale=locale, timezone=timezone)
    return buffer.getvalue(), result.rows


def _rows(session: Session, partner_id: int | None, masked: bool, loc: str, zone: ZoneInfo) -> Iterator[list[Any]]:
    stmt = (
        select(
            col(Owner.id),
            col(Owner.external_id),
            col(Owner.name),
            col(Owner.phone),
            col(Owner.product_line),
            col(Partner.advisor_code),
            col(Partner.name),
            col(Owner.dealer_code),
            col(Dealer.code),
            col(Owner.stage),
            col(Owner.segment_familiarity),
            col(Owner.maturity),
            col(Owner.activity),
            is_online(),
            col(Owner.last_active_at),
            col(Owner.segment_at),
            col(Owner.online_at),
            col(Vehicle.vin),
        )
        .outerjoin(Partner, col(Partner.id) == col(Owner.partner_id))
        .outerjoin(Dealer, col(Dealer.id) == col(Partner.dealer_id))
        .outerjoin(Vehicle, col(Vehicle.owner_id) == col(Owner.id))
        .order_by(col(Owner.id), col(Vehicle.id))
        .execution_options(yield_per=BATCH)
    )
    if partner_id is not None:
        stmt = stmt.where(col(Owner.partner_id) == partner_id)
    words = {**labels(loc).words(), **_VALUES[loc]}

    def word(value: str | None) -> str:
        return "" if value is None else words.get(value, value)

    result = session.execute(stmt)
    for _, group in groupby(result, key=lambda r: r[0]):
        rows = list(group)
        (
            oid,
            ref,
            name,
            phone,
            line,
            advisor,
            partner_name,
            own_dealer,
            dealer,
            stage,
            fam,
            maturity,
            activity,
            online,
            last_active,
            since,
            online_at,
            _,
        ) = rows[0]
        vins = [r[-1] for r in rows if r[-1]]
        cell = f"{word(maturity)}/{word(activity)}" if online else word(NOT_ONLINE)
        yield [
            ref or str(oid),
            name,
            (mask(phone) if masked else phone) or "",
            ", ".join(mask_vin(v) if masked else v for v in vins),
            word(line),
            advisor or "",
            partner_name or "",
            dealer or own_dealer or "",
            word(stage),
            word(fam),
            word(maturity),
            word(activity),
            cell,
            _local(last_active, zone),
            _local(since, zone),
            _local(online_at, zone),
        ]


def _local(at: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A naive local time for Excel (it cannot store a zone), to the second."""
    if at is None:
        return None
    return at.astimezone(zone).replace(tzinfo=None, microsecond=0)
