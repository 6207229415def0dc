"""The due rule and odometer checks of ``flows.service.service_plan``: properties and examples.

No database, no clock: every function takes ``today``.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flows.service.service_plan import (
    CarFacts,
    DueRule,
    OdometerPoint,
    OdometerProblemKind,
    PlanItem,
    ServiceEntry,
    ServiceKind,
    ServiceRules,
    add_months,
    average_daily_km,
    check_odometer,
    due_status,
)

RULE = DueRule(every_km=10_000, every_months=12, first_km=5_000, first_months=6)
RULES = ServiceRules(default=RULE)
TODAY = date(2026, 11, 26)

days = st.integers(min_value=0, max_value=3_000)
rates = st.floats(min_value=0.0, max_value=300.0, allow_nan=False)


@st.composite
def cars(draw) -> tuple[CarFacts, tuple[ServiceEntry, ...], date]:
    """A consistent car: bought some days before today, driven at a steady-ish pace, with
    visits and a reading on the way (odometer never goes back)."""
    age = draw(st.integers(min_value=0, max_value=2_500))
    bought = TODAY - timedelta(days=age)
    rate = draw(rates)
    visit_days = sorted(draw(st.lists(st.integers(min_value=0, max_value=age), max_size=4, unique=True)))
    history = tuple(ServiceEntry(bought + timedelta(days=d), math.floor(rate * d), ("oil",)) for d in visit_days)
    reading_day = draw(st.integers(min_value=0, max_value=age))
    with_reading = draw(st.booleans())
    odometer = ((bought + timedelta(days=reading_day), math.floor(rate * reading_day)),) if with_reading else ()
    mileage = draw(st.one_of(st.none(), st.just(math.floor(rate * age))))
    model = draw(st.sampled_from([None, "Sylphy", "X"]))
    return CarFacts(model=model, purchase_date=bought, mileage_km=mileage, odometer=odometer), history, bought


@given(cars(), st.integers(min_value=1, max_value=50_000))
def test_more_km_never_leaves_more_km_or_time(car, extra: int) -> None:
    facts, history, _ = car
    before = due_status(facts, history, RULES, TODAY)
    more = CarFacts(**{**facts.__dict__, "mileage_km": (facts.mileage_km or 0) + extra})
    after = due_status(more, history, RULES, TODAY)
    assert after.due_km == before.due_km and after.due_date == before.due_date
    if before.km_left is not None:
        assert after.km_left is not None and after.km_left <= before.km_left
    if before.next_date is not None:
        assert after.next_date is not None and after.next_date <= before.next_date


@given(cars(), st.integers(min_value=1, max_value=400))
def test_time_passing_never_leaves_more_time_or_km(car, later: int) -> None:
    facts, history, _ = car
    now = due_status(facts, history, RULES, TODAY)
    then = due_status(facts, history, RULES, TODAY + timedelta(days=later))
    assert then.due_km == now.due_km and then.due_date == now.due_date
    if now.km_left is not None:
        assert then.km_left is not None and then.km_left <= now.km_left
    if now.days_left is not None and then.next_date == now.next_date:
        assert then.days_left == now.days_left - later


@given(cars())
def test_whichever_comes_first(car) -> None:
    facts, history, _ = car
    status = due_status(facts, history, RULES, TODAY)
    dates = [d for d in (status.due_date, status.predicted_date) if d is not None]
    assert status.next_date == (min(dates) if dates else None)
    if status.next_date is not None:
        assert status.days_left == (status.next_date - TODAY).days
    if status.due_km is not None and status.km_now is not None:
        assert status.km_left == status.due_km - status.km_now
    assert status.due_now == (
        (status.km_left is not None and status.km_left <= 0) or (status.days_left is not None and status.days_left <= 0)
    )


@given(cars())
def test_first_service_until_a_visit_then_regular(car) -> None:
    facts, history, bought = car
    status = due_status(facts, history, RULES, TODAY)
    if not history:
        assert status.kind is ServiceKind.first
        assert status.due_km == RULE.first_km
        assert status.due_date == add_months(bought, RULE.first_months)
    else:
        last = history[-1]
        assert status.kind is ServiceKind.regular
        assert status.due_km == last.km + RULE.every_km
        assert status.due_date == add_months(last.on, RULE.every_months)


@given(
    st.integers(min_value=30, max_value=2_000),  # days since purchase of the reading
    st.integers(min_value=1, max_value=300),  # km per day
)
def test_prediction_follows_the_average_daily_distance(age: int, rate: int) -> None:
    bought = TODAY - timedelta(days=age)
    facts = CarFacts(purchase_date=bought, odometer=((TODAY, rate * age),))
    status = due_status(facts, (), RULES, TODAY)
    assert status.daily_km == pytest.approx(rate)
    expected = TODAY + timedelta(days=math.ceil((RULE.first_km - rate * age) / rate))
    if rate * age >= RULE.first_km:
        expected = min(expected, TODAY)
    assert status.predicted_date == expected


@given(st.integers(min_value=0, max_value=13), st.integers(min_value=0, max_value=5_000))
def test_a_new_car_has_no_pace_and_no_division_by_zero(age: int, km: int) -> None:
    bought = TODAY - timedelta(days=age)
    facts = CarFacts(purchase_date=bought, mileage_km=km, odometer=((TODAY, km), (TODAY, km)))
    status = due_status(facts, (ServiceEntry(TODAY, km),) if km else (), RULES, TODAY)
    assert status.daily_km is None
    assert status.next_date is not None  # the months still give a date


def test_nothing_known_gives_a_first_service_without_dates() -> None:
    status = due_status(CarFacts(), (), RULES, TODAY)
    assert status.kind is ServiceKind.first
    assert (status.due_km, status.due_date, status.km_now, status.km_left, status.days_left) == (
        5_000,
        None,
        None,
        None,
        None,
    )
    assert not status.due_now


def test_time_limit_comes_first_for_a_car_that_barely_moves() -> None:
    facts = CarFacts(purchase_date=date(2025, 1, 1), odometer=((date(2026, 1, 1), 3_650),))  # 10 km/day
    status = due_status(facts, (ServiceEntry(date(2026, 1, 1), 3_650),), RULES, TODAY)
    assert status.due_date == date(2027, 1, 1)
    assert status.predicted_date == date(2026, 1, 1) + timedelta(days=1_000)
    assert status.next_date == date(2027, 1, 1) and status.by == "time"


def test_km_limit_comes_first_for_a_busy_car() -> None:
    facts = CarFacts(purchase_date=date(2026, 1, 1), odometer=((date(2026, 11, 1), 30_400),))  # 100/day
    status = due_status(facts, (ServiceEntry(date(2026, 11, 1), 30_400),), RULES, TODAY)
    assert status.predicted_date == date(2027, 2, 9) and status.by == "km"
    assert status.km_now == 30_400 + 25 * 100
    assert status.within(km=8_000, days=0) and not status.within(km=1_000, days=30)


def test_model_rules_override_the_default() -> None:
    rules = ServiceRules(default=RULE, by_model=(("轩逸", DueRule(5_000, 6, 3_000, 3)),))
    status = due_status(CarFacts(model="轩逸"), (ServiceEntry(date(2026, 6, 1), 20_000),), rules, TODAY)
    assert (status.due_km, status.due_date) == (25_000, date(2026, 12, 1))


def test_last_service_from_the_owner_import_counts_as_a_visit() -> None:
    facts = CarFacts(purchase_date=date(2024, 1, 1), last_service_date=date(2026, 5, 1), last_service_km=12_000)
    status = due_status(facts, (), RULES, TODAY)
    assert status.kind is ServiceKind.regular and status.due_km == 22_000


def test_checklist_marks_overdue_items_from_history() -> None:
    plan = (
        PlanItem("engine_oil", aliases=("机油",)),
        PlanItem("air_filter", 20_000, 24, ("空滤",)),
        PlanItem("brake_fluid", None, 24, ("刹车油",)),
        PlanItem("coolant", 100_000, 120),
    )
    rules = ServiceRules(default=RULE, plan=plan)
    history = (
        ServiceEntry(date(2023, 1, 10), 10_000, ("机油", "刹车油")),
        ServiceEntry(date(2025, 12, 1), 30_000, ("机油", "空滤")),
    )
    facts = CarFacts(purchase_date=date(2022, 1, 10), mileage_km=38_000)
    status = due_status(facts, history, rules, TODAY)
    codes = {item.code: item for item in status.checklist}
    assert set(codes) == {"engine_oil", "brake_fluid"}  # air filter next time, coolant far off
    assert codes["brake_fluid"].overdue and codes["brake_fluid"].due_date == date(2025, 1, 10)
    assert not codes["engine_oil"].overdue
    assert status.overdue_items == ("brake_fluid",)


def test_add_months_clamps_to_the_month_end() -> None:
    assert add_months(date(2026, 8, 31), 6) == date(2027, 2, 28)
    assert add_months(date(2027, 8, 31), 6) == date(2028, 2, 29)
    assert add_months(date(2026, 1, 15), 12) == date(2027, 1, 15)


@given(
    st.lists(
        st.tuples(st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 1, 1)), st.integers(0, 10**6)), max_size=6
    )
)
def test_average_is_never_negative_and_needs_a_span(points) -> None:
    daily = average_daily_km(points, min_span_days=14)
    if daily is not None:
        ordered = sorted(points)
        assert daily >= 0 and (ordered[-1][0] - ordered[0][0]).days >= 14


# --- odometer checks ------------------------------------------------------------------------

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_below_the_last_reading_is_refused() -> None:
    problem = check_odometer(9_999, T0 + timedelta(days=1), OdometerPoint(T0, 10_000), None, 1_500)
    assert problem is not None and problem.kind is OdometerProblemKind.below_earlier
    assert "below the 10000 km" in problem.reason()


def test_an_implausible_jump_is_refused_and_one_days_driving_is_always_allowed() -> None:
    before = OdometerPoint(T0, 10_000)
    assert check_odometer(11_500, T0 + timedelta(minutes=5), before, None, 1_500) is None
    problem = check_odometer(11_501, T0 + timedelta(minutes=5), before, None, 1_500)
    assert problem is not None and problem.kind is OdometerProblemKind.implausible and problem.limit_km == 11_500
    assert check_odometer(16_000, T0 + timedelta(days=4), before, None, 1_500) is None


def test_a_late_reading_must_fit_between_its_neighbours() -> None:
    before, after = OdometerPoint(T0, 10_000), OdometerPoint(T0 + timedelta(days=10), 11_000)
    assert check_odometer(10_500, T0 + timedelta(days=5), before, after, 1_500) is None
    problem = check_odometer(11_200, T0 + timedelta(days=5), before, after, 1_500)
    assert problem is not None and problem.kind is OdometerProblemKind.above_later


@settings(max_examples=200)
@given(
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(1, 10**6),
    st.integers(min_value=0, max_value=10**7),
)
def test_accepted_values_never_go_back_or_jump(start: int, delta: int, minutes: int, limit: int) -> None:
    assume(limit > 0)
    at = T0 + timedelta(minutes=minutes)
    km = start + delta
    if check_odometer(km, at, OdometerPoint(T0, start), None, limit) is None:
        assert km >= start
        assert km - start <= limit * max(1.0, minutes / 1_440)
