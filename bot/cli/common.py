"""Helpers shared by CLI commands: settings, the app, and one-line fatal errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from bot.app import App, build_app
from bot.config import Settings
from storage.audit import AuditKind, record_audit
from storage.db import session_scope
from storage.migrate import SchemaBehindError

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error on stderr and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_settings() -> Settings:
    return Settings()


#: Parameter names whose values never go into the audit log (advisor codes are not secret).
_SECRET_NAMES = frozenset({"code", "token", "registration_code", "bot_token"})
_SECRET_PARTS = ("secret", "password")


def _is_secret(name: str) -> bool:
    name = name.lstrip("-").replace("-", "_")
    return name in _SECRET_NAMES or any(part in name for part in _SECRET_PARTS)


@contextmanager
def open_app(settings: Settings | None = None, *, audited: bool = True) -> Iterator[App]:
    """Build the app for one command; a schema that is behind stops it with the fix named.

    Every command that opens the database is an operator action: it is written to the audit
    log (command, arguments without secrets, outcome) when it ends, whatever the outcome.
    """
    try:
        app = build_app(settings or load_settings())
    except SchemaBehindError as exc:
        raise fail(str(exc)) from None
    outcome = "ok"
    try:
        yield app
    except typer.Exit as exc:
        outcome = "ok" if exc.exit_code == 0 else "refused"
        raise
    except BaseException:
        outcome = "error"
        raise
    finally:
        try:
            if audited:
                _audit_command(app, outcome)
        finally:
            app.close()


def _audit_command(app: App, outcome: str) -> None:
    command, params = _current_command()
    try:
        with session_scope(app.engine) as session:
            record_audit(
                session, AuditKind.operator_action, actor="cli", subject=command[:128], outcome=outcome, params=params
            )
    except Exception:  # noqa: BLE001 - the audit row must never turn a done command into a failure
        logging.getLogger(__name__).warning("could not write the audit row for %s", command)


def _current_command() -> tuple[str, dict[str, object]]:
    """The running command's path and parameters, secret-looking ones masked.

    Typer 0.29 vendors click and exposes no public accessor for the current context, hence
    the private import; without it the process's own command line is used.
    """
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - a Typer without the vendored click
        return " ".join(_masked_args(sys.argv[1:3])), {"argv": _masked_args(sys.argv[1:])}
    ctx = get_current_context(silent=True)
    if ctx is None:
        return "", {}
    params = {name: ("***" if _is_secret(name) else _plain(value)) for name, value in ctx.params.items()}
    path = ctx.command_path.split(" ", 1)
    return (path[1] if len(path) > 1 else path[0]), params


def _plain(value: object) -> object:
    """A JSON-storable form of a CLI parameter (paths and enums as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(getattr(value, "value", value))


def _masked_args(args: list[str]) -> list[str]:
    """The command line with the values of secret-looking options replaced by ``***``."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        secret = arg.startswith("--") and _is_secret(name)
        if secret and eq:
            out.append(f"{name}=***")
        else:
            out.append(arg)
            hide_next = secret
    return out
