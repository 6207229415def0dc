"""SQLite housekeeping: the log is checkpointed by the application's thread, not by whichever
commit comes; a bulk job gets a page cache of its own size."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bot.app import build_app
from bot.config import Settings
from storage import migrate, wal
from storage.db import JOB_CACHE_KIB, make_engine, roomy_sqlite_cache


def _write_rows(engine, rows: int) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(text("INSERT INTO filler (body) VALUES (:b)"), [{"b": "x" * 2000} for _ in range(rows)])


def test_commits_leave_the_checkpoint_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    engine = make_engine(f"sqlite:///{path}", background_checkpoints=True)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == wal.FALLBACK_PAGES
        _write_rows(engine, 3_000)  # ~6 MB, well past SQLite's default threshold of 1,000 pages
        assert path.stat().st_size < 1_000_000  # the commit copied nothing into the file
        busy, frames, copied = wal.WalCheckpointer(engine).checkpoint()
        assert busy == 0 and frames > 1_000 and copied == frames
        assert path.stat().st_size > 5_000_000  # the checkpoint did
    finally:
        engine.dispose()


def test_a_plain_engine_keeps_sqlites_own_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        _write_rows(engine, 3_000)
        assert path.stat().st_size > 5_000_000  # the commit checkpointed, as SQLite does by default
    finally:
        engine.dispose()


def test_the_application_runs_and_stops_the_checkpointer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    migrate.upgrade(url)
    app = build_app(Settings(database_url=url))
    assert app.checkpointer is not None
    thread = app.checkpointer._thread
    assert thread is not None and thread.is_alive()
    _write_rows(app.engine, 3_000)
    app.close()  # a last checkpoint on the way out: the file holds every row
    assert not thread.is_alive()
    reader = make_engine(url)
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM filler")).scalar_one() == 3_000
            _busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            assert frames == copied  # nothing was left in the log to copy
    finally:
        reader.dispose()


def test_a_bulk_job_gets_a_roomy_cache_and_gives_it_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'job.db'}")
    try:
        with engine.begin() as conn:
            before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
            with roomy_sqlite_cache(conn):
                assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -JOB_CACHE_KIB
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == before
    finally:
        engine.dispose()
