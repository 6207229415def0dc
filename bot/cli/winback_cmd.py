"""``autocircle report churn-reasons``: why owners left (the win-back survey) and how many
came back, per partner; computed in ``flows.growth.winback``. ``autocircle report operations``: the
operations workbook (``flows.reports.operations_workbook``) with the churn reasons among its sheets."""

from __future__ import annotations

import json
from datetime import timedelta
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from bot.cli.common import console, fail, open_app
from flows.community.partners import find_partner
from flows.errors import AutoCircleError
from flows.growth import winback
from flows.reports.operations_workbook import operations_xlsx
from storage.clock import utcnow
from storage.db import session_scope


class Format(str, Enum):
    table = "table"
    json = "json"


def churn_reasons(
    partner: str | None = typer.Option(None, "--partner", help="Only this advisor code."),
    days: int | None = typer.Option(None, "--days", min=1, help="Only the last N days (default: all)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Win-back survey answers per reason and partner, win-back runs and owners won back."""
    since = utcnow() - timedelta(days=days) if days else None
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                partner_id = find_partner(session, partner).id if partner else None
                report = winback.churn_reasons(session, partner_id, since=since)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    if fmt is Format.json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return
    console.print(_table(report))


def _table(report: winback.ChurnReasons) -> Table:
    table = Table(title="Churn reasons (win-back survey)")
    table.add_column("partner")
    table.add_column("dealer")
    for reason in winback.REASONS:
        table.add_column(reason, justify="right")
    for column in ("answered", "runs", "won back"):
        table.add_column(column, justify="right")
    for row in report.partners:
        table.add_row(
            row.partner_name,
            row.dealer_code,
            *(str(row.reasons[r]) for r in winback.REASONS),
            str(row.answered),
            str(row.runs),
            str(row.won_back),
        )
    table.add_row(
        "total",
        "",
        *(str(report.totals[r]) for r in winback.REASONS),
        str(report.answered),
        str(report.runs),
        str(report.won_back),
        style="bold",
    )
    return table


def operations(
    out: Path = typer.Option(Path("operations.xlsx"), "--out", help="Where to write the workbook."),
) -> None:
    """Funnel, matrix per product line, campaigns with uplift, referral leaderboard and churn
    reasons in one Excel workbook for head office."""
    with open_app() as ac, session_scope(ac.engine) as session:
        settings = ac.settings
        data = operations_xlsx(
            session, window_days=settings.campaigns.conversion_window_days, min_group=settings.console.min_group
        )
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror}") from None
    console.print(f"wrote {out}")
