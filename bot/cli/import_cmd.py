"""`autocircle import ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Import owner and partner data.", no_args_is_help=True)
