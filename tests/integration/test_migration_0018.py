"""Migration 0018 adds the console's count tables (empty: the pages read live until the first
refresh), a refresh fills them, and going back drops them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from flows.console import counts
from storage import clock, migrate
from storage.db import make_engine

TABLES = {"console_cell_count", "console_funnel_count", "console_count_refresh"}


def test_the_count_tables_come_and_go(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url, "0017")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO owner (name, product_line, stage, attributes, unreachable, opted_out, maturity, "
                "activity, created_at, updated_at) VALUES ('Wang', 'passenger', 'imported', '{}', 0, 0, "
                "'beginner', 'dormant', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    assert not TABLES & set(inspect(engine).get_table_names())
    migrate.upgrade(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM console_count_refresh")).scalar() == 0  # live until refreshed
    done = counts.refresh(engine, clock.utcnow())
    assert (done.cells, done.partners) == (1, 1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT imported, verified FROM console_funnel_count")).one() == (1, 0)
    command.downgrade(migrate.alembic_config(url), "0017")
    assert not TABLES & set(inspect(engine).get_table_names())
    engine.dispose()
