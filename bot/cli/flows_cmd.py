"""``autocircle flows check|show|runs`` and ``autocircle playbook show``: the flow library as the
operator sees it (files and their problems, runs and why each step did or did not happen,
the matrix of flows per cell)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlmodel import Session, col, select

from bot.cli.common import console, fail, load_settings, open_app
from flows.community.owners_view import owner_by_ref
from flows.engine.flow_files import FlowFileError
from flows.engine.flow_spec import ACTIVITIES, MATURITIES
from flows.engine.flow_why import delivery_notes
from flows.engine.playbook import PLAYBOOK_NAME, check_library, load_playbook
from storage.flow_models import FlowRun, FlowRunLog

app = typer.Typer(help="Flow files and flow runs.", no_args_is_help=True)
playbook_app = typer.Typer(help="The playbook: flows per matrix cell.", no_args_is_help=True)


def _library_dir() -> Path:
    return load_settings().flow_library_dir()


@app.command("check")
def check(
    path: Path | None = typer.Argument(
        None, help="A flow folder or one flow file (default: AUTOCIRCLE_FLOWS_DIR, else the shipped library)."
    ),
) -> None:
    """Validate flow files and the playbook against what the code knows (events, actions,
    gift types, templates in every locale); one line per problem: file:line: field: message."""
    path = path or _library_dir()
    if path.is_file():
        from flows.engine.flow_check import check_references
        from flows.engine.flow_files import load_flow

        try:
            flow = load_flow(path)
            problems = check_references({flow.spec.key: flow})
        except FlowFileError as exc:
            problems = exc.problems
    elif path.is_dir():
        problems = check_library(path)
    else:
        raise fail(f"{path} is not a file or folder")
    for problem in problems:
        typer.echo(str(problem), err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{path}: ok")


@app.command("show")
def show_flow(
    key: str = typer.Argument(..., help="The flow's key (key: in its file)."),
    fmt: str = typer.Option("mermaid", "--format", help="mermaid (text) or png (a picture)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write the PNG (default KEY.png)."),
) -> None:
    """Draw a flow: its steps, branches and waits (Mermaid text, or a PNG picture)."""
    from flows.engine.flow_diagram import flow_graph, to_mermaid, to_png
    from flows.engine.flow_files import load_flows

    if fmt not in ("mermaid", "png"):
        raise fail(f"unknown format {fmt!r}; use mermaid or png")
    try:
        flows = load_flows(_library_dir())
    except FlowFileError as exc:
        raise fail(f"the flow library has problems; run `autocircle flows check` ({len(exc.problems)} found)") from None
    flow = flows.get(key)
    if flow is None:
        raise fail(f"no flow {key!r}; known: {', '.join(sorted(flows))}")
    graph = flow_graph(flow.spec)
    if fmt == "mermaid":
        typer.echo(to_mermaid(graph))
        return
    target = out or Path(f"{key}.png")
    to_png(graph, target)
    typer.echo(f"wrote {target}")


@app.command("runs")
def runs(
    owner: str | None = typer.Option(
        None, "--owner", help="Only this owner's runs and log (owner id from the import, or our id)."
    ),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many rows per table."),
) -> None:
    """Flow runs and the why-log: entered, skipped by a rule, queued, and what became of each
    queued message (sent, waiting for quiet hours to end, skipped by the cap or an opt-out)."""
    with open_app() as ac, Session(ac.engine) as session:
        run_query = select(FlowRun).order_by(col(FlowRun.id).desc()).limit(limit)
        log_query = select(FlowRunLog).order_by(col(FlowRunLog.id).desc()).limit(limit)
        if owner is not None:
            found = owner_by_ref(session, owner)
            if found is None:
                raise fail(f"no owner {owner!r}")
            run_query = run_query.where(col(FlowRun.owner_id) == found.id)
            log_query = log_query.where(col(FlowRunLog.owner_id) == found.id)
        run_rows = list(reversed(session.exec(run_query).all()))
        log_rows = list(reversed(session.exec(log_query).all()))
        settings = ac.settings
        delivery = delivery_notes(session, log_rows, settings.timezone)
    table = Table(title="Flow runs")
    for column in ("run", "owner", "flow", "version", "step", "status", "next at", "end"):
        table.add_column(column)
    for run in run_rows:
        table.add_row(
            str(run.id),
            str(run.owner_id),
            run.flow_key,
            run.flow_version,
            run.step_id or "",
            run.status,
            f"{run.next_at:%Y-%m-%d %H:%M}" if run.next_at else "",
            run.end_reason or "",
        )
    console.print(table)
    zone = ZoneInfo(settings.timezone)
    why = Table(title=f"Why (flow log; times in {settings.timezone})")
    for column in ("at", "owner", "flow", "run", "step", "outcome", "reason", "delivery"):
        why.add_column(column)
    for row in log_rows:
        why.add_row(
            f"{row.at.astimezone(zone):%Y-%m-%d %H:%M}",
            str(row.owner_id),
            row.flow_key,
            str(row.run_id or ""),
            row.step_id or "",
            row.outcome,
            row.reason or "",
            delivery.get(row.id or 0, ""),
        )
    console.print(why)


@playbook_app.command("show")
def show(
    path: Path | None = typer.Option(None, "--path", help="The playbook file (default: the one in the flow library)."),
) -> None:
    """The matrix (maturity × activity) per product line with the flows in each cell."""
    path = path or _library_dir() / PLAYBOOK_NAME
    try:
        playbook = load_playbook(path)
    except FlowFileError as exc:
        raise fail(str(exc)) from None
    for line in ("passenger", "commercial"):
        table = Table(title=f"{line}", show_lines=True)
        table.add_column("maturity \\ activity")
        for activity in ACTIVITIES:
            table.add_column(activity, overflow="fold")
        for maturity in MATURITIES:
            cells = [", ".join(playbook.flows_for(line, f"{maturity}/{activity}")) or "—" for activity in ACTIVITIES]
            table.add_row(maturity, *cells)
        console.print(table)
    if playbook.events:
        events = Table(title="events")
        events.add_column("event")
        events.add_column("flows")
        for event, keys in playbook.events.items():
            events.add_row(event, ", ".join(keys))
        console.print(events)
