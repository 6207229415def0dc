"""Alembic, driven from code: upgrade, current revision, and the "schema is behind" guard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from storage.db import normalize_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
UPGRADE_HINT = "autocircle db upgrade"
#: PostgreSQL advisory-lock key held while migrating, so two processes never migrate at once
MIGRATION_LOCK_KEY = 0x4143_4D49_4752_4154  # "ACMIGRAT"


class SchemaBehindError(RuntimeError):
    """The database was not migrated to the revision this code expects."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision``; on PostgreSQL under the migration lock
    (a second ``autocircle db upgrade`` waits, then finds the schema current)."""
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """A session-level ``pg_advisory_lock`` on a connection of its own for the whole upgrade
    (not pooled: the lock belongs to that session). Nothing to do on SQLite (one file, one
    writer)."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


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
        raise SchemaBehindError(f"database schema is {where}, this version needs {head}: run `{UPGRADE_HINT}`")
