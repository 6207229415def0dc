"""The opportunity report per partner and per dealer: tasks posted that reached their owners,
matched and completed ones attributed to them, match rate and time to match; the operations
workbook's tasks sheet shows the same rows."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlmodel import Session

from flows.delivery.clock import FrozenClock, uninstall
from flows.opportunities import capacity, demand, matching, ratings, tasks
from flows.opportunities.ratings import Party
from flows.opportunities.reports import opportunity_report
from flows.reports.operations_workbook import operations_xlsx
from flows.templating import Renderer
from storage.db import pk
from storage.models import Dealer, Owner, Partner
from storage.opportunity_models import TaskOffer, TaskState

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
R = Renderer(default_locale="en")


@pytest.fixture
def clock():
    c = FrozenClock(NOW)
    c.install()
    yield c
    uninstall()


def _owner(session: Session, n: int, partner_id: int | None) -> int:
    o = Owner(
        external_id=f"C{n}",
        name=f"Driver {n}",
        product_line="commercial",
        stage="verified",
        telegram_user_id=10_000 + n,
        partner_id=partner_id,
    )
    session.add(o)
    session.flush()
    capacity.set_vehicle(
        session, pk(o), vehicle_class="light_truck", payload_t=5.0, base="广州/越秀区", radius_km=100, now=NOW
    )
    return pk(o)


def _task(session: Session, demand_id: int, day: int, offers: list[tuple[int, int | None]]) -> int:
    """A task offered to ``(owner, via partner)`` pairs (as waves or pushes leave them)."""
    draft = tasks.TaskDraft(
        "广州/天河区",
        "深圳/南山区",
        NOW + timedelta(days=day),
        NOW + timedelta(days=day, hours=6),
        "light_truck",
        3.0,
    )
    task_id = pk(tasks.post_task(session, demand_id, draft, actor="staff:1", now=NOW))
    for owner_id, via in offers:
        session.add(TaskOffer(task_id=task_id, owner_id=owner_id, via_partner_id=via, offered_at=NOW))
    if offers:
        tasks.move(session, task_id, TaskState.offered, actor="t", reason="t", now=NOW, sources=["open"])
    return task_id


def test_per_partner_and_dealer_posted_matched_completed_and_time_to_match(engine, clock) -> None:
    with Session(engine) as s:
        issued = demand.create_account(s, code="S001", company="Acme", city="广州", now=NOW)
        demand.redeem_staff_code(s, issued.code, 5000, NOW)
        d = pk(demand.find_account(s, "S001"))
        d1, d2 = Dealer(code="D1", name="North"), Dealer(code="D2", name="South")
        s.add_all([d1, d2])
        s.flush()
        p1, p2, p3 = (
            Partner(name=f"P{n}", dealer_id=pk(dealer), advisor_code=f"A{n}", telegram_user_id=7000 + n)
            for n, dealer in ((1, d1), (2, d1), (3, d2))
        )
        s.add_all([p1, p2, p3])
        s.flush()
        a, b, c, e = _owner(s, 1, pk(p1)), _owner(s, 2, pk(p2)), _owner(s, 3, pk(p3)), _owner(s, 4, None)
        t1 = _task(s, d, 1, [(a, None), (c, None)])  # a takes it after 30 min and completes it
        t2 = _task(s, d, 2, [(b, None)])  # b takes it after 90 min
        _task(s, d, 3, [(a, None)])  # still offered
        _task(s, d, 4, [])  # reached nobody
        _task(s, d, 5, [(e, pk(p3))])  # pushed by p3 to an owner of no partner
        matching.accept(s, R, t1, a, NOW + timedelta(minutes=30))
        ratings.mark_done(s, R, t1, Party("owner", owner_id=a), NOW + timedelta(days=1, hours=7))
        matching.accept(s, R, t2, b, NOW + timedelta(minutes=90))
        s.commit()

        report = opportunity_report(s)
        got = report.as_dict()
        assert (report.posted, report.matched, report.completed) == (5, 2, 1)
        assert got["by_partner"] == [
            {
                "advisor_code": "A1",
                "name": "P1",
                "posted": 2,
                "matched": 1,
                "completed": 1,
                "match_rate": 0.5,
                "minutes_to_match_p50": 30.0,
                "minutes_to_match_p95": 30.0,
            },
            {
                "advisor_code": "A2",
                "name": "P2",
                "posted": 1,
                "matched": 1,
                "completed": 0,
                "match_rate": 1.0,
                "minutes_to_match_p50": 90.0,
                "minutes_to_match_p95": 90.0,
            },
            {
                "advisor_code": "A3",
                "name": "P3",
                "posted": 2,
                "matched": 0,
                "completed": 0,
                "match_rate": 0.0,
                "minutes_to_match_p50": None,
                "minutes_to_match_p95": None,
            },
        ]
        dealers = {x["dealer_code"]: x for x in got["by_dealer"]}
        assert [x["dealer_code"] for x in got["by_dealer"]] == ["D1", "D2"]
        assert {k: dealers["D1"][k] for k in ("posted", "matched", "completed", "match_rate")} == {
            "posted": 3,
            "matched": 2,
            "completed": 1,
            "match_rate": 0.667,
        }
        assert dealers["D1"]["minutes_to_match_p50"] == 60.0
        assert (dealers["D2"]["posted"], dealers["D2"]["matched"], dealers["D2"]["completed"]) == (2, 0, 0)
        assert got["by_region"] and got["by_class"] == [
            {"class": "light_truck", "posted": 5, "matched": 2, "rate": 0.4}
        ]
        assert opportunity_report(s, NOW + timedelta(days=1)).by_partner == []  # --since: none of these

        sheet = list(load_workbook(io.BytesIO(operations_xlsx(s)), read_only=True)["tasks"].iter_rows(values_only=True))

    def block(title: str) -> list[tuple[object, ...]]:
        start = next(i for i, r in enumerate(sheet) if r and r[0] == title) + 1
        out = []
        for r in sheet[start:]:
            if not r or r[0] is None:
                break
            out.append((tuple(r) + (None,) * 8)[:8])  # a read-only sheet drops trailing empty cells
        return out

    def expected(rows: list[dict[str, object]], code: str) -> list[tuple[object, ...]]:
        keys = (code, "name", "posted", "matched", "completed", "match_rate", "minutes_to_match_p50")
        return [tuple(x[k] for k in (*keys, "minutes_to_match_p95")) for x in rows]

    assert block("partner") == expected(got["by_partner"], "advisor_code")
    assert block("dealer") == expected(got["by_dealer"], "dealer_code")
