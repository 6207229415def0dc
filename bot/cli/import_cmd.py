"""`autocircle import ...` commands: the owner database (CSV/XLSX), channel partners, service
history and telematics readings.

The work happens in ``storage.importing``; this module turns settings into plain options,
shows a progress bar on a terminal and prints the summary. Exit code 0 whenever the run
completed (bad rows are in the rejects file); 1 with a one-line reason when the file itself
cannot be imported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from bot.cli.common import console, err_console, fail, open_app
from bot.config import Settings
from storage.importing import ImportFileError, ImportProgress, ImportSummary, import_owners
from storage.importing.summary import RecordImportSummary

T = TypeVar("T")

app = typer.Typer(help="Import owner and partner data.", no_args_is_help=True)

# Options every file import shares (one declaration, so their words never drift apart).
REJECTS = typer.Option(None, "--rejects", help="Where rejected rows go (default: FILE-stem.rejects.csv beside FILE).")
AS_JSON = typer.Option(False, "--json", help="Print the summary as one JSON object.")


@app.command("owners")
def owners(
    file: Path = typer.Argument(..., help="Owner export: CSV (UTF-8, UTF-8 with BOM, GBK/GB18030) or XLSX."),
    rejects: Path | None = REJECTS,
    as_json: bool = AS_JSON,
) -> None:
    """Import owners and their vehicles; safe to re-run (unchanged rows are skipped)."""
    with open_app() as application:
        settings = application.settings
        summary = _run_with_progress(
            lambda bar: import_owners(
                application.engine,
                file,
                rejects_path=rejects,
                batch_size=settings.imports.batch_size,
                timezone=settings.timezone,
                progress=bar,
            )
        )
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        _print_summary(summary)


@app.command("services")
def services(
    file: Path = typer.Argument(..., help="Service history: VIN, date, km and optional items, CSV or XLSX."),
    rejects: Path | None = REJECTS,
    as_json: bool = AS_JSON,
) -> None:
    """Import service visits; each updates its car and counts for segments. Safe to re-run."""
    from flows.service.due import ServiceRowApplier
    from storage.importing.services import import_services

    _import_records(
        file,
        rejects,
        as_json,
        import_services,
        lambda settings: ServiceRowApplier(settings.service.limits(settings.timezone), source=f"import:{file.name}"),
    )


@app.command("telematics")
def telematics(
    file: Path = typer.Argument(
        ..., help="Telematics readings: VIN, odometer km, time and optional fault codes, CSV or XLSX."
    ),
    rejects: Path | None = REJECTS,
    as_json: bool = AS_JSON,
) -> None:
    """Import odometer readings; new recent fault codes tell owner and partner. Safe to re-run."""
    from flows.service.telematics import TelematicsRowApplier
    from flows.templating import Renderer
    from storage.clock import utcnow
    from storage.importing.telematics import import_telematics

    _import_records(
        file,
        rejects,
        as_json,
        import_telematics,
        lambda settings: TelematicsRowApplier(
            Renderer(default_locale=settings.locale),
            settings.service.limits(settings.timezone),
            settings.service.fault_policy(),
            source=f"import:{file.name}",
            now=utcnow,
        ),
    )


def _import_records(
    file: Path,
    rejects: Path | None,
    as_json: bool,
    importer: Callable[..., RecordImportSummary],
    make_applier: Callable[[Settings], Any],
) -> None:
    """The shared run of a record import (service visits, telematics): settings, the row
    applier, a progress bar on a terminal, the one-line refusal of an unreadable file, the
    summary."""
    with open_app() as application:
        settings = application.settings
        applier = make_applier(settings)
        summary = _run_with_progress(
            lambda bar: importer(
                application.engine,
                file,
                applier,
                rejects_path=rejects,
                batch_size=settings.service.batch_size,
                timezone=settings.timezone,
                progress=bar,
            )
        )
    _print_records(summary, as_json)


def _run_with_progress(run: Callable[[_ProgressBar | None], T]) -> T:
    """A progress bar on a terminal around ``run``; an unreadable file ends with one line."""
    bar = _ProgressBar() if err_console.is_terminal else None
    try:
        return run(bar)
    except ImportFileError as exc:
        raise fail(str(exc)) from None
    finally:
        if bar is not None:
            bar.close()


def _print_records(summary: RecordImportSummary, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), ensure_ascii=False))
        return

    def line(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)

    kind = summary.format + (f", {summary.encoding}" if summary.encoding else "")
    line(
        f"{escape(summary.path)} ({kind}): {summary.read:,} rows read in {summary.seconds:.1f} s, "
        f"{summary.rows_per_s:,.0f} rows/s"
    )
    line(f"  imported    {summary.imported:>9,}")
    line(f"  updated     {summary.updated:>9,}")
    line(f"  unchanged   {summary.unchanged:>9,}")
    rejected = f"  rejected    {summary.rejected:>9,}"
    if summary.rejects_path:
        rejected += f"  see {escape(summary.rejects_path)}"
    line(rejected)
    for name, count in summary.counts:
        line(f"  {name.replace('_', ' '):<11} {count:>9,}")
    if summary.ignored_columns:
        line(f"  ignored columns: {escape(', '.join(summary.ignored_columns))}")


@app.command("partners")
def partners(
    file: Path = typer.Argument(..., help="Partners CSV: advisors with their dealer."),
    as_json: bool = AS_JSON,
) -> None:
    """Import channel partners (dealer advisors) and their dealers."""
    from bot.cli.partners_cmd import import_partners_command

    import_partners_command(file, as_json)


class _ProgressBar:
    """A Rich progress bar on stderr, by bytes for CSV and by sheet rows for XLSX."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, update: ImportProgress) -> None:
        if self._progress is None:
            amount = DownloadColumn() if update.unit == "bytes" else MofNCompleteColumn()
            self._progress = Progress(
                TextColumn("importing"),
                BarColumn(),
                TaskProgressColumn(),
                amount,
                TextColumn("{task.fields[rows]:,} rows"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("import", total=update.total, rows=0)
        assert self._task is not None
        self._progress.update(self._task, completed=update.done, total=update.total, rows=update.rows)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print_summary(summary: ImportSummary) -> None:
    def line(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)

    kind = summary.format + (f", {summary.encoding}" if summary.encoding else "")
    line(
        f"{escape(summary.path)} ({kind}): {summary.read:,} rows read in {summary.seconds:.1f} s, "
        f"{summary.rows_per_s:,.0f} rows/s"
    )
    new_owners = f"{summary.owners_created:,} new owner{'' if summary.owners_created == 1 else 's'}"
    line(f"  imported    {summary.imported:>9,}  ({new_owners})")
    line(f"  updated     {summary.updated:>9,}")
    line(f"  unchanged   {summary.unchanged:>9,}")
    rejected = f"  rejected    {summary.rejected:>9,}"
    if summary.rejects_path:
        rejected += f"  see {escape(summary.rejects_path)}"
    line(rejected)
    unassigned = f"  unassigned  {summary.unassigned:>9,}"
    if summary.unknown_advisor_codes:
        shown = summary.unknown_advisor_codes[:20]
        codes = ", ".join(f"{escape(code)} ({rows:,})" for code, rows in shown)
        if len(summary.unknown_advisor_codes) > len(shown):
            codes += f" and {len(summary.unknown_advisor_codes) - len(shown):,} more"
        unassigned += f"  unknown advisor codes: {codes}"
    line(unassigned)
    if summary.dealers_created:
        line(f"  new dealers: {escape(', '.join(summary.dealers_created))}")
    if summary.extra_columns:
        line(f"  kept as owner attributes: {escape(', '.join(summary.extra_columns))}")
