"""``autocircle db upgrade`` under a PostgreSQL advisory lock (issue 16, item 8): an upgrade
waits while another holds the lock, and two upgrades started at once on an empty database both
end at head (without the lock the second would collide with the first's CREATE TABLEs)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage import migrate
from storage.db import make_engine, normalize_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    admin_url = os.environ.get("AUTOCIRCLE_TEST_PG_URL")
    if not admin_url:
        pytest.skip("PostgreSQL not configured (AUTOCIRCLE_TEST_PG_URL)")
    name = f"ac_mig_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_waits_for_the_lock_then_two_at_once_both_succeed(empty_pg_url: str) -> None:
    engine = make_engine(empty_pg_url)
    try:
        done = threading.Event()
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": migrate.MIGRATION_LOCK_KEY})
            holder.commit()
            worker = threading.Thread(target=lambda: (migrate.upgrade(empty_pg_url), done.set()))
            worker.start()
            time.sleep(1.5)
            assert not done.is_set()  # waiting for the lock
            assert migrate.current_revision(engine) is None
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": migrate.MIGRATION_LOCK_KEY})
            holder.commit()
        worker.join(120)
        assert done.is_set() and migrate.current_revision(engine) == migrate.head_revision()
        with engine.begin() as conn:  # back to empty, then two upgrades at once
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(migrate.upgrade, empty_pg_url) for _ in range(2)]:
                future.result(timeout=180)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
