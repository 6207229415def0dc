"""The outbox on real databases (SQLite and PostgreSQL): idempotent planning, rules at
enqueue, claiming under a lease (and with two claimers at once), outcome guards, the
send-time screen, the scheduler's jobs, and the delivery report."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.scheduler import JobContext, Scheduler, expire_pushes
from flows.delivery import outbox as flows_outbox
from flows.delivery.clock import FrozenClock, uninstall
from flows.delivery.delivery_report import delivery_report
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import Push, Suppressions, enqueue, enqueue_many, screen
from storage import outbox
from storage.delivery_models import OwnerPreference
from storage.models import MessageClass, OutboxMessage, Owner

NOON_SHANGHAI = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai
LEASE = timedelta(seconds=30)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(NOON_SHANGHAI)
    frozen.install()
    yield frozen
    uninstall()


def _owners(engine, count: int, first_tg: int = 10_000) -> list[tuple[int, int]]:
    with Session(engine) as session:
        owners = [Owner(name=f"O{i}", telegram_user_id=first_tg + i) for i in range(count)]
        session.add_all(owners)
        session.commit()
        return [(o.id, o.telegram_user_id) for o in owners]


def _push(key: str, chat: int, cls: MessageClass = MessageClass.marketing, **kw) -> Push:
    return Push(dedupe_key=key, chat_id=chat, text=f"text {key}", message_class=cls, **kw)


def _rows(engine) -> dict[str, OutboxMessage]:
    with Session(engine) as session:
        return {r.dedupe_key: r for r in session.execute(select(OutboxMessage)).scalars()}


def test_enqueue_is_idempotent_by_dedupe_key(engine, clock) -> None:
    [(owner_id, chat)] = _owners(engine, 1)
    with Session(engine) as session:
        assert enqueue(session, _push("k1", chat, owner_id=owner_id))
        assert not enqueue(session, _push("k1", chat, owner_id=owner_id))
        assert enqueue_many(session, [_push("k1", chat), _push("k2", chat), _push("k2", chat)]) == 1
        session.commit()
    assert sorted(_rows(engine)) == ["k1", "k2"]


def test_enqueue_race_between_two_planners_keeps_one_row(engine, clock, monkeypatch) -> None:
    [(_, chat)] = _owners(engine, 1)
    with Session(engine) as first, Session(engine) as second:
        assert enqueue(first, _push("race", chat, MessageClass.transactional))
        first.commit()
        # the second planner looked before the first committed: its insert meets the unique key
        monkeypatch.setattr(flows_outbox.store, "existing_keys", lambda session, keys: set())
        assert enqueue_many(second, [_push("race", chat), _push("other", chat)]) == 1
        second.commit()
    rows = _rows(engine)
    assert sorted(rows) == ["other", "race"]
    assert rows["race"].message_class == "transactional"


def test_quiet_hours_and_cap_at_enqueue(engine, clock) -> None:
    [(_owner_id, chat), (berlin_id, berlin_chat)] = _owners(engine, 2)
    with Session(engine) as session:
        session.add(OwnerPreference(owner_id=berlin_id, timezone="Europe/Berlin"))
        session.commit()
    clock.set(datetime(2026, 3, 10, 14, 30, tzinfo=UTC))  # 22:30 Shanghai, 15:30 Berlin
    with Session(engine) as session:
        enqueue_many(
            session,
            [
                _push("m1", chat),
                _push("m2", chat),
                _push("m3", chat),
                _push("t1", chat, MessageClass.transactional),
                _push("b1", berlin_chat),
                _push("gone", chat, MessageClass.transactional, expires_at=datetime(2026, 3, 10, 20, 0, tzinfo=UTC)),
            ],
        )
        session.commit()
    rows = _rows(engine)
    morning = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)
    assert rows["m1"].not_before == rows["m2"].not_before == morning
    assert rows["t1"].not_before == morning and rows["t1"].reason == "quiet_hours"
    assert rows["m3"].not_before == morning + timedelta(days=7)  # third marketing push: cap of 2/7 days
    assert rows["b1"].not_before == datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
    assert rows["gone"].status == "skipped" and rows["gone"].reason == "quiet_hours_expired"


def test_claim_by_priority_then_age_with_lease(engine, clock) -> None:
    [(_, chat)] = _owners(engine, 1)
    with Session(engine) as session:
        enqueue(session, _push("old-marketing", chat))
        clock.advance(seconds=1)
        enqueue(session, _push("transactional", chat, MessageClass.transactional))
        enqueue(session, _push("reply", chat, MessageClass.reply))
        enqueue(session, _push("later", chat, MessageClass.transactional, not_before=clock.now() + timedelta(hours=1)))
        session.commit()
    claimed = outbox.claim_due(engine, clock.now(), 10, LEASE)
    by_id = {r.id: k for k, r in _rows(engine).items()}
    assert [by_id[c.id] for c in claimed] == ["reply", "transactional", "old-marketing"]
    assert all(c.attempts == 1 for c in claimed)
    assert outbox.claim_due(engine, clock.now(), 10, LEASE) == []  # leased
    clock.advance(LEASE + timedelta(seconds=1))
    again = outbox.claim_due(engine, clock.now(), 10, LEASE)  # lease expired: a crashed sender's rows
    assert {by_id[c.id] for c in again} == {"reply", "transactional", "old-marketing"}
    assert all(c.attempts == 2 for c in again)


def test_claim_skips_excluded_chats(engine, clock) -> None:
    [(_, a), (_, b)] = _owners(engine, 2)
    with Session(engine) as session:
        enqueue_many(session, [_push("a", a, MessageClass.transactional), _push("b", b, MessageClass.transactional)])
        session.commit()
    claimed = outbox.claim_due(engine, clock.now(), 10, LEASE, exclude_chats=[a])
    assert [c.chat_id for c in claimed] == [b]


def test_concurrent_claimers_never_share_a_row(engine, clock) -> None:
    owners = _owners(engine, 400)
    with Session(engine) as session:
        enqueue_many(session, [_push(f"p{tg}", tg, MessageClass.transactional) for _, tg in owners])
        session.commit()
    taken: list[list[int]] = [[] for _ in range(4)]

    def claimer(slot: int) -> None:
        while True:
            rows = outbox.claim_due(engine, clock.now(), 25, LEASE)
            if not rows:
                return
            taken[slot].extend(r.id for r in rows)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in taken for i in ids]
    assert len(everything) == len(set(everything)) == 400


def test_outcomes_apply_to_sending_rows_only_except_sent(engine, clock) -> None:
    [(_, chat)] = _owners(engine, 1)
    with Session(engine) as session:
        enqueue_many(
            session, [_push("x", chat, MessageClass.transactional), _push("y", chat, MessageClass.transactional)]
        )
        session.commit()
    x, y = outbox.claim_due(engine, clock.now(), 10, LEASE)
    now = clock.now()
    outbox.record_outcomes(engine, [outbox.Outcome(x.id, "sent", now, telegram_message_id=77)])
    # a stale sender whose lease ran out tries to put x back: ignored, x stays sent
    outbox.record_outcomes(
        engine,
        [
            outbox.Outcome(x.id, "pending", now, not_before=now, refund_attempt=True),
            outbox.Outcome(
                y.id, "pending", now, not_before=now + timedelta(minutes=5), refund_attempt=True, reason="rate_limited"
            ),
        ],
    )
    rows = _rows(engine)
    assert rows["x"].status == "sent" and rows["x"].telegram_message_id == 77 and rows["x"].sent_at == now
    assert rows["y"].status == "pending" and rows["y"].attempts == 0 and rows["y"].reason == "rate_limited"


def test_blocked_chat_skips_queued_pushes_and_marks_owner(engine, clock) -> None:
    [(owner_id, chat)] = _owners(engine, 1)
    with Session(engine) as session:
        enqueue_many(session, [_push("first", chat, MessageClass.transactional), _push("second", chat)])
        session.commit()
    first = outbox.claim_due(engine, clock.now(), 1, LEASE)[0]
    outbox.record_outcomes(
        engine, [outbox.Outcome(first.id, "failed", clock.now(), reason="blocked: Forbidden", block_chat=chat)]
    )
    rows = _rows(engine)
    assert (
        rows["first"].status == "failed" and rows["second"].status == "skipped" and rows["second"].reason == "blocked"
    )
    with Session(engine) as session:
        assert session.get(Owner, owner_id).unreachable


def test_send_time_screen(engine, clock) -> None:
    owners = _owners(engine, 4)
    (opted_id, opted), (gone_id, gone), (_capped_id, capped), (_, gift) = owners
    with Session(engine) as session:
        enqueue_many(
            session,
            [
                _push("opted-m", opted),
                _push("opted-t", opted, MessageClass.transactional),
                _push("gone-t", gone, MessageClass.transactional),
                _push("cap-1", capped),
                _push("cap-2", capped),
                _push("campaign", gift, topic="campaign", subject="spring"),
                _push("gift", gift, MessageClass.transactional, topic="gift_reminder", subject="gift:7"),
            ],
        )
        session.commit()
    with Session(engine) as session:
        flows_outbox.set_marketing_opt_out(session, opted_id, True, clock.now())
        session.get(Owner, gone_id).unreachable = True
        flows_outbox.cancel_topic(session, "campaign", "spring")
        # cap-1/cap-2 were planned now; two more marketing pushes went out meanwhile
        for i in range(2):
            session.add(
                OutboxMessage(
                    dedupe_key=f"sent{i}",
                    chat_id=capped,
                    text="x",
                    message_class="marketing",
                    status="sent",
                    sent_at=clock.now() - timedelta(hours=i + 1),
                )
            )
        session.commit()
    suppressions = Suppressions()
    suppressions.register(
        "gift_reminder", lambda s, cands: {c.id: "gift_redeemed" for c in cands if c.subject == "gift:7"}
    )
    claimed = outbox.claim_due(engine, clock.now(), 20, LEASE)
    with Session(engine) as session:
        verdicts = {v.id: v for v in screen(session, claimed, clock.now(), DeliveryPolicy(), suppressions)}
    by_key = {k: verdicts.get(r.id) for k, r in _rows(engine).items() if r.id in verdicts}
    assert by_key["opted-m"].reason == "opted_out" and by_key["opted-m"].skip
    assert by_key["opted-t"].send
    assert by_key["gone-t"].reason == "unreachable"
    assert by_key["campaign"].reason == "cancelled"
    assert by_key["gift"].reason == "gift_redeemed"
    assert not by_key["cap-1"].send and by_key["cap-1"].not_before is not None and by_key["cap-1"].reason == "cap"


def test_resume_brings_marketing_back(engine, clock) -> None:
    [(owner_id, chat)] = _owners(engine, 1)
    with Session(engine) as session:
        assert flows_outbox.set_marketing_opt_out(session, owner_id, True, clock.now()).changed
        assert not flows_outbox.set_marketing_opt_out(session, owner_id, True, clock.now()).changed
        enqueue(session, _push("m", chat))
        result = flows_outbox.set_marketing_opt_out(session, owner_id, False, clock.now())
        session.commit()
    assert result.changed and result.marketing_cap == 2 and result.cap_days == 7
    claimed = outbox.claim_due(engine, clock.now(), 5, LEASE)
    with Session(engine) as session:
        assert screen(session, claimed, clock.now(), DeliveryPolicy())[0].send


def test_expire_job_and_jobs_only_plan(engine, clock) -> None:
    owners = _owners(engine, 3)
    with Session(engine) as session:
        enqueue(
            session,
            _push(
                "stale",
                owners[0][1],
                expires_at=clock.now() + timedelta(minutes=2),
                not_before=clock.now() + timedelta(minutes=1),
            ),
        )
        session.commit()
    clock.advance(minutes=3)
    assert expire_pushes(JobContext(engine=engine, now=clock.now(), policy=DeliveryPolicy())) == 1
    assert _rows(engine)["stale"].reason == "expired"

    def digest(ctx: JobContext) -> int:
        with Session(ctx.engine) as session:
            made = enqueue_many(
                session,
                [_push(f"digest:{tg}:{ctx.now:%Y%m%d}", tg, MessageClass.transactional) for _, tg in owners],
                ctx.policy,
            )
            session.commit()
            return made

    first, second = Scheduler(engine, persistent=False), Scheduler(engine, persistent=False)
    ctx = first.context()
    assert digest(ctx) == 3 and digest(second.context()) == 0
    with Session(engine) as session:
        assert (
            session.execute(
                select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.dedupe_key).like("digest:%"))
            ).scalar()
            == 3
        )


def test_delivery_report_counts_and_latency(engine, clock) -> None:
    owners = _owners(engine, 3)
    with Session(engine) as session:
        enqueue_many(
            session, [_push(f"m{tg}", tg) for _, tg in owners] + [_push("t", owners[0][1], MessageClass.transactional)]
        )
        session.commit()
    clock.advance(seconds=4)
    rows = outbox.claim_due(engine, clock.now(), 10, LEASE)
    now = clock.now()
    outcomes = [outbox.Outcome(r.id, "sent", now, telegram_message_id=1) for r in rows[:2]]
    outcomes.append(outbox.Outcome(rows[2].id, "failed", now, reason="bad_request: Bad Request: can't parse entities"))
    outcomes.append(outbox.Outcome(rows[3].id, "skipped", now, reason="opted_out"))
    outbox.record_outcomes(engine, outcomes)
    with Session(engine) as session:
        report = delivery_report(session, now=clock.now(), days=1, timezone="Asia/Shanghai")
    data = {r["class"]: r for r in (row.as_dict() for row in report.rows)}
    assert sum(r["queued"] for r in data.values()) == 4
    assert sum(r["sent"] for r in data.values()) == 2
    failed = [r["failed"] for r in data.values() if r["failed"]]
    assert failed == [{"bad_request": 1}]
    assert data["transactional"]["wait_p50_s"] == 4.0
    assert data["transactional"]["lag_p95_s"] == 4.0


def test_report_delivery_command(cli_env: str, clock) -> None:
    import json

    from typer.testing import CliRunner

    from bot.cli.main import app as cli
    from storage.db import make_engine

    engine = make_engine(cli_env)
    owners = _owners(engine, 2)
    with Session(engine) as session:
        enqueue_many(session, [_push(f"r{tg}", tg) for _, tg in owners])
        session.commit()
    [row, _] = [*outbox.claim_due(engine, clock.now(), 1, LEASE), None]
    outbox.record_outcomes(engine, [outbox.Outcome(row.id, "skipped", clock.now(), reason="opted_out")])
    engine.dispose()
    result = CliRunner().invoke(cli, ["report", "delivery", "--format", "json", "--days", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    [marketing] = data["rows"]
    assert marketing["class"] == "marketing" and marketing["queued"] == 2
    assert marketing["skipped"] == {"opted_out": 1} and marketing["pending"] == 1
    table = CliRunner().invoke(cli, ["report", "delivery"])
    assert table.exit_code == 0, table.output
    assert "marketing" in table.output and "opted_out" in table.output
