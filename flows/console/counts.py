"""The counts behind the operator's overview and matrix (issue 15, item 7).

At a million owners the overview (the funnel per partner, the RARRA stage rates) and the
matrix (owners per cell) are GROUP BYs over every owner: seconds per page view on SQLite. So
``refresh`` computes them set-based into three small tables (``storage.console_models``):

* ``console_cell_count``: owners per (product line, stored cell, online or not), with how many
  of them have an approved referral and a service visit (the referral and revenue stage rates);
* ``console_funnel_count``: per partner (NULL: the unassigned owners), the owners who reached
  each funnel stage and the friends their approved referrals brought;
* ``console_count_refresh``: as of when (one row).

One ``INSERT … SELECT … GROUP BY`` per table, the old rows deleted first, in one transaction:
a page reads either the old counts or the new ones, never half of each. The scheduler runs it
every few minutes and after each segment recompute (``bot.jobs``), so the matrix is never
older than its cells. The pages read the snapshot for an operator (everything) and fall back
to the live aggregate when there is none yet (a fresh database); a partner's own figures stay
live (their owners are a few thousand rows behind an index).

What "reached a stage" means is the funnel report's (``flows.community.funnel``): the stage
or a later one, or that stage's timestamp or a later one's; ``test_console_counts`` holds the
snapshot to the funnel report's numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, or_, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.console_models import ConsoleCellCount, ConsoleCountRefresh, ConsoleFunnelCount
from storage.db import table_of
from storage.gift_models import Referral, ReferralStatus
from storage.models import FUNNEL_ORDER, FunnelStage, Owner
from storage.segments import is_online

_O = table_of(Owner).c
_CELLS = table_of(ConsoleCellCount)
_FUNNEL = table_of(ConsoleFunnelCount)
_REFRESH = table_of(ConsoleCountRefresh)
_STAMPS = {
    FunnelStage.invited: _O.invited_at,
    FunnelStage.online: _O.online_at,
    FunnelStage.verified: _O.verified_at,
}


def reached(stage: FunnelStage) -> ColumnElement[bool]:
    """The owner reached ``stage``: it or a later stage, or its timestamp or a later one set."""
    later = FUNNEL_ORDER[FUNNEL_ORDER.index(stage) :]
    return or_(_O.stage.in_([s.value for s in later]), *(_STAMPS[s].is_not(None) for s in later))


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def cell_select(*where: ColumnElement[bool]) -> Any:
    """Owners per (line, cell, online), with the referring and revenue parts."""
    online = is_online()
    return (
        select(
            _O.product_line,
            _O.maturity,
            _O.activity,
            online.label("online"),
            func.count().label("owners"),
            _count(_O.referral_count > 0).label("referring"),
            _count(_O.service_visits > 0).label("revenue"),
        )
        .where(*where)
        .group_by(_O.product_line, _O.maturity, _O.activity, online)
    )


def funnel_select(*where: ColumnElement[bool]) -> Any:
    """The funnel per partner and the friends each partner's owners brought (approved)."""
    referrals = table_of(Referral).c
    brought = (
        select(referrals.referrer_owner_id.label("owner_id"), func.count().label("n"))
        .where(referrals.status == ReferralStatus.approved.value)
        .group_by(referrals.referrer_owner_id)
        .subquery("brought")
    )
    return (
        select(
            _O.partner_id,
            func.count().label("imported"),
            *(_count(reached(stage)).label(stage.value) for stage in FUNNEL_ORDER[1:]),
            func.coalesce(func.sum(brought.c.n), 0).label("acquired"),
        )
        .select_from(table_of(Owner).outerjoin(brought, brought.c.owner_id == _O.id))
        .where(*where)
        .group_by(_O.partner_id)
    )


@dataclass(frozen=True)
class Refreshed:
    at: datetime
    seconds: float
    cells: int  # rows written
    partners: int


def refresh(engine: Engine, now: datetime) -> Refreshed:
    """Replace the counts with fresh ones, in one transaction (see the module's docstring)."""
    started = time.perf_counter()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # two refreshes at once would both insert
            conn.execute(text("LOCK TABLE console_count_refresh IN EXCLUSIVE MODE"))
        conn.execute(delete(_CELLS))
        cells = conn.execute(
            insert(_CELLS).from_select(
                ["product_line", "maturity", "activity", "online", "owners", "referring", "revenue"], cell_select()
            )
        ).rowcount
        conn.execute(delete(_FUNNEL))
        partners = conn.execute(
            insert(_FUNNEL).from_select(
                ["partner_id", "imported", "invited", "online", "verified", "acquired"], funnel_select()
            )
        ).rowcount
        seconds = round(time.perf_counter() - started, 3)
        conn.execute(delete(_REFRESH))
        conn.execute(insert(_REFRESH).values(id=1, at=now, seconds=seconds))
    return Refreshed(now, seconds, int(cells or 0), int(partners or 0))


def refresh_job(ctx: Any) -> Refreshed:
    """A scheduler job (``ctx`` has ``engine`` and ``now``): ``bot.jobs`` registers it."""
    return refresh(ctx.engine, ctx.now)


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellRow:
    product_line: str
    maturity: str
    activity: str
    online: bool
    owners: int
    referring: int
    revenue: int


@dataclass(frozen=True)
class FunnelCounts:
    partner_id: int | None
    imported: int
    invited: int
    online: int
    verified: int
    acquired: int


def as_of(session: Session) -> datetime | None:
    """When the counts were last refreshed; None: never (read the live aggregate)."""
    return session.execute(select(_REFRESH.c.at)).scalar()


def cell_rows(session: Session, product_line: str | None = None) -> list[CellRow]:
    c = _CELLS.c
    where = [] if product_line is None else [c.product_line == product_line]
    rows = session.execute(
        select(c.product_line, c.maturity, c.activity, c.online, c.owners, c.referring, c.revenue).where(*where)
    ).all()
    return [CellRow(r[0], r[1], r[2], bool(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows]


def funnel_rows(session: Session) -> list[FunnelCounts]:
    c = _FUNNEL.c
    rows = session.execute(select(c.partner_id, c.imported, c.invited, c.online, c.verified, c.acquired)).all()
    return [FunnelCounts(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]
