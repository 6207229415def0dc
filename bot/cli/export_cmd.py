"""``autocircle export owners``: owners with segment, cell, last activity and funnel stage to
XLSX, streamed (bounded memory for big bases)."""

from __future__ import annotations

from pathlib import Path

import typer

from bot.cli.common import console, fail, open_app
from flows.community.partners import find_partner
from flows.errors import AutoCircleError
from flows.reports.owner_export import export_owners
from storage.db import session_scope

app = typer.Typer(help="Exports for analysis in Excel.", no_args_is_help=True)


@app.command("owners")
def owners(
    out: Path = typer.Option(..., "--out", help="The .xlsx file to write."),
    partner: str | None = typer.Option(None, "--partner", help="Only this advisor code's owners."),
    masked: bool = typer.Option(False, "--mask", help="Hide the middle of phones and VINs (as partners see them)."),
    locale: str | None = typer.Option(None, "--locale", help="zh or en headers (default: settings)."),
) -> None:
    """Owners with familiarity, maturity, activity, cell, last activity and funnel stage."""
    if out.suffix.lower() != ".xlsx":
        raise fail("--out must name an .xlsx file")
    with open_app() as ac:
        try:
            with session_scope(ac.engine) as session:
                partner_id = find_partner(session, partner).id if partner else None
                result = export_owners(
                    session,
                    out,
                    partner_id=partner_id,
                    masked=masked,
                    locale=locale or ac.settings.locale,
                    timezone=ac.settings.timezone,
                )
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise fail(f"{out}: {exc.strerror or exc}") from None
    console.print(f"wrote {result.rows} owners to {out}", highlight=False)
