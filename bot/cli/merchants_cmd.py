"""``autocircle merchants …``, ``autocircle offers …``, ``autocircle import merchants FILE`` and
``autocircle report settlement`` (issue 13). The work is in ``flows.merchants``."""

from __future__ import annotations

import io
import json
from datetime import datetime, time
from enum import Enum
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli.common import console, fail, open_app
from flows.community.partners import find_partner
from flows.errors import AutoCircleError
from flows.merchants import commission, directory, offers
from flows.merchants.money import parse_yuan, yuan
from storage.cells import safe_cell
from storage.clock import utcnow
from storage.db import session_scope

app = typer.Typer(help="Merchants (after-sales and car-life providers) and their staff codes.", no_args_is_help=True)
offers_app = typer.Typer(help="Offers of merchants: add, list, change, change status.", no_args_is_help=True)


@app.command("add")
def add(
    code: str = typer.Option(..., "--code", help="Merchant code (unique)."),
    name: str = typer.Option(..., "--name"),
    kind: str = typer.Option(..., "--kind", help="after_sales | car_life"),
    category: str = typer.Option("", "--category", help="e.g. car_wash, tyres, maintenance"),
    city: str = typer.Option("", "--city"),
    district: str = typer.Option("", "--district"),
    dealers: str = typer.Option("", "--dealers", help="Dealer codes served, comma separated."),
    contact: str = typer.Option("", "--contact"),
) -> None:
    """Add a merchant."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                merchant, _ = directory.add_merchant(
                    session,
                    code=code,
                    name=name,
                    kind=kind,
                    category=category,
                    city=city,
                    district=district,
                    dealers=dealers,
                    contact=contact,
                )
                line = f"added merchant {merchant.code} ({merchant.name}, {merchant.kind})"
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    console.print(escape(line), highlight=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Merchants with their registered staff and live offers."""
    with open_app() as ac, session_scope(ac.engine) as session:
        rows = directory.list_merchants(session)
    if as_json:
        typer.echo(json.dumps([r.__dict__ | {"dealers": list(r.dealers)} for r in rows], ensure_ascii=False))
        return
    table = Table(title="Merchants")
    for col in ("code", "name", "kind", "category", "city", "dealers", "staff", "live offers"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(
                escape(str(v))
                for v in (r.code, r.name, r.kind, r.category, r.city, ",".join(r.dealers), r.staff, r.live_offers)
            )
        )
    console.print(table)


@app.command("code")
def code(
    merchant: str = typer.Argument(..., help="Merchant code."),
    staff: str = typer.Option("", "--staff", help="Staff member's name (for the list)."),
) -> None:
    """A one-time registration code for a new staff account (valid 7 days): ``/merchant CODE``."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                issued = directory.issue_staff_code(session, merchant, utcnow(), staff_name=staff)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    console.print(
        f"{escape(issued.merchant_code)} staff code: [bold]{issued.code}[/] "
        f"(send /merchant {issued.code} to the bot; expires {issued.expires_at:%Y-%m-%d %H:%M} UTC)",
        highlight=False,
    )


def import_merchants(
    file: Path = typer.Argument(
        ..., help="Merchants CSV or XLSX: code, name, kind, category, city, district, dealers, contact."
    ),
    rejects: Path | None = typer.Option(None, "--rejects", help="Where rejected rows go."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import merchants (same readers and rejects rules as owners); safe to re-run."""
    from bot.cli.import_cmd import _print_records
    from flows.merchants.importing import import_merchants as run
    from storage.importing import ImportFileError

    with open_app() as ac:
        try:
            summary = run(ac.engine, file, rejects_path=rejects)
        except ImportFileError as exc:
            raise fail(str(exc)) from None
    _print_records(summary, as_json)


def import_offers(
    file: Path = typer.Argument(
        ...,
        help="Offers CSV or XLSX: merchant, key, title, text, text_en, value "
        "(amount_off|percent_off|fixed_price|free_item), amount/percent/cap/item, valid_days or valid_until, "
        "stock, targeting, commission (examples/offers.csv).",
    ),
    rejects: Path | None = typer.Option(None, "--rejects", help="Where rejected rows go."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import offers (same readers and rejects rules as owners); an existing key is left as it
    is, so the file can be imported again."""
    from bot.cli.import_cmd import _print_records
    from flows.merchants.offer_import import import_offers as run
    from storage.importing import ImportFileError

    with open_app() as ac:
        try:
            summary = run(ac.engine, file, timezone=ac.settings.timezone, now=utcnow(), rejects_path=rejects)
        except ImportFileError as exc:
            raise fail(str(exc)) from None
    _print_records(summary, as_json)


def _day(value: str | None, tz: str, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise fail(f"date {value!r}: use YYYY-MM-DD") from None
    return datetime.combine(day, time.max if end else time.min, tzinfo=ZoneInfo(tz))


@offers_app.command("add")
def offers_add(
    merchant: str = typer.Option(..., "--merchant", help="Merchant code."),
    title: str = typer.Option(..., "--title"),
    text: str = typer.Option("", "--text", help="The offer's text (plain text, shown in the brand layout)."),
    text_en: str = typer.Option("", "--text-en", help="The text in English (owners reading English see it)."),
    category: str = typer.Option("", "--category"),
    value_kind: str = typer.Option(..., "--value", help="amount_off | percent_off | fixed_price | free_item"),
    amount: str | None = typer.Option(None, "--amount", help="Yuan off, or the fixed price."),
    percent: int | None = typer.Option(None, "--percent"),
    cap: str | None = typer.Option(None, "--cap", help="Cap of a percent off, yuan."),
    item: str = typer.Option("", "--item", help="The free item."),
    valid_from: str | None = typer.Option(None, "--valid-from", help="YYYY-MM-DD"),
    valid_until: str | None = typer.Option(None, "--valid-until", help="YYYY-MM-DD (fixed dates)"),
    valid_days: int | None = typer.Option(None, "--valid-days", help="Days after claiming."),
    stock: int | None = typer.Option(None, "--stock", help="Total coupons (omit: unlimited)."),
    per_owner: int = typer.Option(1, "--per-owner"),
    points_price: int | None = typer.Option(None, "--points-price", help="Claiming costs this many points."),
    product_lines: str = typer.Option("", "--product-lines"),
    cells: str = typer.Option("", "--cells", help="maturity/activity, comma separated."),
    models: str = typer.Option("", "--models"),
    car_age: str = typer.Option("", "--car-age-months", help="MIN-MAX"),
    mileage: str = typer.Option("", "--mileage-km", help="MIN-MAX"),
    cities: str = typer.Option("", "--cities"),
    dealers: str = typer.Option("", "--dealers"),
    levels: str = typer.Option("", "--levels", help="silver, gold, black"),
    tags: str = typer.Option("", "--tags"),
    commission_fixed: str | None = typer.Option(None, "--commission-fixed", help="Partner commission, yuan."),
    commission_percent: float | None = typer.Option(
        None, "--commission-percent", help="Percent of the declared order value."
    ),
    status: str = typer.Option("draft", "--status", help="draft | live"),
    key: str | None = typer.Option(None, "--key", help="A name flow files use (grant_coupon: {offer: KEY})."),
) -> None:
    """Add an offer of a merchant, with its targeting and the partner's commission."""
    with open_app() as ac:
        tz = ac.settings.timezone
        try:
            kind = "fixed" if commission_fixed else "percent" if commission_percent else "none"
            targeting = {
                k: v
                for k, v in dict(
                    product_lines=product_lines,
                    cells=cells,
                    models=models,
                    car_age_months=car_age,
                    mileage_km=mileage,
                    cities=cities,
                    dealers=dealers,
                    levels=levels,
                    tags=tags,
                ).items()
                if v
            }
            with session_scope(ac.engine) as session:
                offer = offers.create_offer(
                    session,
                    merchant_code=merchant,
                    title=title,
                    body=text,
                    body_en=text_en,
                    category=category,
                    value_kind=value_kind,
                    amount_fen=parse_yuan(amount) if amount else None,
                    percent=percent,
                    cap_fen=parse_yuan(cap) if cap else None,
                    item=item,
                    valid_from=_day(valid_from, tz),
                    valid_until=_day(valid_until, tz, end=True),
                    valid_days=valid_days,
                    stock_total=stock,
                    per_owner_limit=per_owner,
                    points_price=points_price,
                    targeting=targeting,
                    commission_kind=kind,
                    commission_fen=parse_yuan(commission_fixed) if commission_fixed else None,
                    commission_percent=commission_percent,
                    status=status,
                    key=key,
                )
                line = f"added offer {offer.id} ({offer.title}) for {merchant}, {offer.status}"
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    console.print(escape(line), highlight=False)


@offers_app.command("list")
def offers_list(
    merchant: str | None = typer.Option(None, "--merchant"),
    status: str | None = typer.Option(None, "--status"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Offers with stock, claims and redemptions."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                merchant_id = directory.find_merchant(session, merchant).id if merchant else None
                rows = offers.list_offers(session, merchant_id, status)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": r.offer.id,
                        "merchant": r.offer.merchant_code,
                        "title": r.offer.title,
                        "status": r.offer.status,
                        "stock_left": r.offer.stock_left,
                        "claimed": r.claimed,
                        "redeemed": r.redeemed,
                        "targeting": r.offer.targeting,
                    }
                    for r in rows
                ],
                ensure_ascii=False,
            )
        )
        return
    table = Table(title="Offers")
    for col in ("id", "merchant", "title", "category", "status", "stock left", "claimed", "redeemed", "commission"):
        table.add_column(col)
    for r in rows:
        o = r.offer
        table.add_row(
            *(
                escape(str(v))
                for v in (
                    o.id,
                    o.merchant_code,
                    o.title,
                    o.category,
                    o.status,
                    "∞" if o.stock_left is None else o.stock_left,
                    r.claimed,
                    r.redeemed,
                    o.commission,
                )
            )
        )
    console.print(table)


@offers_app.command("set")
def offers_set(
    offer_id: int = typer.Argument(...),
    stock: str | None = typer.Option(None, "--stock", help="Total coupons, or 'unlimited'; not below those claimed."),
    until: str | None = typer.Option(None, "--until", help="New last day YYYY-MM-DD (fixed-dates offers)."),
    title: str | None = typer.Option(None, "--title"),
    body: str | None = typer.Option(None, "--body", "--text", help="The default (zh) text."),
    body_en: str | None = typer.Option(None, "--body-en", "--text-en", help="The English text."),
    commission_fixed: str | None = typer.Option(None, "--commission-fixed", help="Partner commission, yuan."),
    commission_percent: float | None = typer.Option(
        None, "--commission-percent", help="Percent of the declared order value."
    ),
    no_commission: bool = typer.Option(False, "--no-commission", help="No partner commission from now on."),
) -> None:
    """Change an offer's stock, end date, title, texts or commission (validated as ``offers add``
    validates them; a commission change counts for redemptions from now on)."""
    if sum(x is not None for x in (commission_fixed, commission_percent)) + no_commission > 1:
        raise fail("give one of --commission-fixed, --commission-percent, --no-commission")
    unlimited = (stock or "").strip().lower() in ("unlimited", "none", "∞")
    if stock is not None and not unlimited and not stock.strip().isdigit():
        raise fail(f"--stock {stock!r}: a whole number, or 'unlimited'")
    kind = (
        "fixed"
        if commission_fixed
        else "percent"
        if commission_percent is not None
        else "none"
        if no_commission
        else None
    )
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                offer = offers.update_offer(
                    session,
                    offer_id,
                    title=title,
                    body=body,
                    body_en=body_en,
                    stock_total=int(stock) if stock is not None and not unlimited else None,
                    unlimited_stock=unlimited,
                    valid_until=_day(until, ac.settings.timezone, end=True),
                    commission_kind=kind,
                    commission_fen=parse_yuan(commission_fixed) if commission_fixed else None,
                    commission_percent=commission_percent,
                )
                left = "unlimited" if offer.stock_total is None else f"{offer.stock_total - offer.stock_claimed} left"
                line = (
                    f"offer {offer.id} ({offer.title}): stock {left}, "
                    f"commission {offers.commission_text(offer)}, {offer.status}"
                )
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    console.print(escape(line), highlight=False)


@offers_app.command("set-status")
def offers_set_status(
    offer_id: int = typer.Argument(...),
    status: str = typer.Argument(..., help="draft → live → paused → ended"),
) -> None:
    """Move an offer along draft → live → paused → ended."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                offer = offers.set_status(session, offer_id, status)
                line = f"offer {offer.id} is {offer.status}"
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    console.print(line)


class SettlementFormat(str, Enum):
    table = "table"
    xlsx = "xlsx"
    json = "json"


def settlement(
    month: str = typer.Option(..., "--month", help="YYYY-MM (in TIMEZONE)"),
    merchant: str | None = typer.Option(None, "--merchant"),
    partner: str | None = typer.Option(None, "--partner", help="Advisor code."),
    fmt: SettlementFormat = typer.Option(SettlementFormat.table, "--format"),
    out: Path = typer.Option(Path("settlement.xlsx"), "--out", help="Where --format xlsx writes."),
) -> None:
    """Commission per merchant (what they owe) and per partner (what they earned) for a month."""
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                commission.settle_due(session, utcnow())
                merchant_id = directory.find_merchant(session, merchant).id if merchant else None
                partner_id = find_partner(session, partner).id if partner else None
                report = commission.settlement(
                    session, month, ac.settings.timezone, merchant_id=merchant_id, partner_id=partner_id
                )
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    if fmt is SettlementFormat.json:
        typer.echo(
            json.dumps(
                {
                    "month": report.month,
                    "merchants": [t.__dict__ for t in report.merchants],
                    "partners": [t.__dict__ for t in report.partners],
                    "lines": [{**line.__dict__, "at": line.at.isoformat()} for line in report.lines],
                },
                ensure_ascii=False,
            )
        )
        return
    if fmt is SettlementFormat.xlsx:
        try:
            out.write_bytes(settlement_xlsx(report))
        except OSError as exc:
            raise fail(f"cannot write {out}: {exc.strerror}") from None
        console.print(f"wrote {out}")
        return
    for title, totals, who in (
        ("Merchants owe", report.merchants, "merchant"),
        ("Partners earned", report.partners, "partner"),
    ):
        table = Table(title=f"{title} · {report.month}")
        for col in (who, "name", "redemptions", "settled", "pending", "cancelled"):
            table.add_column(col)
        for t in totals:
            table.add_row(
                escape(t.key),
                escape(t.name),
                str(t.redemptions),
                yuan(t.settled_fen),
                yuan(t.pending_fen),
                str(t.cancelled),
            )
        console.print(table)
    table = Table(title="Entries")
    for col in ("redemption", "at", "merchant", "partner", "offer", "owner", "order value", "commission", "status"):
        table.add_column(col)
    for line in report.lines:
        table.add_row(
            str(line.redemption_id),
            f"{line.at:%Y-%m-%d %H:%M}",
            escape(line.merchant_code),
            escape(line.partner_code),
            escape(line.offer_title),
            escape(line.owner_name),
            yuan(line.order_value_fen),
            yuan(line.amount_fen),
            line.status,
        )
    console.print(table)


def settlement_xlsx(report: commission.Settlement) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    assert first is not None  # a new Workbook has one active worksheet
    first.title = "merchants"
    for sheet, who, totals in (
        (first, "merchant", report.merchants),
        (book.create_sheet("partners"), "partner", report.partners),
    ):
        sheet.append([who, *commission.TOTAL_HEADER])
        for t in totals:
            sheet.append([safe_cell(v) if isinstance(v, str) else v for v in t.cells()])
    sheet = book.create_sheet("entries")
    sheet.append(
        [
            "redemption",
            "at (UTC)",
            "merchant",
            "partner",
            "offer",
            "owner",
            "order value (yuan)",
            "commission (yuan)",
            "status",
        ]
    )
    for line in report.lines:
        sheet.append(
            [
                line.redemption_id,
                line.at.replace(tzinfo=None),
                safe_cell(line.merchant_code),
                safe_cell(line.partner_code),
                safe_cell(line.offer_title),
                safe_cell(line.owner_name),
                None if line.order_value_fen is None else line.order_value_fen / 100,
                line.amount_fen / 100,
                line.status,
            ]
        )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def offers_report(
    merchant: str | None = typer.Option(None, "--merchant", help="One merchant's offers only."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The offer funnel (shown → claimed → redeemed) per offer, merchant performance and the
    points liability."""
    from flows.merchants import reports

    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                merchant_id = directory.find_merchant(session, merchant).id if merchant else None
                funnel = reports.offer_funnel(session, merchant_id)
                merchants = [m for m in reports.merchant_performance(session) if not merchant or m.code == merchant]
                liability = reports.points_liability(session)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "offers": [
                        {**r.__dict__, "claim_rate": r.claim_rate, "redeem_rate": r.redeem_rate} for r in funnel
                    ],
                    "merchants": [m.__dict__ for m in merchants],
                    "points": {
                        **{k: v for k, v in liability.__dict__.items() if k != "levels"},
                        "levels": [lv.__dict__ for lv in liability.levels],
                    },
                },
                ensure_ascii=False,
            )
        )
        return
    table = Table(title="Offer funnel")
    for col in (
        "offer",
        "merchant",
        "title",
        "status",
        "shown",
        "claimed",
        "redeemed",
        "claimed/shown",
        "redeemed/claimed",
    ):
        table.add_column(col)
    for r in funnel:
        table.add_row(
            str(r.offer_id),
            escape(r.merchant_code),
            escape(r.title),
            r.status,
            str(r.shown),
            str(r.claimed),
            str(r.redeemed),
            reports._rate(r.claim_rate),
            reports._rate(r.redeem_rate),
        )
    console.print(table)
    table = Table(title="Merchants")
    for col in (
        "merchant",
        "name",
        "live offers",
        "shown",
        "claimed",
        "redeemed",
        "undone",
        "order value",
        "commission",
    ):
        table.add_column(col)
    for m in merchants:
        table.add_row(
            escape(m.code),
            escape(m.name),
            str(m.live_offers),
            str(m.shown),
            str(m.claimed),
            str(m.redeemed),
            str(m.undone),
            yuan(m.order_value_fen),
            yuan(m.commission_fen),
        )
    console.print(table)
    table = Table(title="Points liability")
    for col in ("level", "members", "points held"):
        table.add_column(col)
    for lv in liability.levels:
        table.add_row(escape(lv.level), str(lv.members), str(lv.balance))
    table.add_row("all", str(liability.members), str(liability.balance))
    console.print(table)
    console.print(f"points earned {liability.earned}, spent {liability.spent}, expired {liability.expired}")
