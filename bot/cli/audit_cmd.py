"""``autocircle audit``: the security audit log (failed verifications, lockouts, partner
registration and deactivation, handovers, operator actions), oldest first."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from enum import Enum

import typer
from rich.table import Table

from bot.cli.common import console, fail, open_app
from storage.audit import AuditKind, audit_entries
from storage.clock import utcnow
from storage.db import session_scope


class Format(str, Enum):
    table = "table"
    json = "json"


_AGO = re.compile(r"^(\d+)\s*([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime) -> datetime:
    """``7d``, ``24h``, ``2w`` (ago), or an ISO date/time (UTC unless it names an offset)."""
    text = value.strip().lower()
    if match := _AGO.match(text):
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"--since {value!r}: use a date (2026-12-01), a time (2026-12-01T08:00) or 7d / 24h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def audit(
    since: str | None = typer.Option(None, "--since", help="From a date/time or an age: 2026-12-01, 24h, 7d."),
    kind: list[AuditKind] = typer.Option([], "--kind", help="Only these kinds (repeatable)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most N rows."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json (one object per line)."),
) -> None:
    """List the audit log, oldest first."""
    try:
        start = parse_since(since, utcnow()) if since else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    with open_app(audited=False) as ac, session_scope(ac.engine) as session:
        rows = audit_entries(session, since=start, kinds=kind, limit=limit)
    if fmt is Format.json:
        for row in rows:
            typer.echo(
                json.dumps(
                    {
                        "at": row.at.isoformat(),
                        "kind": row.kind,
                        "actor": row.actor,
                        "subject": row.subject,
                        "data": row.data,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table(title=f"Audit log ({len(rows)} rows)")
    for column in ("at (UTC)", "kind", "actor", "subject"):
        table.add_column(column, no_wrap=True)
    table.add_column("details", overflow="fold")
    for row in rows:
        details = ", ".join(f"{k}={v}" for k, v in sorted(row.data.items()))
        table.add_row(f"{row.at:%Y-%m-%d %H:%M:%S}", row.kind, row.actor, row.subject, details)
    console.print(table)
