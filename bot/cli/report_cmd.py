"""``autocircle report ...``: reports computed in ``flows``, printed as a table, CSV or JSON.

Every CSV cell passes ``storage.cells.safe_cell``: text from imports or users is never a formula."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from enum import Enum
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.cli.common import console, fail, open_app
from flows.community.funnel import FunnelReport, FunnelRow, funnel_report
from flows.errors import AutoCircleError
from flows.segments.matrix_report import (
    GOALS,
    NOT_ONLINE,
    MatrixReport,
    MatrixScope,
    MovementReport,
    matrix_csv,
    matrix_report,
    matrix_xlsx,
    movement_report,
    parse_line,
)
from flows.segments.rules import start_of_local_day
from flows.templating import labels
from storage.cells import safe_row
from storage.clock import utcnow
from storage.db import session_scope
from storage.models import FUNNEL_ORDER, FunnelStage
from storage.segments import MATURITY_ORDER

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
    """Partner names and dealer codes are operator-typed or imported text: no formulas."""
    rows = [row.as_dict() for row in (*report.rows, report.total)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(safe_row(rows[0]))
    writer.writerows(safe_row("" if v is None else v for v in r.values()) for r in rows)
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


# --- segment matrix and movement ----------------------------------------------------------


class MatrixFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    xlsx = "xlsx"
    png = "png"


@app.command("matrix")
def matrix(
    partner: str | None = typer.Option(None, "--partner", help="Only this advisor code's owners."),
    dealer: str | None = typer.Option(None, "--dealer", help="Only this dealer's owners."),
    product_line: str | None = typer.Option(None, "--product-line", help="passenger or commercial (default: both)."),
    fmt: MatrixFormat = typer.Option(MatrixFormat.table, "--format", help="table, csv, json, xlsx or png."),
    out: Path | None = typer.Option(None, "--out", help="Write to this file (needed for xlsx, png)."),
    locale: str | None = typer.Option(None, "--locale", help="zh or en labels (png, xlsx)."),
) -> None:
    """Owners per cell of the maturity × activity matrix (as of the last recompute)."""
    if partner and dealer:
        raise fail("give --partner or --dealer, not both")
    if fmt in (MatrixFormat.xlsx, MatrixFormat.png) and out is None:
        raise fail(f"--format {fmt.value} writes a binary file: add --out FILE")
    with open_app() as ac:
        settings = ac.settings
        try:
            scope = MatrixScope(advisor_code=partner, dealer_code=dealer, product_line=parse_line(product_line))
            with session_scope(ac.engine) as session:
                report = matrix_report(session, scope)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    loc = locale or settings.locale
    if fmt is MatrixFormat.png:
        from flows.segments.matrix_picture import render_matrix_png

        _write(out, render_matrix_png(report, locale=loc, timezone=settings.timezone))
    elif fmt is MatrixFormat.xlsx:
        _write(out, matrix_xlsx(report, locale=loc))
    elif fmt is MatrixFormat.json:
        _emit(out, json.dumps(report.as_dict(), ensure_ascii=False) + "\n")
    elif fmt is MatrixFormat.csv:
        _emit(out, matrix_csv(report))
    elif out is not None:
        _emit(out, _plain(_matrix_table(report, settings.timezone)))
    else:
        console.print(_matrix_table(report, settings.timezone))


@app.command("movement")
def movement(
    partner: str | None = typer.Option(None, "--partner", help="Only this advisor code's owners."),
    dealer: str | None = typer.Option(None, "--dealer", help="Only this dealer's owners."),
    product_line: str | None = typer.Option(None, "--product-line", help="passenger or commercial (default: both)."),
    since: str | None = typer.Option(None, "--since", help="First day, YYYY-MM-DD (local)."),
    until: str | None = typer.Option(None, "--until", help="Last day, YYYY-MM-DD (default: now)."),
    days: int = typer.Option(30, "--days", min=1, help="Period length when --since is not given."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """Movement between cells in a period, and the stage goals as rates."""
    if partner and dealer:
        raise fail("give --partner or --dealer, not both")
    with open_app() as ac:
        zone = ZoneInfo(ac.settings.timezone)
        try:
            end = utcnow() if until is None else start_of_local_day(_day(until) + timedelta(days=1), zone)
            start = start_of_local_day(_day(since), zone) if since is not None else end - timedelta(days=days)
            scope = MatrixScope(advisor_code=partner, dealer_code=dealer, product_line=parse_line(product_line))
            with session_scope(ac.engine) as session:
                report = movement_report(session, scope, start, end)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    if fmt is Format.json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    elif fmt is Format.csv:
        typer.echo(_movement_csv(report), nl=False)
    else:
        console.print(_movement_table(report, zone))


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _write(out: Path | None, data: bytes) -> None:
    assert out is not None
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise fail(f"{out}: {exc.strerror or exc}") from None
    console.print(f"wrote {out}", highlight=False)


def _emit(out: Path | None, text: str) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"{out}: {exc.strerror or exc}") from None
    console.print(f"wrote {out}", highlight=False)


def _plain(table: Table) -> str:
    """A rich table as plain text for a file."""
    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(table)
    return buffer.getvalue()


def _matrix_table(report: MatrixReport, timezone: str) -> Table:
    line = report.product_line or labels("en").word("all_lines")
    who = "all owners" if report.scope.kind == "all" else f"{report.scope.kind} {report.scope.code}"
    as_of = (
        "segments never computed: run `autocircle segments recompute`"
        if report.as_of is None
        else f"as of {report.as_of.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} ({timezone})"
    )
    table = Table(
        title=f"Segment matrix · {escape(who)} · {line}",
        caption=f"{as_of}; % of the {report.online} owners online",
    )
    table.add_column("activity \\ maturity")
    for m in MATURITY_ORDER:
        table.add_column(m.value, justify="right")
    for activity, cells in report.rows():
        table.add_row(activity, *(f"{c.count} {_pct(c.share)}" for c in cells))
    table.add_section()
    table.add_row(NOT_ONLINE, f"{report.not_online} {_pct(report.not_online_share)} of all", "", "", style="dim")
    return table


def _movement_csv(report: MovementReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["from", "to", "count"])
    for m in report.moves:
        writer.writerow(safe_row([m.from_cell, m.to_cell, m.count]))
    writer.writerow([])
    writer.writerow(["goal", "base", "reached", "rate"])
    for g in report.goals:
        writer.writerow(safe_row([g.key, g.base, g.reached, "" if g.rate is None else round(g.rate, 4)]))
    return buffer.getvalue()


def _movement_table(report: MovementReport, zone: ZoneInfo) -> Table:
    period = f"{report.start.astimezone(zone):%Y-%m-%d %H:%M} – {report.end.astimezone(zone):%Y-%m-%d %H:%M}"
    table = Table(title=f"Movement between cells, {period}")
    table.add_column("from")
    table.add_column("to")
    table.add_column("owners", justify="right")
    for m in report.moves:
        table.add_row(m.from_cell, m.to_cell, str(m.count))
    table.add_section()
    labels = dict(
        zip(
            GOALS,
            ("beginner → growing", "growing → mature", "dormant/churned → active", "declining → active"),
            strict=True,
        )
    )
    for g in report.goals:
        table.add_row(labels[g.key], f"{g.reached}/{g.base}", _pct(g.rate), style="bold")
    return table


# --- delivery (outbox) ------------------------------------------------------------------------


class DeliveryFormat(str, Enum):
    table = "table"
    json = "json"


@app.command("delivery")
def delivery(
    days: int = typer.Option(7, "--days", min=1, help="Local days up to today."),
    fmt: DeliveryFormat = typer.Option(DeliveryFormat.table, "--format", help="table or json."),
) -> None:
    """Pushes per day queued and class: sent, pending, skipped/failed by reason, latency."""
    from rich import box

    from flows.delivery.delivery_report import delivery_report

    with open_app() as ac, session_scope(ac.engine) as session:
        report = delivery_report(session, now=utcnow(), days=days, timezone=ac.settings.timezone)
    if fmt is DeliveryFormat.json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return
    table = Table(
        title=f"Pushes queued {report.since} – {report.until} ({report.timezone})",
        box=box.SIMPLE_HEAD,
        caption="wait = sent_at − created_at; lag = sent_at − not_before (p50/p95)",
        padding=(0, 0),
        show_edge=False,
    )
    for name in ("day", "class", "queued", "sent", "pending", "skipped", "failed", "wait", "lag"):
        table.add_column(
            name,
            justify="left" if name in ("day", "class") else "right",
            min_width=13 if name == "class" else None,
            no_wrap=True,
        )
    reasons = Table(title="Skipped and failed by reason", box=box.SIMPLE_HEAD)
    for name in ("day", "class", "outcome", "reason", "count"):
        reasons.add_column(name, justify="right" if name == "count" else "left")
    for row in report.rows:
        data = row.as_dict()
        table.add_row(
            f"{row.day:%m-%d}",
            row.message_class,
            str(row.queued),
            str(row.sent),
            str(row.pending),
            str(sum(row.skipped.values())),
            str(sum(row.failed.values())),
            f"{_dur(data['wait_p50_s'])}/{_dur(data['wait_p95_s'])}",
            f"{_dur(data['lag_p50_s'])}/{_dur(data['lag_p95_s'])}",
        )
        for outcome, counts in (("skipped", data["skipped"]), ("failed", data["failed"])):
            for reason, count in counts.items():
                reasons.add_row(f"{row.day:%m-%d}", row.message_class, outcome, escape(reason), str(count))
    console.print(table)
    if reasons.row_count:
        console.print(reasons)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    value, unit = seconds, "s"
    for name, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            value, unit = seconds / size, name
            break
    return f"{value:.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}"
