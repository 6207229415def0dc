"""``autocircle templates check``: render every message in every locale with sample data.

Exits 1 with one line per failing template and locale (missing variable, broken Telegram
HTML, missing locale or sample), so CI and an editor of ``templates/`` see the same verdict.
"""

from __future__ import annotations

from pathlib import Path

import typer

from flows.reports.template_check import SAMPLES_NAME, check_templates, problem_lines
from flows.templating import TEMPLATES_DIR

app = typer.Typer(help="Message templates.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Message templates (a group, so ``check`` stays a named sub-command)."""


@app.command("check")
def check(
    path: Path = typer.Argument(TEMPLATES_DIR, help="The templates folder (with zh/, en/ and samples.yaml)."),
    samples: Path | None = typer.Option(None, "--samples", help=f"Sample contexts; default PATH/{SAMPLES_NAME}."),
) -> None:
    """Render every template with sample data in both locales; fail on a missing variable or broken HTML."""
    if not path.is_dir():
        typer.echo(f"{path} is not a folder", err=True)
        raise typer.Exit(1)
    problems = check_templates(path, samples)
    for line in problem_lines(problems):
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{path}: ok")
