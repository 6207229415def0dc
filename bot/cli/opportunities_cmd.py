"""``autocircle demand …``, ``autocircle tasks …``, ``autocircle capacity sync`` and
``autocircle report opportunities``. The work is in ``flows.opportunities``; this module
parses options and prints. Codes are shown once (only their hashes are stored)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from sqlmodel import Session, col, select

from bot.cli.common import console, fail, open_app
from flows.errors import AutoCircleError
from flows.opportunities import capacity, demand, matching, reports, tasks
from storage.clock import utcnow
from storage.db import pk, session_scope
from storage.opportunity_models import DemandAccount, Task

demand_app = typer.Typer(help="Demand-side accounts (shippers, fleets): add, list, staff codes.", no_args_is_help=True)
tasks_app = typer.Typer(help="Transport tasks: add, list, import.", no_args_is_help=True)
capacity_app = typer.Typer(help="Commercial owners' vehicles as capacity.", no_args_is_help=True)


def _print_code(issued: demand.IssuedStaffCode, zone: str) -> None:
    until = issued.expires_at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    console.print(
        f"{escape(issued.demand_code)} {escape(issued.company)}: staff code [bold]{issued.code}[/] "
        f"(send /demand {issued.code} to the bot; valid until {until})",
        highlight=False,
    )


@demand_app.command("add")
def demand_add(
    code: str = typer.Option(..., "--code", help="Account code, e.g. S001."),
    company: str = typer.Option(..., "--company"),
    city: str = typer.Option("", "--city"),
    contact: str = typer.Option("", "--contact", help="Contact person."),
    phone: str = typer.Option("", "--phone"),
    partner: str | None = typer.Option(None, "--partner", help="Advisor code of the partner who brought them."),
) -> None:
    """Add a demand-side account and print its first staff code."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as s:
                issued = demand.create_account(
                    s,
                    code=code,
                    company=company,
                    city=city,
                    contact_name=contact,
                    contact_phone=phone,
                    partner_advisor_code=partner,
                    now=utcnow(),
                )
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
        _print_code(issued, ac.settings.timezone)


@demand_app.command("code")
def demand_code(
    code: str = typer.Argument(..., help="Account code."),
    name: str = typer.Option("", "--name", help="The staff member's name."),
) -> None:
    """A one-time code for one more staff member of the account."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as s:
                issued = demand.issue_staff_code(s, code, utcnow(), name=name)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
        _print_code(issued, ac.settings.timezone)


@demand_app.command("list")
def demand_list(as_json: bool = typer.Option(False, "--json")) -> None:
    with open_app() as ac, session_scope(ac.engine) as s:
        rows = demand.list_accounts(s)
    if as_json:
        console.print_json(json.dumps([r.__dict__ for r in rows], ensure_ascii=False))
        return
    for r in rows:
        status = "" if r.active else " inactive"
        console.print(
            f"{escape(r.code)}\t{escape(r.company)}\t{escape(r.city)}\tstaff {r.registered_staff}/{r.staff}\t"
            f"tasks {r.tasks}{status}",
            highlight=False,
        )


@demand_app.command("import")
def demand_import(path: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Accounts from CSV/XLSX (code, company, city, contact, phone, partner); bad rows reported."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as s:
                result = demand.import_accounts(s, path, utcnow())
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
        console.print(
            f"created {result.created}, updated {result.updated}, rejected {len(result.rejected)}", highlight=False
        )
        for row in result.rejected:
            console.print(f"line {row.line}: {escape(row.reason)}", highlight=False)
        for issued in result.codes:
            _print_code(issued, ac.settings.timezone)


_TASK_COLUMNS = ("account", "pickup", "dropoff", "window", "class", "payload", "price", "notes")


def _add_task(
    s: Session,
    account: str,
    pickup: str,
    dropoff: str,
    window: str,
    cls: str,
    payload: str,
    price: str,
    notes: str,
    zone: str,
) -> Task:
    now = utcnow()
    start, end = tasks.parse_window(window, now, zone)
    tonnes, volume = capacity.parse_payload(payload)
    acc: DemandAccount = demand.find_account(s, account)
    draft = tasks.TaskDraft(pickup, dropoff, start, end, cls, tonnes, volume, tasks.parse_price(price), notes)
    return tasks.post_task(s, pk(acc), draft, actor="cli", now=now)


@tasks_app.command("add")
def tasks_add(
    account: str = typer.Option(..., "--account", help="Demand-side account code."),
    pickup: str = typer.Option(..., "--pickup", help="城市/区"),
    dropoff: str = typer.Option(..., "--dropoff", help="城市/区"),
    window: str = typer.Option(..., "--window", help="2026-12-05 09:00-18:00"),
    cls: str = typer.Option(..., "--class", help="van, light_truck, heavy_truck, refrigerated, tipper"),
    payload: str = typer.Option(..., "--payload", help="3t or 3t 16m3"),
    price: str = typer.Option("quote", "--price", help="yuan, or quote"),
    notes: str = typer.Option("", "--notes"),
) -> None:
    """Post a task for an account (the bot's wave job offers it)."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as s:
                task = _add_task(s, account, pickup, dropoff, window, cls, payload, price, notes, ac.settings.timezone)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
        console.print(
            f"task #{task.id} posted ({escape(task.pickup_text)} → {escape(task.dropoff_text)})", highlight=False
        )


@tasks_app.command("import")
def tasks_import(
    path: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="Tasks CSV or XLSX: account, pickup, dropoff, window, class, payload[, price, notes, ref].",
    ),
    rejects: Path | None = typer.Option(None, "--rejects", help="Where rejected rows go."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Post tasks from a file (same readers and rejects rules as owners; headers in English or
    Chinese): a bad row is reported with its line and reason, good rows are posted; running the
    file again posts nothing twice."""
    from bot.cli.import_cmd import _print_records
    from flows.opportunities.task_import import import_tasks
    from storage.importing import ImportFileError

    with open_app() as ac:
        try:
            summary = import_tasks(ac.engine, path, timezone=ac.settings.timezone, now=utcnow(), rejects_path=rejects)
        except ImportFileError as exc:
            raise fail(str(exc)) from None
    _print_records(summary, as_json)


@tasks_app.command("list")
def tasks_list(as_json: bool = typer.Option(False, "--json"), limit: int = typer.Option(50, "--limit")) -> None:
    with open_app() as ac, session_scope(ac.engine) as s:
        rows = [
            matching.task_view(t, ac.settings.timezone) | {"assigned_owner_id": t.assigned_owner_id}
            for t in s.exec(select(Task).order_by(col(Task.id).desc()).limit(limit))
        ]
    if as_json:
        console.print_json(json.dumps(rows, ensure_ascii=False, default=str))
        return
    for r in rows:
        console.print(
            f"#{r['id']}\t{escape(r['pickup'])} → {escape(r['dropoff'])}\t{r['window_start']}\t"
            f"{r['vehicle_class']} {r['payload_t']}t\t{r['state']}\twave {r['wave']}",
            highlight=False,
        )


@capacity_app.command("sync")
def capacity_sync() -> None:
    """Capacity rows for imported commercial owners (class from the model; payload and base
    from the import's extra columns payload/载重 and base/常驻地)."""
    with open_app() as ac, session_scope(ac.engine) as s:
        created, skipped = capacity.sync_from_import(s, utcnow())
    console.print(f"capacity created {created}, skipped {len(skipped)}", highlight=False)
    for owner_id, why in skipped[:50]:
        console.print(f"owner {owner_id}: {escape(why)}", highlight=False)


def report_opportunities(
    fmt: str = typer.Option("table", "--format", help="table or json"),
    since: str | None = typer.Option(None, "--since", help="YYYY-MM-DD"),
) -> None:
    """Tasks posted / matched / completed, time to match, match rate by region and class,
    and the same per partner and dealer (their deals)."""
    when = datetime.fromisoformat(since).replace(tzinfo=ZoneInfo("UTC")) if since else None
    with open_app() as ac, session_scope(ac.engine) as s:
        report = reports.opportunity_report(s, when).as_dict()
    if fmt == "json":
        console.print_json(json.dumps(report, ensure_ascii=False))
        return
    console.print(
        f"posted {report['posted']}  matched {report['matched']}  completed {report['completed']}  "
        f"match rate {report['match_rate']:.0%}  time to match p50 {report['minutes_to_match_p50']} min "
        f"p95 {report['minutes_to_match_p95']} min",
        highlight=False,
    )
    for r in report["by_region"]:
        console.print(f"region {escape(r['region'])}: {r['matched']}/{r['posted']} ({r['rate']:.0%})", highlight=False)
    for r in report["by_class"]:
        console.print(f"class {r['class']}: {r['matched']}/{r['posted']} ({r['rate']:.0%})", highlight=False)
    for kind, key in (("partner", "advisor_code"), ("dealer", "dealer_code")):
        for r in report[f"by_{kind}"]:
            console.print(_book_line(kind, r[key], r), highlight=False)


def _book_line(kind: str, code: str, r: dict[str, Any]) -> str:
    """One partner's or dealer's book: tasks that reached their owners, matched, their deals."""
    p50, p95 = r["minutes_to_match_p50"], r["minutes_to_match_p95"]
    timing = f"  time to match p50 {p50} min p95 {p95} min" if p50 is not None else ""
    return (
        f"{kind} {escape(code)} {escape(r['name'])}: posted {r['posted']}  matched {r['matched']} "
        f"({r['match_rate']:.0%})  deals {r['completed']}{timing}"
    )


def register(app: typer.Typer, report_app: typer.Typer) -> None:
    app.add_typer(demand_app, name="demand")
    app.add_typer(tasks_app, name="tasks")
    app.add_typer(capacity_app, name="capacity")
    report_app.command("opportunities")(report_opportunities)
