"""``autocircle db upgrade|current``: schema migrations with Alembic."""

from __future__ import annotations

import typer

from bot.cli.common import console, load_settings
from storage import migrate
from storage.db import make_engine

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database named by AUTOCIRCLE_DATABASE_URL to the latest schema."""
    settings = load_settings()
    migrate.upgrade(settings.database_url, revision)
    engine = make_engine(settings.database_url)
    try:
        console.print(f"database at revision {migrate.current_revision(engine)}")
    finally:
        engine.dispose()


@app.command("current")
def current() -> None:
    """Print the database's revision and the revision this code expects."""
    engine = make_engine(load_settings().database_url)
    try:
        console.print(f"database: {migrate.current_revision(engine)}  code: {migrate.head_revision()}")
    finally:
        engine.dispose()
