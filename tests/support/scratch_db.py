"""A PostgreSQL database of a test's own on the configured server: made, migrated, dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage import migrate
from storage.db import make_engine, normalize_url


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Yield the URL of a fresh, migrated database named ``<prefix>_<random>`` on the server of
    ``admin_url``; it is dropped afterwards (``WITH (FORCE)``: a bot the test left running
    cannot keep it alive)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
            migrate.upgrade(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
