"""Opportunities on real databases: who gets an offer, waves, expiry, partner pushes, ratings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from flows.delivery.clock import FrozenClock
from flows.opportunities import capacity, demand, matching, ratings, tasks
from flows.opportunities.errors import AlreadyTakenError, OfferNotCurrentError, RatingError, StaffCodeError
from flows.opportunities.matching import MatchPolicy
from flows.opportunities.ratings import Party
from flows.templating import Renderer
from storage.audit import AuditKind, audit_entries
from storage.db import pk
from storage.models import Dealer, OutboxMessage, Owner, Partner
from storage.opportunity_models import Capacity, Task, TaskOffer, TaskState

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
R = Renderer(default_locale="en")
POLICY = MatchPolicy(
    per_wave=2, wave_radii_km=(30.0, 150.0, 300.0), wave_timeout=timedelta(minutes=10), operator_ids=(900001,)
)


@pytest.fixture
def clock():
    c = FrozenClock(NOW)
    c.install()
    yield c
    from flows.delivery.clock import uninstall

    uninstall()


def owner(
    session: Session,
    n: int,
    *,
    line: str = "commercial",
    cls: str = "light_truck",
    payload: float = 5.0,
    base: str = "广州/天河区",
    partner_id: int | None = None,
    radius: int = 100,
) -> int:
    o = Owner(
        external_id=f"C{n}",
        name=f"Driver {n}",
        product_line=line,
        stage="verified",
        telegram_user_id=10_000 + n,
        partner_id=partner_id,
    )
    session.add(o)
    session.flush()
    assert o.id is not None
    if line == "commercial":
        capacity.set_vehicle(session, o.id, vehicle_class=cls, payload_t=payload, base=base, radius_km=radius, now=NOW)
    return o.id


def account(session: Session, user_id: int = 5000) -> int:
    issued = demand.create_account(session, code="S001", company="Acme Logistics", city="广州", now=NOW)
    demand.redeem_staff_code(session, issued.code, user_id, NOW)
    return pk(demand.find_account(session, "S001"))


def post(session: Session, demand_id: int, **kw) -> Task:
    draft = tasks.TaskDraft(
        pickup=kw.get("pickup", "广州/天河区"),
        dropoff=kw.get("dropoff", "深圳/南山区"),
        window_start=NOW + timedelta(hours=kw.get("in_hours", 24)),
        window_end=NOW + timedelta(hours=30),
        vehicle_class=kw.get("cls", "light_truck"),
        payload_t=kw.get("payload", 3.0),
    )
    return tasks.post_task(session, demand_id, draft, actor="staff:1", now=NOW)


def test_only_fitting_near_verified_commercial_owners_get_the_offer(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        near = owner(s, 1, base="广州/越秀区")
        owner(s, 2, line="passenger")
        owner(s, 3, payload=1.0)  # too small
        owner(s, 4, cls="van", payload=2.0)  # wrong class
        owner(s, 5, base="北京/朝阳区")  # ~1,900 km away
        busy = owner(s, 6, base="广州/海珠区")
        capacity.set_busy(s, busy, NOW + timedelta(days=3), NOW)
        later = owner(s, 7, base="佛山/南海区")  # ~20 km, outside wave 1's 30 km? no: inside
        task = post(s, d)
        found = {c.owner_id for c in matching.candidates(s, task, 300)}
        assert found == {near, later}
        s.commit()


def test_waves_widen_after_timeout_then_escalate_and_first_accept_wins(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        dealer = Dealer(code="D1", name="D1")
        s.add(dealer)
        s.flush()
        p = Partner(name="Li", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=7777)
        s.add(p)
        s.flush()
        a = owner(s, 1, base="广州/越秀区", partner_id=p.id)
        b = owner(s, 2, base="广州/海珠区")
        c = owner(s, 3, base="广州/荔湾区")
        far = owner(s, 4, base="东莞/莞城区", radius=200)  # ~50 km: wave 2
        task = post(s, d)
        counts = matching.run_waves(s, R, POLICY, NOW)
        assert counts["offers"] == 2
        wave1 = {o.owner_id for o in s.exec(select(TaskOffer).where(col(TaskOffer.task_id) == task.id))}
        assert len(wave1) == 2 and far not in wave1
        assert s.get(Task, task.id).state == "offered"
        # nothing new before the timeout
        assert matching.run_waves(s, R, POLICY, NOW + timedelta(minutes=5))["offers"] == 0
        counts = matching.run_waves(s, R, POLICY, NOW + timedelta(minutes=11))
        offered = {o.owner_id for o in s.exec(select(TaskOffer).where(col(TaskOffer.task_id) == task.id))}
        assert offered == {a, b, c, far}
        # earlier waves stay open: anyone offered may accept, the first one wins
        stranger = owner(s, 9, base="广州/天河区")
        with pytest.raises(OfferNotCurrentError):  # never offered this task
            matching.accept(s, R, task.id, stranger, NOW)
        current = next(iter(offered - wave1))
        matching.accept(s, R, task.id, current, NOW + timedelta(minutes=12))
        other = next(iter(offered - wave1 - {current}))
        with pytest.raises(AlreadyTakenError):  # the rest were closed as lost
            matching.accept(s, R, task.id, other, NOW)
        t = s.get(Task, task.id)
        assert t.state == "assigned" and t.assigned_owner_id == current
        log = [(x.from_state, x.to_state) for x in tasks.transitions(s, task.id)]
        assert log == [("", "open"), ("open", "offered"), ("offered", "assigned")]
        chats = {m.chat_id for m in s.exec(select(OutboxMessage))}
        assert 5000 in chats  # the demand side was told who accepted
        s.commit()


def test_unmatched_task_escalates_then_expires(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        task = post(s, d, in_hours=1)
        for minutes in (0, 11, 22, 33, 44):
            matching.run_waves(s, R, POLICY, NOW + timedelta(minutes=minutes))
        t = s.get(Task, task.id)
        s.refresh(t)
        assert t.escalated_at is not None
        assert 900001 in {m.chat_id for m in s.exec(select(OutboxMessage))}
        matching.run_waves(s, R, POLICY, NOW + timedelta(hours=1, minutes=1))
        assert s.get(Task, task.id).state == "expired"


def test_bad_posts_are_refused_with_reasons(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        with pytest.raises(Exception, match="unknown place"):
            post(s, d, pickup="火星/某区")
        with pytest.raises(Exception, match="past"):
            tasks.post_task(
                s,
                d,
                tasks.TaskDraft("广州", "深圳", NOW - timedelta(hours=5), NOW - timedelta(hours=1), "van", 1.0),
                actor="x",
                now=NOW,
            )
        with pytest.raises(Exception, match="more than a van"):
            post(s, d, cls="van", payload=12.0)


def test_done_and_ratings_once_per_side_by_parties_only(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        o = owner(s, 1)
        task = post(s, d)
        matching.run_waves(s, R, POLICY, NOW)
        matching.accept(s, R, task.id, o, NOW)
        with pytest.raises(RatingError):
            ratings.rate(s, task.id, Party("demand", demand_id=d), 5, NOW)  # not done yet
        ratings.mark_done(s, R, task.id, Party("owner", owner_id=o), NOW)
        ratings.rate(s, task.id, Party("demand", demand_id=d), 5, NOW, ("great",))
        with pytest.raises(RatingError, match="already"):
            ratings.rate(s, task.id, Party("demand", demand_id=d), 1, NOW)
        with pytest.raises(Exception):  # noqa: B017 - a stranger is refused, by whichever layer
            ratings.rate(s, task.id, Party("owner", owner_id=o + 999), 4, NOW)
        ratings.rate(s, task.id, Party("owner", owner_id=o), 4, NOW, ("paid_late",))
        cap = s.exec(select(Capacity).where(col(Capacity.owner_id) == o)).one()
        s.refresh(cap)
        assert (cap.rating_sum, cap.rating_count, cap.completed, cap.accepted) == (5, 1, 1, 1)
        assert ratings.demand_rating(s, d) == (4.0, 1)


def test_partner_push_only_to_own_fitting_owner(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        dealer = Dealer(code="D1", name="D1")
        s.add(dealer)
        s.flush()
        p = Partner(name="Li", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=7777)
        s.add(p)
        s.flush()
        mine = owner(s, 1, partner_id=p.id)
        stranger = owner(s, 2)
        task = post(s, d)
        near = matching.tasks_near_partner(s, p.id, NOW)
        assert [n.task["id"] for n in near] == [task.id]
        assert [c["owner_id"] for c in near[0].candidates] == [mine]
        with pytest.raises(OfferNotCurrentError):
            matching.partner_push(s, R, p.id, task.id, stranger, NOW)
        matching.partner_push(s, R, p.id, task.id, mine, NOW)
        matching.accept(s, R, task.id, mine, NOW)
        assert s.get(Task, task.id).partner_id == p.id


def test_staff_codes_are_one_time_and_guessing_locks_out(engine, clock) -> None:
    with Session(engine) as s:
        issued = demand.create_account(s, code="S9", company="X", now=NOW)
        demand.redeem_staff_code(s, issued.code, 1, NOW)
        with pytest.raises(StaffCodeError, match="already used"):
            demand.redeem_staff_code(s, issued.code, 2, NOW)
        for _ in range(4):
            with pytest.raises(StaffCodeError):
                demand.redeem_staff_code(s, "AAAA-BBBB-CC", 2, NOW)
        fresh = demand.issue_staff_code(s, "S9", NOW, name="B")
        with pytest.raises(StaffCodeError, match="too many"):
            demand.redeem_staff_code(s, fresh.code, 2, NOW)
        assert demand.staff_of_user(s, 1) is not None
        kinds = [e.kind for e in audit_entries(s)]
        assert kinds.count(AuditKind.demand_staff_code_issued.value) == 2
        assert kinds.count(AuditKind.demand_staff_registered.value) == 1
        assert kinds.count(AuditKind.demand_staff_code_failed.value) == 5  # the used code and four guesses


def test_an_assigned_owner_gets_no_offer_for_an_overlapping_window(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        taken = owner(s, 1, base="广州/越秀区")
        free = owner(s, 2, base="广州/海珠区")
        first = post(s, d)  # tomorrow 10:00 – 16:00 (UTC)
        s.add(TaskOffer(task_id=first.id, owner_id=taken, offered_at=NOW))
        tasks.move(s, first.id, TaskState.offered, actor="test", reason="test", now=NOW, sources=[TaskState.open.value])
        matching.accept(s, R, first.id, taken, NOW)
        overlapping = post(s, d, in_hours=26)  # starts inside the first window
        later = tasks.post_task(
            s,
            d,
            tasks.TaskDraft(
                pickup="广州/天河区",
                dropoff="深圳/南山区",
                window_start=NOW + timedelta(hours=40),
                window_end=NOW + timedelta(hours=44),
                vehicle_class="light_truck",
                payload_t=3.0,
            ),
            actor="staff:1",
            now=NOW,
        )
        assert {c.owner_id for c in matching.candidates(s, overlapping, 300)} == {free}
        assert {c.owner_id for c in matching.candidates(s, later, 300)} == {taken, free}
        s.commit()


def test_operations_workbook_has_the_tasks_sheet(engine, clock) -> None:
    import io

    from openpyxl import load_workbook

    from flows.opportunities.reports import opportunity_report
    from flows.reports.operations_workbook import operations_xlsx

    with Session(engine) as s:
        d = account(s)
        o = owner(s, 1, base="广州/越秀区")
        won = post(s, d)
        post(s, d, cls="tipper")
        s.add(TaskOffer(task_id=won.id, owner_id=o, offered_at=NOW))
        tasks.move(s, won.id, TaskState.offered, actor="test", reason="test", now=NOW, sources=[TaskState.open.value])
        matching.accept(s, R, won.id, o, NOW)
        s.flush()
        report = opportunity_report(s)
        book = load_workbook(io.BytesIO(operations_xlsx(s)), read_only=True)
        rows = list(book["tasks"].iter_rows(values_only=True))
    assert rows[1][:3] == (2, 1, 0) == (report.posted, report.matched, report.completed)
    classes = {r[0]: r[1:4] for r in rows if r and r[0] in ("light_truck", "tipper")}
    assert classes == {"light_truck": (1, 1, 1.0), "tipper": (1, 0, 0.0)}


def _offered(s: Session, task: Task, *owner_ids: int) -> None:
    """Offers of ``task`` to these owners, as earlier waves left them (still pending)."""
    for o in owner_ids:
        s.add(TaskOffer(task_id=task.id, owner_id=o, offered_at=NOW))
    tasks.move(s, task.id, TaskState.offered, actor="test", reason="test", now=NOW, sources=[TaskState.open.value])


def test_an_owner_cannot_win_two_tasks_whose_windows_overlap(engine, clock) -> None:
    from flows.opportunities.errors import OverlappingTaskError

    with Session(engine) as s:
        d = account(s)
        o = owner(s, 1)
        first = post(s, d)  # tomorrow 02:00 – 08:00 (UTC)
        overlapping = post(s, d, in_hours=26)
        later = tasks.post_task(
            s,
            d,
            tasks.TaskDraft(
                "广州/天河区", "深圳/南山区", NOW + timedelta(hours=40), NOW + timedelta(hours=44), "light_truck", 1.0
            ),
            actor="staff:1",
            now=NOW,
        )
        for t in (first, overlapping, later):
            _offered(s, t, o)
        matching.accept(s, R, first.id, o, NOW)
        with pytest.raises(OverlappingTaskError) as refused:
            matching.accept(s, R, overlapping.id, o, NOW)
        assert refused.value.params["other"] == first.id
        t = s.get(Task, overlapping.id)
        s.refresh(t)
        assert (t.state, t.assigned_owner_id) == ("offered", None)
        assert matching.current_offer(s, overlapping.id, o) is not None  # still open for when the first ends
        assert [x.to_state for x in tasks.transitions(s, overlapping.id)] == ["open", "offered"]
        # a second owner may still take it, and the first owner a later task
        other = owner(s, 2, base="广州/海珠区")
        s.add(TaskOffer(task_id=overlapping.id, owner_id=other, offered_at=NOW))
        matching.accept(s, R, overlapping.id, other, NOW)
        matching.accept(s, R, later.id, o, NOW)
        text = R.render("opportunities/overlapping", "zh", other=first.id)
        assert f"#{first.id}" in text and "时间" in text
        s.commit()


def test_unverified_and_paused_owners_get_no_offer_and_available_lifts_the_pause(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        ok = owner(s, 1, base="广州/越秀区")
        unverified = owner(s, 2, base="广州/海珠区")
        s.get(Owner, unverified).stage = "online"
        paused = owner(s, 3, base="广州/荔湾区")
        capacity.set_opted_out(s, paused, True, NOW)  # the flow's "pause offers" button
        s.flush()
        task = post(s, d)
        assert {c.owner_id for c in matching.candidates(s, task, 300)} == {ok}
        capacity.set_available(s, paused, NOW)  # what commercial_work_thanks tells them to send
        s.flush()
        assert s.exec(select(Capacity).where(col(Capacity.owner_id) == paused)).one().opted_out is False
        assert {c.owner_id for c in matching.candidates(s, task, 300)} == {ok, paused}


def test_cancelling_a_task_closes_its_offers_and_tells_the_owner_and_partner(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        dealer = Dealer(code="D1", name="D1")
        s.add(dealer)
        s.flush()
        p = Partner(name="Li", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=7777)
        s.add(p)
        s.flush()
        a = owner(s, 1, base="广州/越秀区", partner_id=p.id)
        b = owner(s, 2, base="广州/海珠区")
        taken, open_ = post(s, d), post(s, d, in_hours=27)
        _offered(s, taken, a, b)
        _offered(s, open_, a, b)
        matching.accept(s, R, taken.id, a, NOW)
        before = {m.dedupe_key for m in s.exec(select(OutboxMessage))}

        matching.cancel_task(s, R, open_.id, d, actor="user:5000", now=NOW)  # nobody had it yet
        statuses = {o.owner_id: o.status for o in s.exec(select(TaskOffer).where(col(TaskOffer.task_id) == open_.id))}
        assert statuses == {a: "lost", b: "lost"}
        assert {m.dedupe_key for m in s.exec(select(OutboxMessage))} == before

        matching.cancel_task(s, R, taken.id, d, actor="user:5000", now=NOW)
        assert s.get(Task, taken.id).state == "cancelled"
        assert [x.to_state for x in tasks.transitions(s, taken.id)][-1] == "cancelled"
        told = {m.chat_id: m.text for m in s.exec(select(OutboxMessage)) if m.dedupe_key not in before}
        assert set(told) == {10_001, 7777}  # the assigned owner and their partner
        assert f"#{taken.id}" in told[10_001] and "cancel" in told[10_001].lower()
        with pytest.raises(Exception, match="cannot be cancelled"):
            matching.cancel_task(s, R, taken.id, d, actor="user:5000", now=NOW)
        s.commit()


def test_an_unmatched_task_escalates_once_to_partners_of_nearby_owners_and_operators(engine, clock) -> None:
    with Session(engine) as s:
        d = account(s)
        dealer = Dealer(code="D1", name="D1")
        s.add(dealer)
        s.flush()
        near_p = Partner(name="Near", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=7001)
        far_p = Partner(name="Far", dealer_id=dealer.id, advisor_code="A2", telegram_user_id=7002)
        s.add_all([near_p, far_p])
        s.flush()
        owner(s, 1, cls="van", payload=2.0, base="佛山/南海区", partner_id=near_p.id)  # near, but no fit
        owner(s, 2, base="北京/海淀区", partner_id=far_p.id)  # fits, ~1,900 km away
        task = post(s, d)
        counts = [matching.run_waves(s, R, POLICY, NOW + timedelta(minutes=m)) for m in (0, 11, 22, 33, 44)]
        assert sum(c["offers"] for c in counts) == 0 and sum(c["escalated"] for c in counts) == 1
        t = s.get(Task, task.id)
        s.refresh(t)
        assert t.escalated_at is not None and t.state == "offered"
        told = [m.chat_id for m in s.exec(select(OutboxMessage))]
        assert sorted(told) == [7001, 900001]  # the nearby owner's partner and the operator, once each
        assert "escalated to partners and operators" in [x.reason for x in tasks.transitions(s, task.id)]
