"""``autocircle partners ...``: add, list, re-issue codes, deactivate/reactivate, hand over;
and ``import partners`` (called from ``import_cmd``). The work is in ``flows.community.partners``; this
module parses options and prints."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from bot.cli.common import console, fail, open_app
from flows.community import partners as svc
from flows.errors import AutoCircleError
from storage.clock import utcnow
from storage.db import session_scope

app = typer.Typer(help="Channel partners: add, list, registration codes, deactivate, handover.", no_args_is_help=True)


class Role(str, Enum):
    sales = "sales"
    service = "service"


@app.command("add")
def add(
    name: str = typer.Option(..., "--name", help="Partner's name as owners know it."),
    dealer_code: str = typer.Option(..., "--dealer-code", help="Dealer code, e.g. D001."),
    advisor_code: str = typer.Option(..., "--advisor-code", help="Advisor code, e.g. A101."),
    role: Role = typer.Option(..., "--role", help="sales or service."),
    dealer_name: str | None = typer.Option(None, "--dealer-name", help="Name of a new dealer."),
) -> None:
    """Add a partner and print its one-time registration code."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                issued = svc.create_partner(
                    session,
                    name=name,
                    dealer_code=dealer_code,
                    advisor_code=advisor_code,
                    role=role.value,
                    dealer_name=dealer_name,
                    now=utcnow(),
                )
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
        _print_code(issued, _zone(ac.settings.timezone), "added partner")


@app.command("code")
def code(advisor_code: str = typer.Argument(..., help="Advisor code of the partner.")) -> None:
    """Issue a new registration code; the previous one stops working and the Telegram account
    linked so far loses partner rights at once (the new code links the new account)."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                issued = svc.issue_registration_code(session, advisor_code, utcnow(), actor="cli")
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
        _print_code(issued, _zone(ac.settings.timezone), "new code for")
        if issued.unlinked_telegram_user_id is not None:
            console.print(
                f"Telegram account {issued.unlinked_telegram_user_id} unlinked: it has no partner "
                "rights until the new code is redeemed",
                highlight=False,
            )


def _change_state(change: Callable[..., svc.PartnerState], advisor_code: str) -> svc.PartnerState:
    """Run one partner state change in its own unit of work; refusals are one line."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                return change(session, advisor_code, utcnow(), actor="cli")
        except AutoCircleError as exc:
            raise fail(str(exc)) from None


@app.command("deactivate")
def deactivate(advisor_code: str = typer.Argument(..., help="Advisor code of the partner.")) -> None:
    """Cut a partner off now: their Telegram account loses partner rights and queued notices
    to it are skipped. Owners stay with them until `partners handover`."""
    state = _change_state(svc.deactivate_partner, advisor_code)
    if not state.changed:
        console.print(f"{escape(state.advisor_code)} was already inactive", highlight=False)
        return
    console.print(
        f"deactivated {escape(state.advisor_code)} {escape(state.name)}; "
        f"{state.notices_skipped} queued notice(s) will not be sent; "
        f"{len(state.posts_stopped)} circle post(s) switched off, "
        f"{len(state.campaigns_cancelled)} campaign(s) cancelled",
        highlight=False,
    )


@app.command("reactivate")
def reactivate(advisor_code: str = typer.Argument(..., help="Advisor code of the partner.")) -> None:
    """Give a deactivated partner their rights back on the Telegram account still linked
    (use `partners code` to move them to another account)."""
    state = _change_state(svc.reactivate_partner, advisor_code)
    if not state.changed:
        console.print(f"{escape(state.advisor_code)} was already active", highlight=False)
        return
    linked = "on their linked Telegram account" if state.telegram_linked else "(no Telegram account linked yet)"
    console.print(f"reactivated {escape(state.advisor_code)} {escape(state.name)} {linked}", highlight=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List partners with registration state and owner counts."""
    with open_app() as ac:
        with session_scope(ac.engine) as session:
            partners = svc.list_partners(session)
        zone = _zone(ac.settings.timezone)
    now = utcnow()
    if as_json:
        typer.echo(json.dumps([_partner_json(p, now) for p in partners], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(partners)} partner(s)", box=box.SIMPLE_HEAD)
    for header in ("Advisor", "Name", "Dealer", "Role", "Active", "Registered", "Telegram", "Owners"):
        table.add_column(header, justify="right" if header == "Owners" else "left", no_wrap=header != "Dealer")
    for p in partners:
        dealer = p.dealer_code + (f" {p.dealer_name}" if p.dealer_name else "")
        table.add_row(
            escape(p.advisor_code),
            escape(p.name),
            escape(dealer),
            p.role,
            "yes" if p.active else "no",
            _registered(p, now, zone),
            "yes" if p.telegram_linked else "no",
            str(p.owners),
        )
    console.print(table)


def import_partners_command(file: Path, as_json: bool) -> None:
    """Body of ``autocircle import partners FILE``: bad rows are reported, the rest imported."""
    with open_app() as ac:
        try:
            rows = svc.read_partner_file(file)
            with session_scope(ac.engine) as session:
                result = svc.import_partners(session, rows, utcnow())
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
        zone = _zone(ac.settings.timezone)
    if as_json:
        payload = {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": [{"line": r.line, "reason": r.reason} for r in result.rejected],
            "codes": {c.advisor_code: c.code for c in result.codes},
            "expires_at": {c.advisor_code: c.expires_at.isoformat() for c in result.codes},
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    console.print(
        f"created {result.created}, updated {result.updated}, unchanged {result.unchanged}, "
        f"rejected {len(result.rejected)}",
        highlight=False,
    )
    for r in result.rejected:
        console.print(f"[yellow]line {r.line}:[/] {escape(r.reason)}", highlight=False, soft_wrap=True)
    if result.codes:
        table = Table(title="One-time registration codes (shown only now)")
        for header in ("Advisor", "Name", "Code", "Expires"):
            table.add_column(header, no_wrap=header == "Code")
        for c in result.codes:
            table.add_row(escape(c.advisor_code), escape(c.name), c.code, _local(c.expires_at, zone))
        console.print(table)


def _print_code(issued: svc.IssuedCode, zone: ZoneInfo, what: str) -> None:
    console.print(f"{what} {escape(issued.advisor_code)} {escape(issued.name)}", highlight=False)
    console.print(
        f"registration code: [bold]{issued.code}[/]  (one-time, shown only now; "
        f"expires {_local(issued.expires_at, zone)})",
        highlight=False,
        soft_wrap=True,
    )


def _registered(p: svc.PartnerSummary, now: datetime, zone: ZoneInfo) -> str:
    status = p.registration_status(now)
    if status == "registered" and p.registered_at:
        return f"yes {p.registered_at.astimezone(zone):%Y-%m-%d}"
    if status == "pending" and p.registration_expires_at:
        return f"pending ({p.registration_expires_at.astimezone(zone):%m-%d})"
    return "code expired" if status == "expired" else "no"


def _partner_json(p: svc.PartnerSummary, now: datetime) -> dict[str, object]:
    return {
        "advisor_code": p.advisor_code,
        "name": p.name,
        "dealer_code": p.dealer_code,
        "dealer_name": p.dealer_name,
        "role": p.role,
        "active": p.active,
        "registration": p.registration_status(now),
        "registered_at": p.registered_at.isoformat() if p.registered_at else None,
        "code_expires_at": (p.registration_expires_at.isoformat() if p.registration_expires_at else None),
        "telegram_linked": p.telegram_linked,
        "owners": p.owners,
    }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"


@app.command("handover")
def handover_(
    from_code: str = typer.Argument(..., help="Advisor code of the leaving partner."),
    to_code: str = typer.Argument(..., help="Advisor code of the partner taking over."),
) -> None:
    """Move a leaving partner's owners, circles, invite links, open bookings, prospects and
    queued notices to another partner, tell the owners, and deactivate the leaving partner."""
    from flows.community.handover import handover
    from flows.templating import Renderer

    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                result = handover(
                    session,
                    Renderer(default_locale=ac.settings.locale),
                    from_code,
                    to_code,
                    utcnow(),
                    actor="cli",
                )
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    console.print(
        f"{result.from_code} → {result.to_code}: {result.owners_moved} owners, "
        f"{result.circles_moved} circles moved; {result.owners_told} owners will be told "
        "(queued in the outbox, sent by the running bot)",
        highlight=False,
    )
    console.print(
        f"also moved: {result.invites_moved} invite links, {result.bookings_moved} open bookings, "
        f"{result.prospects_moved} prospects; queued notices for {result.from_code}: "
        f"{result.notices_moved} re-addressed to {result.to_code}"
        + (
            f", {result.notices_skipped} dropped ({result.to_code} has no Telegram account yet)"
            if result.notices_skipped
            else ""
        )
        + f"; {result.posts_stopped} circle post(s) of {result.from_code} switched off, "
        f"{result.campaigns_cancelled} campaign(s) cancelled; {result.from_code} is now inactive",
        highlight=False,
    )
