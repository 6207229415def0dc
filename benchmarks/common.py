"""What the benchmarks share: a fresh PostgreSQL database per run, and percentiles.

Each benchmark is run as a script (``python benchmarks/bench_x.py``), so this module is found
beside it on ``sys.path``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


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


def seed_partner(session: Any) -> int:
    """The one advisor (A001 at dealer D001) the benchmarks' owners belong to; its id."""
    from sqlalchemy import select
    from sqlmodel import col

    from flows.community.partners import create_partner
    from storage.clock import utcnow
    from storage.models import Partner

    create_partner(
        session,
        name="Advisor",
        dealer_code="D001",
        advisor_code="A001",
        role="sales",
        now=utcnow(),
        dealer_name="Dealer D001",
    )
    session.flush()
    return int(session.execute(select(col(Partner.id))).scalar_one())


def seed_owners(
    session: Any,
    partner_id: int,
    count: int,
    first_tg: int,
    extra: Callable[[int], dict[str, Any]] | None = None,
    *,
    chunk: int = 20_000,
) -> None:
    """``count`` verified owners of ``partner_id`` linked to Telegram ids from ``first_tg``,
    inserted in chunks with Core; ``extra(i)`` adds columns per owner (cell, locale)."""
    from sqlalchemy import insert

    from storage.models import Owner

    for start in range(0, count, chunk):
        session.execute(
            insert(Owner),
            [
                {
                    "external_id": f"o{i}",
                    "name": f"Owner {i}",
                    "telegram_user_id": first_tg + i,
                    "stage": "verified",
                    "locale": ("en", "zh")[i % 2],
                    "partner_id": partner_id,
                    "advisor_code": "A001",
                    "dealer_code": "D001",
                    "attributes": {},
                    **(extra(i) if extra else {}),
                }
                for i in range(start, min(count, start + chunk))
            ],
        )
