"""``autocircle report ...``: reports computed in ``flows``, printed as a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from enum import Enum

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli.common import console, fail, open_app
from flows.errors import AutoCircleError
from flows.funnel import FunnelReport, FunnelRow, funnel_report
from storage.db import session_scope
from storage.models import FUNNEL_ORDER, FunnelStage

app = typer.Typer(help="Reports.", no_args_is_help=True)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command("funnel")
def funnel(
    partner: str | None = typer.Option(None, "--partner", help="Only this advisor code."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """Owners imported → invited → online → verified, per partner and in total."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                report = funnel_report(session, partner)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    if fmt is Format.json:
        payload = {
            "partners": [row.as_dict() for row in report.rows],
            "total": report.total.as_dict(),
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    elif fmt is Format.csv:
        typer.echo(_csv(report), nl=False)
    else:
        console.print(_table(report))


def _csv(report: FunnelReport) -> str:
    rows = [row.as_dict() for row in (*report.rows, report.total)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    return buffer.getvalue()


def _table(report: FunnelReport) -> Table:
    table = Table(
        title="Owner funnel",
        caption="% of imported; → % of the previous stage",
        show_footer=False,
    )
    table.add_column("Partner")
    table.add_column("Dealer")
    for stage in FUNNEL_ORDER:
        table.add_column(stage.value.capitalize(), justify="right")
    for row in report.rows:
        table.add_row(*_cells(row))
    table.add_section()
    table.add_row(*_cells(report.total), style="bold")
    return table


def _cells(row: FunnelRow) -> list[str]:
    label = row.name if row.advisor_code is None else f"{row.advisor_code} {row.name}"
    cells = [escape(label), escape(row.dealer_code or "")]
    for stage in FUNNEL_ORDER:
        cells.append(_stage_cell(row, stage))
    return cells


def _stage_cell(row: FunnelRow, stage: FunnelStage) -> str:
    count = str(row.count(stage))
    if stage is FunnelStage.imported:
        return count
    of_imported = _pct(row.rate_of_imported(stage))
    if stage is FunnelStage.invited:
        return f"{count} {of_imported}"
    return f"{count} {of_imported} → {_pct(row.rate_of_previous(stage))}"


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"
