"""``autocircle segments recompute``: tag every owner with a matrix cell now (the scheduler
does the same hourly through ``flows.segments.recompute.recompute_all``)."""

from __future__ import annotations

import json

import typer

from bot.cli.common import console, fail, open_app
from bot.config import Settings
from flows.console import counts as console_counts
from flows.errors import AutoCircleError
from flows.segments.recompute import Thresholds, recompute_all
from storage.clock import utcnow

app = typer.Typer(help="Segment engine: the maturity × activity matrix.", no_args_is_help=True)


def thresholds(settings: Settings) -> Thresholds:
    """The rules' plain values from the settings (flows never see the settings object)."""
    return settings.segment_thresholds()


@app.command("recompute")
def recompute(
    rebuild: bool = typer.Option(False, "--rebuild", help="First recompute the owners' counters from the event log."),
    full: bool = typer.Option(
        False, "--full", help="Evaluate every owner, not only those that changed or aged past a threshold."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Recompute owners' cells now (only what can have changed, unless --full); prints how many changed cell."""
    with open_app() as ac:
        try:
            result = recompute_all(ac.engine, thresholds(ac.settings), utcnow(), rebuild=rebuild, incremental=not full)
        except AutoCircleError as exc:
            raise fail(str(exc)) from None
        console_counts.refresh(ac.engine, result.at)  # the console's matrix shows the new cells, as after the job
    if as_json:
        payload = {
            "at": result.at.isoformat(),
            "owners": result.owners,
            "changed": result.changed,
            "familiarity_changed": result.familiarity_changed,
            "rebuilt": result.rebuilt,
            "mode": result.mode,
            "evaluated": result.evaluated,
            "seconds": round(result.seconds, 3),
        }
        typer.echo(json.dumps(payload))
        return
    console.print(
        f"{result.changed} of {result.owners} owners changed cell "
        f"({result.familiarity_changed} more changed familiarity only) "
        f"in {result.seconds:.2f}s ({result.mode}: {result.evaluated} evaluated)"
        + (", counters rebuilt from events" if result.rebuilt else ""),
        highlight=False,
    )
