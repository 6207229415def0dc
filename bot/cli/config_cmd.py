"""``autocircle config show``: the effective configuration, secrets masked."""

from __future__ import annotations

import json

import typer

from bot.cli.common import console, load_settings
from bot.config import masked

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Print the effective configuration (environment, .env, defaults) with secrets masked."""
    data = masked(load_settings())
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                console.print(f"{key}.{sub} = {sub_value}", highlight=False)
        else:
            console.print(f"{key} = {value}", highlight=False)
