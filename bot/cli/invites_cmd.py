"""``autocircle invites export``: personal deep links for a partner's owners not yet online."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from bot.cli.common import console, fail, open_app
from flows import invites
from flows.errors import PartnerNotFoundError
from flows.partners import find_partner
from storage.clock import utcnow
from storage.db import session_scope

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
    """Issue (or reuse) each not-yet-online owner's token and write owner id, name, token, link."""
    if fmt is Format.xlsx and out is None:
        raise fail("--format xlsx needs --out FILE.xlsx")
    with open_app() as ac:
        with session_scope(ac.engine) as session:
            try:
                partner_id = find_partner(session, partner).id
            except PartnerNotFoundError as exc:
                raise fail(str(exc)) from None
            rows = invites.issue_invites(session, partner_id, bot_username or ac.settings.bot_username, utcnow())
    if fmt is Format.xlsx:
        assert out is not None
        out.write_bytes(invites.to_xlsx(rows))
        console.print(f"{len(rows)} invites written to {out}")
    elif out is not None:
        out.write_text(invites.to_csv(rows), encoding="utf-8-sig")
        console.print(f"{len(rows)} invites written to {out}")
    else:
        sys.stdout.write(invites.to_csv(rows))
