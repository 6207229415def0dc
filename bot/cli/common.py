"""Helpers shared by CLI commands: settings, the app, and one-line fatal errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from bot.app import App, build_app
from bot.config import Settings
from storage.migrate import SchemaBehindError

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error on stderr and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_settings() -> Settings:
    return Settings()


@contextmanager
def open_app(settings: Settings | None = None) -> Iterator[App]:
    """Build the app for one command; a schema that is behind stops it with the fix named."""
    try:
        app = build_app(settings or load_settings())
    except SchemaBehindError as exc:
        raise fail(str(exc)) from None
    try:
        yield app
    finally:
        app.close()
