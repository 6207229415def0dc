"""Alembic, driven from code: upgrade, current revision, and the "schema is behind" guard."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from storage.db import normalize_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
UPGRADE_HINT = "autocircle db upgrade"


class SchemaBehindError(RuntimeError):
    """The database was not migrated to the revision this code expects."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_current(engine: Engine) -> None:
    """Stop a program started on a schema that is behind, naming the command that fixes it."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        where = "empty" if current is None else f"at revision {current}"
        raise SchemaBehindError(
            f"database schema is {where}, this version needs {head}: run `{UPGRADE_HINT}`"
        )
