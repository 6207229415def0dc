"""One Excel workbook with the operations picture: funnel, matrix per product line, partner
campaigns with their uplift, the referral leaderboard and the win-back churn reasons.

Head office reads this after a period (the demo writes it to ``demo-out/operations.xlsx``);
every sheet is built from the same report functions the CLI and the bot use, so the numbers
agree with ``autocircle report …`` and the partners' own commands. Every cell passes
``storage.cells.safe_cell``, so text typed by a partner or an owner is never a formula.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, select

from flows.community.funnel import funnel_report
from flows.growth import campaigns, referrals, winback
from flows.merchants import reports as merchant_reports
from flows.opportunities import reports as opportunity_reports
from flows.segments.matrix_report import MatrixScope, matrix_report
from storage.cells import safe_row
from storage.models import Owner, Partner, ProductLine


def operations_xlsx(
    session: Session,
    *,
    window_days: int = campaigns.DEFAULT_WINDOW_DAYS,
    min_group: int = campaigns.DEFAULT_MIN_GROUP,
) -> bytes:
    """The workbook as bytes (write-only: memory stays flat however many rows).
    ``window_days`` and ``min_group``: the campaigns' conversion window and the smallest group
    that gets a number, the settings' (CAMPAIGNS__CONVERSION_WINDOW_DAYS, CONSOLE__MIN_GROUP),
    so the workbook, the bot and the console agree."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for title, rows in (
        ("funnel", _funnel(session)),
        ("matrix", _matrix(session)),
        ("campaigns", _campaigns(session, window_days, min_group)),
        ("referrals", _referrals(session)),
        ("churn reasons", _churn(session)),
        *merchant_reports.sheets(session),  # issue 13: settlement, offers funnel, merchants, points
        *opportunity_reports.sheets(session),  # issue 14: tasks posted / matched / completed, rates, deals
    ):
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(safe_row(row))  # partner names, owners' own words: never formulas
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _partners(session: Session) -> list[Partner]:
    return list(session.exec(select(Partner).order_by(col(Partner.advisor_code), col(Partner.id))).all())


def _funnel(session: Session) -> Iterable[list[Any]]:
    report = funnel_report(session)
    rows = [*report.rows, report.total]
    header = list(rows[0].as_dict()) if rows else []
    yield header
    for row in rows:
        data = row.as_dict()
        yield [data[key] for key in header]


def _matrix(session: Session) -> Iterable[list[Any]]:
    yield ["product line", "activity", "beginner", "growing", "mature", "not online"]
    lines = sorted(
        {str(line) for line in session.exec(select(col(Owner.product_line)).distinct()).all() if line}
        or {ProductLine.passenger.value}
    )
    for line in lines:
        report = matrix_report(session, MatrixScope(product_line=line))
        for activity, cells in report.rows():
            yield [line, activity, *(cell.count for cell in cells), None]
        yield [line, "not online", None, None, None, report.not_online]


def _campaigns(session: Session, window_days: int, min_group: int) -> Iterable[list[Any]]:
    yield [
        "partner",
        "campaign",
        "status",
        "cells",
        "template",
        "audience",
        "treated",
        "holdout",
        "sent",
        "skipped",
        "converted",
        "holdout converted",
        "uplift (pp)",
        "uplift 95% low (pp)",
        "uplift 95% high (pp)",
        "conversion window (days)",
        "verdict",
    ]
    for partner in _partners(session):
        for item in campaigns.list_stats(
            session, partner.id or 0, limit=1000, window_days=window_days, min_group=min_group
        ):
            low, high = item.uplift_ci or (None, None)
            verdict = "too few owners to tell" if item.too_few else ""
            yield [
                partner.advisor_code,
                item.id,
                item.status,
                ", ".join(item.cells),
                item.template,
                item.audience,
                item.treated,
                item.holdout,
                item.sent,
                sum(item.skipped.values()),
                item.converted,
                item.holdout_converted,
                item.uplift,
                low,
                high,
                item.window_days,
                verdict,
            ]


def _referrals(session: Session) -> Iterable[list[Any]]:
    yield ["partner", "rank", "owner", "approved referrals"]
    for partner in _partners(session):
        for leader in referrals.leaderboard(session, partner.id or 0, limit=1000):
            yield [partner.advisor_code, leader.rank, leader.name, leader.approved]


def _churn(session: Session) -> Iterable[list[Any]]:
    report = winback.churn_reasons(session)
    yield ["partner", "dealer", *winback.REASONS, "answered", "win-back runs", "won back"]
    for row in report.partners:
        yield [
            row.partner_name,
            row.dealer_code,
            *(row.reasons.get(r, 0) for r in winback.REASONS),
            row.answered,
            row.runs,
            row.won_back,
        ]
    yield ["(total)", None, *(report.totals[r] for r in winback.REASONS), report.answered, report.runs, report.won_back]
    for text in report.other_texts:
        yield ["other, in the owner's words", None, text]
