"""The schema comes from migrations, and a program on a schema that is behind stops clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.app import build_app
from bot.cli.main import app as cli
from bot.config import Settings
from storage import migrate
from storage.db import make_engine


def test_migrated_database_is_current(engine) -> None:
    assert migrate.current_revision(engine) == migrate.head_revision()
    migrate.ensure_current(engine)


def test_empty_database_is_refused_with_the_fix_named(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(migrate.SchemaBehindError, match="autocircle db upgrade"):
        build_app(settings)


def test_cli_on_unmigrated_database_exits_with_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", f"sqlite:///{tmp_path / 'old.db'}")
    result = CliRunner().invoke(cli, ["report", "funnel"])
    assert result.exit_code != 0
    assert "autocircle db upgrade" in result.output


def test_db_upgrade_command_migrates(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", url)
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_sqlite_uses_wal_and_foreign_keys(sqlite_engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_config_show_masks_secrets(monkeypatch) -> None:
    monkeypatch.setenv("AUTOCIRCLE_BOT_TOKEN", "123456:ABCDEFSECRETSECRET")
    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", "postgresql://u:hunter2@localhost/db")
    monkeypatch.setenv("AUTOCIRCLE_SEGMENTS__ACTIVE_MAX_DAYS", "5")
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "SECRETSECRET" not in result.output
    assert "hunter2" not in result.output
    assert "segments.active_max_days = 5" in result.output
