"""Win-back on real databases: survey answers counted per reason and partner, "too many
messages" lowering the owner's marketing cap at once, renewed activity ending the run and
counting as won back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import set_marketing_opt_out
from flows.engine.playbook import load_library
from flows.engine.runner import parse_callback, record_button, run_due_flows
from flows.growth import winback
from flows.templating import Renderer
from storage import clock
from storage.delivery_models import OwnerPreference
from storage.events import EventKind, record
from storage.flow_models import FlowRun
from storage.models import Dealer, OutboxMessage, Owner, Partner, SegmentTransition

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    clock.set_now(lambda: T0)
    yield
    clock.set_now(None)


@pytest.fixture
def world(engine) -> dict[str, int]:
    with Session(engine) as s:
        d1, d2 = Dealer(code="D1"), Dealer(code="D2")
        s.add_all([d1, d2])
        s.flush()
        p1 = Partner(name="Alice", dealer_id=d1.id, advisor_code="A1")
        p2 = Partner(name="Bob", dealer_id=d2.id, advisor_code="B1")
        s.add_all([p1, p2])
        s.flush()
        owners = {}
        for n, (pid, tg) in enumerate([(p1.id, 801), (p1.id, 802), (p2.id, 803)]):
            o = Owner(
                name=f"O{n}",
                partner_id=pid,
                telegram_user_id=tg,
                stage="verified",
                maturity="mature",
                activity="active",
                locale="en",
            )
            s.add(o)
            s.flush()
            owners[f"o{n}"] = o.id
        s.commit()
        return {"p1": p1.id, "p2": p2.id, **owners}


def _answer(engine, owner_id: int, action: str, at: datetime) -> None:
    with Session(engine) as s:
        record(s, owner_id, EventKind.button, at, action=action, run_id=1, flow="winback")
        winback.on_answer(s, owner_id, action, at)
        s.commit()


def test_reasons_are_counted_per_reason_and_partner(engine, world) -> None:
    _answer(engine, world["o0"], "winback.price", T0)
    _answer(engine, world["o0"], "winback.price", T0 + timedelta(minutes=1))  # same owner: once
    _answer(engine, world["o1"], "winback.service", T0)
    _answer(engine, world["o2"], "winback.price", T0)
    _answer(engine, world["o2"], "newcomer.tips", T0)  # not a win-back answer
    _answer(engine, world["o1"], "winback.moved", T0 - timedelta(days=40))
    with Session(engine) as s:
        everyone = winback.churn_reasons(s)
        mine = winback.churn_reasons(s, partner_id=world["p1"], since=T0 - timedelta(days=30))
    assert everyone.totals["price"] == 2 and everyone.totals["service"] == 1
    assert everyone.totals["moved"] == 1 and everyone.answered == 3
    assert [p.partner_name for p in everyone.partners] == ["Alice", "Bob"]
    assert everyone.partners[1].dealer_code == "D2"
    assert mine.totals == {"price": 1, "service": 1, "moved": 0, "sold": 0, "too_many": 0, "other": 0}
    assert [p.partner_id for p in mine.partners] == [world["p1"]]
    assert mine.as_dict()["partners"][0]["answered"] == 2


def test_too_many_messages_lowers_the_marketing_cap(engine, world) -> None:
    with Session(engine) as s:
        set_marketing_opt_out(s, world["o1"], False, T0)  # a preference row already exists
        s.commit()
    _answer(engine, world["o0"], "winback.too_many", T0)
    _answer(engine, world["o1"], "winback.too_many", T0)
    _answer(engine, world["o2"], "winback.price", T0)
    with Session(engine) as s:
        assert s.get(OwnerPreference, world["o0"]).marketing_cap_per_week == winback.TOO_MANY_CAP_PER_WEEK
        assert s.get(OwnerPreference, world["o1"]).marketing_cap_per_week == winback.TOO_MANY_CAP_PER_WEEK
        assert s.get(OwnerPreference, world["o2"]) is None
        s.get(OwnerPreference, world["o0"]).marketing_cap_per_week = 0
        assert not winback.on_answer(s, world["o0"], "winback.too_many", T0)  # never raised
        assert s.get(OwnerPreference, world["o0"]).marketing_cap_per_week == 0
    assert DeliveryPolicy().marketing_cap > winback.TOO_MANY_CAP_PER_WEEK


def test_renewed_activity_ends_the_run_and_counts_as_won_back(engine, world) -> None:
    library = load_library()
    renderer = Renderer(default_locale="en")
    with Session(engine) as s:
        for key in ("o0", "o2"):
            s.add(
                SegmentTransition(
                    owner_id=world[key],
                    from_maturity="mature",
                    from_activity="active",
                    to_maturity="mature",
                    to_activity="churned",
                    at=T0,
                )
            )
        s.commit()
    run_due_flows(engine, renderer, library.flows, library.playbook, T0)
    with Session(engine) as s:
        survey = s.exec(select(OutboxMessage).where(col(OutboxMessage.owner_id) == world["o0"])).first()
        run_id, action = parse_callback(survey.buttons[2][0]["callback_data"])
        assert action == "winback.too_many"
        assert record_button(s, run_id, action, 801, T0 + timedelta(minutes=5))  # calls on_answer
        record(s, world["o0"], EventKind.booking, T0 + timedelta(hours=1))
        s.commit()
    run_due_flows(engine, renderer, library.flows, library.playbook, T0 + timedelta(hours=2))
    with Session(engine) as s:
        runs = {r.owner_id: r for r in s.exec(select(FlowRun).where(col(FlowRun.flow_key) == "winback"))}
        report = winback.churn_reasons(s)
        assert s.get(OwnerPreference, world["o0"]).marketing_cap_per_week == 1
    assert runs[world["o0"]].status == "goal_reached"
    assert runs[world["o2"]].status == "live"
    assert report.runs == 2 and report.won_back == 1 and report.totals["too_many"] == 1
    by_partner = {p.partner_id: p for p in report.partners}
    assert by_partner[world["p1"]].won_back == 1 and by_partner[world["p2"]].won_back == 0


def test_an_owner_who_answers_and_returns_weeks_later_counts_as_won_back(engine, world) -> None:
    """Answering the survey does not end the watch: a return within 30 days is a win."""
    library = load_library()
    renderer = Renderer(default_locale="en")
    with Session(engine) as s:
        for key in ("o0", "o2"):
            s.add(
                SegmentTransition(
                    owner_id=world[key],
                    from_maturity="mature",
                    from_activity="active",
                    to_maturity="mature",
                    to_activity="churned",
                    at=T0,
                )
            )
        s.commit()
    run_due_flows(engine, renderer, library.flows, library.playbook, T0)
    with Session(engine) as s:
        for key in ("o0", "o2"):
            survey = s.exec(select(OutboxMessage).where(col(OutboxMessage.owner_id) == world[key])).first()
            run_id, action = parse_callback(survey.buttons[0][0]["callback_data"])
            tg = s.get(Owner, world[key]).telegram_user_id
            assert record_button(s, run_id, action, tg, T0 + timedelta(minutes=5))
        s.commit()
    run_due_flows(engine, renderer, library.flows, library.playbook, T0 + timedelta(hours=1))
    with Session(engine) as s:  # o0 comes back three weeks later; o2 does not
        record(s, world["o0"], EventKind.circle_message, T0 + timedelta(days=21))
        s.commit()
    run_due_flows(engine, renderer, library.flows, library.playbook, T0 + timedelta(days=21, hours=1))
    run_due_flows(engine, renderer, library.flows, library.playbook, T0 + timedelta(days=31, hours=2))
    with Session(engine) as s:
        runs = {r.owner_id: r for r in s.exec(select(FlowRun).where(col(FlowRun.flow_key) == "winback"))}
        report = winback.churn_reasons(s)
    assert runs[world["o0"]].status == "goal_reached"
    assert runs[world["o2"]].status == "exited" and runs[world["o2"]].end_reason == "not back within 30 days"
    assert report.won_back == 1 and report.totals["price"] == 2


def test_cli_churn_reasons_table_and_json(engine, world, cli_env) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from bot.cli.winback_cmd import churn_reasons

    app = typer.Typer()
    app.command("churn-reasons")(churn_reasons)
    app.command("noop")(lambda: None)  # a group, as on the report app
    _answer(engine, world["o0"], "winback.sold", T0)
    _answer(engine, world["o2"], "winback.price", T0)
    runner = CliRunner()
    result = runner.invoke(app, ["churn-reasons", "--partner", "A1", "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["totals"]["sold"] == 1 and payload["totals"]["price"] == 0
    table = runner.invoke(app, ["churn-reasons"])
    assert table.exit_code == 0 and "Churn reasons" in table.output
    unknown = runner.invoke(app, ["churn-reasons", "--partner", "NOPE"])
    assert unknown.exit_code != 0 and "NOPE" in unknown.output


def test_other_in_the_owners_words_is_kept_per_partner(engine, world) -> None:
    at = clock.utcnow()
    with Session(engine) as s:
        winback.record_other_text(s, world["o0"], "  The dealer is <far> & slow  ", at)
        winback.record_other_text(s, world["o2"], "x" * 900, at)
        s.commit()
    with Session(engine) as s:
        alice = winback.churn_reasons(s, partner_id=world["p1"])
        everyone = winback.churn_reasons(s)
    assert alice.other_texts == ["The dealer is <far> & slow"]
    assert len(everyone.other_texts) == 2
    assert max(len(t) for t in everyone.other_texts) == winback.OTHER_TEXT_LIMIT
    assert alice.as_dict()["other_texts"] == ["The dealer is <far> & slow"]
    text = Renderer().render("winback/reasons", "en", report=alice, since=None)
    assert "“The dealer is &lt;far&gt; &amp; slow”" in text
