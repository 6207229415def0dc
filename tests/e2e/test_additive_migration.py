"""A running bot keeps working across an additive migration (issue 16, item 8): while the bot
serves, ``autocircle db upgrade`` brings its database to a test-only extra revision (a copy of
the migrations plus one revision that adds a nullable column to ``owner``, a table and an
index, the shape of an additive release); the bot's statements name their columns, so its
replies, its prebuilt and (on PostgreSQL) server-prepared queries and an owner's verification,
which writes the altered table, go on as before."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from storage import migrate
from tests.support.harness import BotHarness
from tests.support.scratch_db import scratch_database

pytestmark = pytest.mark.e2e

USER = 7_100_001
OWNER_TG = 7_100_002
VIN = "LSVAB2BJ7MN900001"
EXTRA = '''"""test only: an additive release (a nullable column, a table, an index)"""

import sqlalchemy as sa
from alembic import op

revision = "9999_additive_test"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("owner", sa.Column("test_extra_note", sa.String(), nullable=True))
    op.create_table("test_extra", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("note", sa.String()))
    op.create_index("ix_test_extra_note", "test_extra", ["note"])


def downgrade() -> None:
    op.drop_table("test_extra")
    op.drop_column("owner", "test_extra_note")
'''


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A database of its own: the extra revision must not reach the suite's shared one."""
    if request.param == "sqlite":
        path = tmp_path / "migrating.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    admin_url = os.environ.get("AUTOCIRCLE_TEST_PG_URL")
    if not admin_url:
        pytest.skip("PostgreSQL not configured (AUTOCIRCLE_TEST_PG_URL)")
    with scratch_database(admin_url, "ac_additive") as url:
        yield url


async def test_bot_keeps_serving_across_an_additive_migration(
    sandbox, fresh_db: str, tmp_path: Path, daytime_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli.main import app as cli

    harness = BotHarness(sandbox, fresh_db)
    await harness.start()
    try:
        await harness.add_owner("AM1", name="Mia", vin=VIN, purchase_date=date(2024, 1, 15))
        await sandbox.add_user(USER, first_name="Ann")
        for _ in range(7):  # past psycopg's prepare threshold (5): the bot's queries are prepared
            await sandbox.send_text(USER, USER, "/help")
            await sandbox.wait_for_bot_message(USER, contains="/start")

        migrations = tmp_path / "migrations"  # the shipped migrations plus the test-only revision
        shutil.copytree(migrate.MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
        (migrations / "versions" / "9999_additive_test.py").write_text(
            EXTRA.replace("{head}", migrate.head_revision()), encoding="utf-8"
        )
        monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrations)
        monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", fresh_db)
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert "9999_additive_test" in result.output

        for _ in range(3):  # the same prepared queries, on the altered table
            await sandbox.send_text(USER, USER, "/help")
            await sandbox.wait_for_bot_message(USER, contains="/start")
        await harness.verify(OWNER_TG, VIN)  # writes the altered owner row
        engine = harness.app.engine
        columns = {c["name"] for c in inspect(engine).get_columns("owner")}
        assert "test_extra_note" in columns and "test_extra" in inspect(engine).get_table_names()
        with engine.connect() as conn:
            linked = conn.execute(text("SELECT telegram_user_id FROM owner WHERE external_id = 'AM1'")).scalar()
        assert linked == OWNER_TG
    finally:
        await harness.stop()
