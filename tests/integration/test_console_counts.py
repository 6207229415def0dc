"""The operator's overview and matrix read counts a job refreshes (issue 15, item 7): the
refreshed counts are the funnel and matrix reports' numbers, a refresh replaces the old rows,
the pages read them and say "as of HH:MM", a fresh database (no refresh yet) shows the live
numbers, and the segment recompute job refreshes them at its end."""

from __future__ import annotations

from datetime import timedelta

from console_helpers import client, sign_in
from sqlalchemy import func, select
from sqlmodel import Session

from bot.jobs import CONSOLE_COUNTS_MINUTES, recompute_then_count
from bot.scheduler import JobContext
from flows.community.funnel import funnel_report
from flows.console import counts, figures
from flows.console.figures import Scope
from flows.segments.matrix_report import MatrixScope, matrix_report
from storage import clock
from storage.console_models import ConsoleCellCount, ConsoleFunnelCount
from storage.gift_models import Referral
from storage.models import Dealer, Owner, Partner


def _seed(engine) -> None:
    """Two dealers' partners and unassigned owners, in every funnel stage, both product lines,
    some with service visits and approved (and pending) referrals."""
    now = clock.utcnow()
    with Session(engine) as session:
        d1, d2 = Dealer(code="D1", name="One"), Dealer(code="D2", name="Two")
        session.add_all([d1, d2])
        session.flush()
        partners = [
            Partner(name="Alice", dealer_id=d1.id, advisor_code="A1"),
            Partner(name="Bob", dealer_id=d2.id, advisor_code="B1"),
            Partner(name="Carol (no owners)", dealer_id=d2.id, advisor_code="C1"),
        ]
        session.add_all(partners)
        session.flush()
        stages = ("imported", "invited", "online", "verified")
        cells = (("beginner", "active"), ("growing", "declining"), ("mature", "churned"), ("growing", "dormant"))
        owners = []
        for n in range(40):
            stage = stages[n % 4]
            online = stage in ("online", "verified")
            maturity, activity = cells[n % 3] if online else ("beginner", "dormant")
            owners.append(
                Owner(
                    name=f"Owner {n}",
                    partner_id=None if n % 7 == 0 else partners[n % 2].id,
                    product_line="commercial" if n % 5 == 0 else "passenger",
                    stage=stage,
                    invited_at=now if n % 9 == 1 else None,  # a stamp ahead of the stage
                    online_at=now if online else None,
                    verified_at=now if stage == "verified" else None,
                    maturity=maturity,
                    activity=activity,
                    service_visits=n % 3,
                    referral_count=1 if n % 6 == 0 else 0,
                )
            )
        session.add_all(owners)
        session.flush()
        for i, status in enumerate(("approved", "approved", "pending", "approved")):
            session.add(
                Referral(
                    referrer_owner_id=owners[i * 6].id, referee_user_id=9900 + i, status=status, first_touch_at=now
                )
            )
        session.commit()


def test_refreshed_counts_are_the_reports_numbers(engine) -> None:
    _seed(engine)
    with Session(engine) as session:
        live = figures.overview(session, Scope())
        live_matrix = {line: figures.matrix(session, Scope(), line) for line in (None, "passenger", "commercial")}
    assert live.as_of is None  # never refreshed: the live aggregate
    now = clock.utcnow()
    counts.refresh(engine, now)
    counts.refresh(engine, now + timedelta(minutes=1))  # replaces, never adds up
    with Session(engine) as session:
        assert counts.as_of(session) == now + timedelta(minutes=1)
        snap = figures.overview(session, Scope())
        assert snap.as_of == now + timedelta(minutes=1)
        assert snap.funnel == funnel_report(session) == live.funnel
        assert snap.dealers == live.dealers and snap.stages == live.stages
        assert [s.part for s in snap.stages] != [0] * 5  # the seed reaches every stage rate
        for line, report in live_matrix.items():
            counted = figures.matrix(session, Scope(), line)
            assert counted.counts == report.counts and counted.not_online == report.not_online
            assert counted.counts == matrix_report(session, MatrixScope(product_line=line)).counts
        assert session.execute(select(func.count()).select_from(ConsoleFunnelCount)).scalar() == 3  # A, B, none
        assert session.execute(select(func.sum(ConsoleCellCount.owners))).scalar() == 40


async def test_pages_read_the_counts_and_say_as_of_when(engine) -> None:
    _seed(engine)
    async with client(engine) as c:
        await sign_in(c, engine)
        page = await (await c.get("/?lang=en")).text()
        assert "live figures" in page and 'id="total-imported">40<' in page  # a fresh database: live
        counts.refresh(engine, clock.utcnow())
        with Session(engine) as session:  # an owner arrives after the refresh
            session.add(Owner(name="Late", stage="imported"))
            session.commit()
        page = await (await c.get("/?lang=en")).text()
        assert "figures as of " in page and 'id="total-imported">40<' in page  # the counts, not live
        zh = await (await c.get("/matrix?lang=zh")).text()
        assert "数字截至" in zh and 'data-cell="not_online"' in zh
        with Session(engine) as session:
            not_online = figures.matrix(session, Scope(), None).not_online
        assert 'data-cell="not_online" href="/matrix/cell?cell=not_online" ' in zh
        assert f">{not_online}</a>" in zh  # 20 of the seed, not 21 with the late owner


def test_the_recompute_job_refreshes_the_counts_at_its_end(engine) -> None:
    _seed(engine)
    calls: list[str] = []

    def recompute(ctx: JobContext) -> str:
        calls.append("recompute")
        with Session(ctx.engine) as session:
            assert counts.as_of(session) is None  # the counts come after the cells
        return "done"

    now = clock.utcnow()
    job = recompute_then_count(recompute)  # type: ignore[arg-type]  # reason: a stand-in recompute
    assert job(JobContext(engine=engine, now=now, policy=None)) == "done"  # type: ignore[arg-type]  # reason: the job reads no policy
    with Session(engine) as session:
        assert calls == ["recompute"] and counts.as_of(session) == now
    assert 1 <= CONSOLE_COUNTS_MINUTES <= 60
