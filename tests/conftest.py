"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured) and the CLI.

PostgreSQL comes from ``AUTOCIRCLE_TEST_PG_URL`` (scripts/test starts a local server and sets
it). Under CI a missing PostgreSQL is an error, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from storage import migrate
from storage.db import make_engine
from tests.support.scratch_db import scratch_database

PG_URL_ENV = "AUTOCIRCLE_TEST_PG_URL"


def _pg_admin_url() -> str | None:
    url = os.environ.get(PG_URL_ENV)
    if not url and os.environ.get("CI"):
        raise RuntimeError(f"CI run without {PG_URL_ENV}: PostgreSQL tests must not skip in CI")
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per run; each test gets a copy (fast and isolated)."""
    path = tmp_path_factory.mktemp("dbtemplate") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this run, migrated once, dropped at the end."""
    admin_url = _pg_admin_url()
    if not admin_url:
        yield None
        return
    with scratch_database(admin_url, "ac_test") as url:
        yield url


def _truncate_all(engine: Engine) -> None:
    from sqlmodel import SQLModel

    import storage.schema  # noqa: F401

    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database URL on each backend (PostgreSQL skipped only outside CI)."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    pg_url = request.getfixturevalue("pg_database_url")
    if pg_url is None:
        pytest.skip(f"PostgreSQL not configured ({PG_URL_ENV})")
    engine = make_engine(pg_url)
    _truncate_all(engine)
    engine.dispose()
    return pg_url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty SQLite database URL (for tests that need only one backend)."""
    path = tmp_path / "test.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path) -> str:
    """Point the CLI at the test database and run it from a scratch directory."""
    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    return db_url
