"""``autocircle invites export``: personal deep links for a partner's owners not yet online."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from bot.cli.common import console, fail, open_app
from flows.community import invites
from flows.community.partners import find_partner
from flows.errors import PartnerNotFoundError
from storage.clock import utcnow
from storage.db import pk, session_scope

app = typer.Typer(help="Personal invite links for owners.", no_args_is_help=True)


class Format(str, Enum):
    csv = "csv"
    xlsx = "xlsx"


@app.command("export")
def export(
    partner: str = typer.Option(..., "--partner", help="Advisor code of the partner."),
    fmt: Format = typer.Option(Format.csv, "--format", help="csv (stdout by default) or xlsx."),
    out: Path | None = typer.Option(None, "--out", help="Output file (required for xlsx)."),
    bot_username: str | None = typer.Option(None, "--bot-username", help="Defaults to AUTOCIRCLE_BOT_USERNAME."),
) -> None:
    """Issue each not-yet-online owner's link (their live token, or a fresh one once it has
    expired: security.invite_valid_days) and write owner id, name, phone, token, link."""
    if fmt is Format.xlsx and out is None:
        raise fail("--format xlsx needs --out FILE.xlsx")
    with open_app() as ac, session_scope(ac.engine) as session:
        try:
            found = find_partner(session, partner)
        except PartnerNotFoundError as exc:
            raise fail(str(exc)) from None
        if not found.active:
            raise fail(f"partner {found.advisor_code} is inactive: links would lead to nobody")
        partner_id = pk(found)
        rows = invites.issue_invites(
            session,
            partner_id,
            bot_username or ac.settings.bot_username,
            utcnow(),
            valid_days=ac.settings.security.invite_valid_days,
            actor="cli",
        )
    if fmt is Format.xlsx:
        assert out is not None
        out.write_bytes(invites.to_xlsx(rows))
        console.print(f"{len(rows)} invites written to {out}")
    elif out is not None:
        out.write_text(invites.to_csv(rows), encoding="utf-8-sig")
        console.print(f"{len(rows)} invites written to {out}")
    else:
        sys.stdout.write(invites.to_csv(rows))
