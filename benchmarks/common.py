"""What the benchmarks share: a fresh PostgreSQL database per run, and percentiles.

Each benchmark is run as a script (``python benchmarks/bench_x.py``), so this module is found
beside it on ``sys.path``.
"""

from __future__ import annotations

import math


def pg_fresh(server_url: str, database: str) -> str:
    """A URL of ``database`` on the server ``server_url`` names, dropped and created anew
    (the benchmark owns it; nothing else on the server is touched)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from storage.db import normalize_url

    url = make_url(normalize_url(server_url))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return url.set(database=database).render_as_string(hide_password=False)


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile (``pct`` in 0–100); NaN for no values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] if ordered else float("nan")
