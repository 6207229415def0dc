"""Each owner's best hour on real databases (SQLite and PostgreSQL): marketing pushes wait for
the owner's usual hour (their own events, else their circle's), an hour in quiet hours becomes
the first moment after them, the cap still holds, transactional pushes and the plain-schedule
share go as before, the setting off restores the plain schedule, and the console's
engagement figure counts pushes followed by a meaningful event within 24 h."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, update
from sqlmodel import Session

from bot.config import DeliverySettings
from flows.delivery.best_hour import in_plain_share, usual_hours
from flows.delivery.best_hour_report import engagement
from flows.delivery.clock import FrozenClock, uninstall
from flows.delivery.delivery_rules import BestHour, DeliveryPolicy
from flows.delivery.outbox import Push, enqueue_many
from storage.db import pk
from storage.events import EventKind, record
from storage.models import Dealer, MessageClass, OutboxMessage, Owner, Partner

NOON_SHANGHAI = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai
EIGHT_PM = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 20:00 in Asia/Shanghai
NEXT_MORNING = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai, quiet hours end
ON = DeliveryPolicy(best_hour=BestHour(enabled=True, plain_percent=0))
OFF = DeliveryPolicy(best_hour=BestHour(enabled=False))


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(NOON_SHANGHAI)
    frozen.install()
    yield frozen
    uninstall()


def _owner(session: Session, tg: int, partner_id: int | None = None) -> Owner:
    owner = Owner(name=f"O{tg}", telegram_user_id=tg, partner_id=partner_id)
    session.add(owner)
    session.flush()
    return owner


def _partner(session: Session, code: str) -> int:
    """A partner of a dealer of its own; its id."""
    dealer = Dealer(code=f"D{code}")
    session.add(dealer)
    session.flush()
    partner = Partner(name="P", dealer_id=dealer.id, advisor_code=f"P{code}")
    session.add(partner)
    session.flush()
    return pk(partner)


def _active_at(
    session: Session, owner_id: int, utc_hour: int, days: int = 5, kind: EventKind = EventKind.command
) -> None:
    """``days`` meaningful events at ``utc_hour`` UTC (+8 in Shanghai) on the days before."""
    for d in range(1, days + 1):
        at = NOON_SHANGHAI.replace(hour=utc_hour, minute=10) - timedelta(days=d)
        record(session, owner_id, kind, at, command="start")


def _push(key: str, owner: Owner, cls: MessageClass = MessageClass.marketing, **kw) -> Push:
    return Push(
        dedupe_key=key, chat_id=owner.telegram_user_id or 0, text=key, message_class=cls, owner_id=owner.id, **kw
    )


def _rows(engine) -> dict[str, OutboxMessage]:
    with Session(engine) as session:
        return {r.dedupe_key: r for r in session.execute(select(OutboxMessage)).scalars()}


def test_owner_active_at_eight_pm_gets_marketing_at_eight_pm(engine, clock) -> None:
    with Session(engine) as session:
        owner = _owner(session, 501)
        _active_at(session, owner.id, 12)  # 20:10 Shanghai
        record(session, owner.id, EventKind.circle_joined, NOON_SHANGHAI - timedelta(days=2, hours=1))  # one stray hour
        record(session, owner.id, EventKind.online, NOON_SHANGHAI - timedelta(days=1))  # not meaningful
        assert (
            enqueue_many(
                session,
                [
                    _push("m", owner),
                    _push("t", owner, MessageClass.transactional),
                ],
                ON,
            )
            == 2
        )
        session.commit()
    rows = _rows(engine)
    assert rows["m"].not_before == EIGHT_PM and rows["m"].status == "pending"
    assert rows["t"].not_before == NOON_SHANGHAI  # transactional: at once, as before


def test_owner_active_in_quiet_hours_gets_the_first_hour_after_them(engine, clock) -> None:
    with Session(engine) as session:
        owner = _owner(session, 502)
        _active_at(session, owner.id, 15)  # 23:10 Shanghai: inside 21:00-08:00
        enqueue_many(session, [_push("late", owner)], ON)
        session.commit()
    row = _rows(engine)["late"]
    assert row.not_before == NEXT_MORNING and row.reason == "quiet_hours"


def test_setting_off_and_plain_share_keep_todays_schedule(engine, clock) -> None:
    with Session(engine) as session:
        a, b, c = (_owner(session, tg) for tg in (503, 513, 523))  # one each: the cap is 2
        for owner in (a, b, c):
            _active_at(session, owner.id, 12)
        enqueue_many(session, [_push("off", a)], OFF)
        everyone_plain = DeliveryPolicy(best_hour=BestHour(plain_percent=100))
        enqueue_many(session, [_push("plain", b)], everyone_plain)
        enqueue_many(session, [_push("on", c)], ON)
        session.commit()
    rows = _rows(engine)
    assert rows["off"].not_before == NOON_SHANGHAI and rows["off"].reason is None
    assert rows["plain"].not_before == NOON_SHANGHAI
    assert rows["on"].not_before == EIGHT_PM


def test_the_configured_setting_reaches_the_policy(monkeypatch) -> None:
    assert DeliverySettings().policy("Asia/Shanghai").best_hour.enabled is True
    monkeypatch.setenv("AUTOCIRCLE_DELIVERY__BEST_HOUR", "false")
    from bot.config import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]  # reason: pydantic-settings' _env_file is not in the generated __init__
    assert settings.delivery.policy(settings.timezone).best_hour.enabled is False
    assert DeliverySettings(best_hour_plain_percent=25).policy("UTC").best_hour.plain_percent == 25


def test_cap_still_holds_at_the_best_hour(engine, clock) -> None:
    with Session(engine) as session:
        owner = _owner(session, 504)
        _active_at(session, owner.id, 12)
        enqueue_many(session, [_push("m1", owner), _push("m2", owner), _push("m3", owner)], ON)
        session.commit()
    rows = _rows(engine)
    assert rows["m1"].not_before == rows["m2"].not_before == EIGHT_PM
    assert rows["m3"].not_before == EIGHT_PM + timedelta(days=7)  # cap 2 per 7 days
    assert rows["m3"].reason == "cap"


def test_falls_back_to_the_circle_and_needs_enough_history(engine, clock) -> None:
    with Session(engine) as session:
        partner_id = _partner(session, "1")
        newcomer = _owner(session, 505, partner_id)
        for tg in (506, 507):
            peer = _owner(session, tg, partner_id)
            _active_at(session, peer.id, 11, days=3)  # 19:10 Shanghai
        loner = _owner(session, 508)
        _active_at(session, loner.id, 12, days=2)  # below min_events, no circle
        assert usual_hours(session, [newcomer.id, loner.id], NOON_SHANGHAI, ON.best_hour, "Asia/Shanghai") == {
            newcomer.id: 19,
        }
        enqueue_many(session, [_push("new", newcomer), _push("loner", loner)], ON)
        session.commit()
    rows = _rows(engine)
    assert rows["new"].not_before == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert rows["loner"].not_before == NOON_SHANGHAI


def test_a_circle_is_read_once_per_session_however_many_batches_ask(engine, clock) -> None:
    """A campaign plans batch after batch in one session: the circle's events are read for the
    first batch only (each read is the whole circle's recent events)."""
    circle_reads: list[str] = []

    def count(conn, cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "GROUP BY owner.partner_id" in statement:
            circle_reads.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with Session(engine) as session:
            partner_id = _partner(session, "2")
            for tg in (521, 522):
                _active_at(session, _owner(session, tg, partner_id).id, 11, days=3)  # 19:10 Shanghai
            newcomers = [_owner(session, tg, partner_id) for tg in (523, 524, 525)]
            for n, owner in enumerate(newcomers):  # one batch each
                enqueue_many(session, [_push(f"batch{n}", owner)], ON)
            session.commit()
        with Session(engine) as session:  # a new unit of work reads again
            enqueue_many(session, [_push("later", _owner(session, 526, partner_id))], ON)
            session.commit()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    rows = _rows(engine)
    assert {rows[k].not_before for k in ("batch0", "batch1", "batch2", "later")} == {
        datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    }
    assert len(circle_reads) == 2


def test_inside_the_hour_or_expiring_first_goes_at_once(engine, clock) -> None:
    clock.set(EIGHT_PM + timedelta(minutes=15))
    with Session(engine) as session:
        owner = _owner(session, 509)
        _active_at(session, owner.id, 12)
        enqueue_many(session, [_push("now", owner)], ON)
        clock.set(NOON_SHANGHAI)
        enqueue_many(session, [_push("soon", owner, expires_at=NOON_SHANGHAI + timedelta(hours=3))], ON)
        session.commit()
    rows = _rows(engine)
    assert rows["now"].not_before == EIGHT_PM + timedelta(minutes=15)
    assert rows["soon"].not_before == NOON_SHANGHAI and rows["soon"].status == "pending"


def test_plain_share_is_sticky_and_about_its_percent() -> None:
    first = [in_plain_share(i, 10) for i in range(1, 20_001)]
    assert first == [in_plain_share(i, 10) for i in range(1, 20_001)]
    assert 0.09 < sum(first) / len(first) < 0.11
    assert not any(in_plain_share(i, 0) for i in range(1, 1000))
    assert all(in_plain_share(i, 100) for i in range(1, 1000))


def test_engagement_compares_best_hour_owners_with_the_plain_share(engine, clock) -> None:
    best = BestHour(plain_percent=50)
    with Session(engine) as session:
        owners = [_owner(session, 600 + i) for i in range(12)]
        enqueue_many(session, [_push(f"e{o.id}", o) for o in owners], OFF)
        sent_at = NOON_SHANGHAI - timedelta(days=2)
        session.execute(update(OutboxMessage).values(status="sent", sent_at=sent_at))
        engaged = owners[::2]
        for o in engaged:
            record(session, o.id, EventKind.button, sent_at + timedelta(hours=3), button="x")
        for o in owners[1::4]:  # too late (after 24 h) or not meaningful: not engagement
            record(session, o.id, EventKind.button, sent_at + timedelta(hours=25), button="x")
            record(session, o.id, EventKind.online, sent_at + timedelta(hours=1))
        ids = [o.id for o in owners]
        engaged_ids = {o.id for o in engaged}
        session.commit()
        result = engagement(session, NOON_SHANGHAI, best, min_group=1)
        outside = engagement(session, NOON_SHANGHAI + timedelta(days=40), best, min_group=1)
    plain = {i for i in ids if in_plain_share(i, 50)}
    assert outside.treated_n == outside.holdout_n == 0  # older than the 30-day window
    assert (result.holdout_n, result.holdout_x) == (len(plain), len(plain & engaged_ids))
    assert (result.treated_n, result.treated_x) == (12 - len(plain), len(engaged_ids - plain))
    assert result.rate_ci is not None or result.treated_n == 0
