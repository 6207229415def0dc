"""The flow runner on real databases (SQLite and PostgreSQL): entering by event and cell,
entry rules, audience, waits with the clock advanced, branches, set, partner notices, goals,
versions kept by live runs, idempotent passes and restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from flows.engine.flow_files import load_flows
from flows.engine.playbook_spec import Playbook
from flows.engine.runner import parse_callback, record_button, run_due_flows
from flows.templating import Renderer
from storage import clock
from storage.events import EventKind, record
from storage.flow_models import FlowRun, FlowRunLog
from storage.models import Dealer, Event, OutboxMessage, Owner, Partner, SegmentTransition

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # noon in Asia/Shanghai: outside quiet hours


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@pytest.fixture
def now() -> Iterator[Clock]:
    c = Clock()
    clock.set_now(lambda: c.now)
    yield c
    clock.set_now(None)


@pytest.fixture
def renderer(tmp_path: Path) -> Renderer:
    root = tmp_path / "templates"
    for loc in ("en", "zh"):
        (root / loc / "t").mkdir(parents=True)
        (root / loc / "layout.j2").write_text("{% block body %}{% endblock %}", encoding="utf-8")
        for name, body in {
            "hello": "Hello {{ owner_name }}",
            "second": "Second",
            "yes": "Thanks",
            "no": "Missed you",
            "partner": "Owner {{ owner_name }} answered {{ answer }}",
            "novice": "Novice tips",
            "veteran": "Veteran tips",
            "gift": "Code {{ gift.code }}",
            "remind": "{{ gift.code }} expires {{ gift.expires_on }}",
        }.items():
            (root / loc / "t" / f"{name}.j2").write_text(
                f'{{% extends "{loc}/layout.j2" %}}{{% block body %}}{body}{{% endblock %}}',
                encoding="utf-8",
            )
    return Renderer(root=root, default_locale="en")


def _flows(tmp_path: Path, **files: str):
    folder = tmp_path / "flows"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return load_flows(folder)


SIMPLE = """\
key: simple
trigger: {event: verified}
entry: {ENTRY}
audience: {product_lines: [passenger]}
steps:
  - id: hello
    send: {template: t/hello}
  - id: pause
    wait: {duration: 1d}
  - id: second
    send: {template: t/second, class: transactional}
"""


def _owner(engine, tg: int = 5001, **kw) -> int:
    with Session(engine) as s:
        values = dict(
            name="Li", telegram_user_id=tg, stage="verified", maturity="beginner", activity="active", locale="en"
        )
        values.update(kw)
        owner = Owner(**values)
        s.add(owner)
        s.commit()
        return owner.id


def _event(engine, owner_id: int, kind: EventKind, at: datetime, **data) -> None:
    with Session(engine) as s:
        record(s, owner_id, kind, at, **data)
        s.commit()


def _outbox(engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def _runs(engine) -> list[FlowRun]:
    with Session(engine) as s:
        return list(s.exec(select(FlowRun).order_by(col(FlowRun.id))).all())


def _logs(engine, outcome: str | None = None) -> list[FlowRunLog]:
    with Session(engine) as s:
        query = select(FlowRunLog).order_by(col(FlowRunLog.id))
        if outcome:
            query = query.where(col(FlowRunLog.outcome) == outcome)
        return list(s.exec(query).all())


def _pass(engine, renderer, flows, now: Clock, playbook=None):
    return run_due_flows(engine, renderer, flows, playbook, now.now)


def test_event_enters_sends_waits_and_finishes(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{}"))
    owner = _owner(engine)
    _event(engine, owner, EventKind.verified, now.now)
    result = _pass(engine, renderer, flows, now)
    assert result.entered == 1
    [run] = _runs(engine)
    assert [m.dedupe_key for m in _outbox(engine)] == [f"flow:simple:{run.id}:hello"]
    assert _outbox(engine)[0].text == "Hello Li"
    assert run.status == "live" and run.step_id == "pause" and run.next_at == T0 + timedelta(days=1)

    now.advance(hours=23)
    _pass(engine, renderer, flows, now)
    assert len(_outbox(engine)) == 1  # still waiting
    now.advance(hours=2)
    _pass(engine, renderer, flows, now)
    assert [m.text for m in _outbox(engine)] == ["Hello Li", "Second"]
    [run] = _runs(engine)
    assert run.status == "done" and run.ended_at == now.now


def test_pass_is_idempotent_and_restart_resumes(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{}"))
    owner = _owner(engine)
    _event(engine, owner, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    again = _pass(engine, renderer, flows, now)  # same time, same work: nothing new
    assert again.entered == 0 and again.queued == 0
    assert len(_outbox(engine)) == 1 and len(_runs(engine)) == 1
    # "restart": fresh flow objects and renderer; state is in the database only
    flows2 = load_flows(tmp_path / "flows")
    now.advance(days=2)
    _pass(engine, renderer, flows2, now)
    _pass(engine, renderer, flows2, now)
    assert len(_outbox(engine)) == 2
    assert _runs(engine)[0].status == "done"


@pytest.mark.parametrize(
    ("entry", "second_enters", "reason"),
    [
        ("{once: true}", False, "once"),
        ("{cooldown: 3d}", False, "cooldown 3d"),
        ("{max_entries: 1}", False, "max_entries 1"),
        ("{cooldown: 1d}", True, None),
    ],
)
def test_entry_rules(engine, renderer, tmp_path, now, entry, second_enters, reason) -> None:
    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", entry))
    owner = _owner(engine)
    _event(engine, owner, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    now.advance(days=2)
    _pass(engine, renderer, flows, now)  # the first run ends
    _event(engine, owner, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    assert len(_runs(engine)) == (2 if second_enters else 1)
    if reason:
        assert [log.reason for log in _logs(engine, "skipped")] == [reason]


def test_never_two_live_runs(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{}"))
    owner = _owner(engine)
    _event(engine, owner, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    _event(engine, owner, EventKind.verified, now.advance(hours=1))
    _pass(engine, renderer, flows, now)
    assert len(_runs(engine)) == 1
    assert [log.reason for log in _logs(engine, "skipped")] == ["live run"]


def test_audience_filters_product_line_and_verification(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{}"))
    truck = _owner(engine, 5001, product_line="commercial")
    guest = _owner(engine, 5002, stage="online")
    _event(engine, truck, EventKind.verified, now.now)
    _event(engine, guest, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    assert _runs(engine) == []
    assert sorted(log.reason for log in _logs(engine, "skipped")) == [
        "audience: not verified (online)",
        "audience: product line commercial",
    ]


WAIT_UNTIL = """\
key: survey
trigger: {cell_entered: [mature/churned]}
goals: [{event: booking}]
steps:
  - id: ask
    send:
      template: t/hello
      buttons: [[{text: Price, action: survey.price}, {text: Other, action: survey.other}]]
  - id: wait
    wait: {until: survey, timeout: 3d, yes: thanks, no: missed}
  - id: thanks
    send: {template: t/yes}
  - id: tell
    notify_partner: {template: t/partner}
  - id: tag
    set: {tag: answered_survey}
  - id: stop
    exit: {reason: answered}
  - id: missed
    send: {template: t/no}
"""


def _transition(engine, owner_id: int, to: str, at: datetime) -> None:
    m, a = to.split("/")
    with Session(engine) as s:
        s.add(
            SegmentTransition(
                owner_id=owner_id, from_maturity="mature", from_activity="active", to_maturity=m, to_activity=a, at=at
            )
        )
        owner = s.get(Owner, owner_id)
        owner.maturity, owner.activity = m, a
        s.commit()


def _partner(engine, tg: int = 7001) -> int:
    with Session(engine) as s:
        dealer = Dealer(code="D1", name="Dealer")
        s.add(dealer)
        s.flush()
        partner = Partner(name="Wang", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=tg)
        s.add(partner)
        s.commit()
        return partner.id


def test_wait_until_answer_branches_notifies_and_sets_tag(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, survey=WAIT_UNTIL)
    partner = _partner(engine)
    owner = _owner(engine, partner_id=partner)
    _transition(engine, owner, "mature/churned", now.now)
    _pass(engine, renderer, flows, now)
    [ask] = _outbox(engine)
    data = ask.buttons[0][0]["callback_data"]
    run_id, action = parse_callback(data)
    with Session(engine) as s:
        assert not record_button(s, run_id, action, 9999, now.now)  # someone else's button
        assert record_button(s, run_id, action, 5001, now.advance(hours=2))
        s.commit()
    _pass(engine, renderer, flows, now)
    assert [m.text for m in _outbox(engine)] == ["Hello Li", "Thanks", "Owner Li answered survey.price"]
    assert _outbox(engine)[2].chat_id == 7001
    [run] = _runs(engine)
    assert run.status == "exited" and run.end_reason == "answered"
    with Session(engine) as s:
        assert s.get(Owner, owner).attributes["tags"] == ["answered_survey"]


def test_wait_until_times_out_to_no(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, survey=WAIT_UNTIL)
    owner = _owner(engine)
    _transition(engine, owner, "mature/churned", now.now)
    _pass(engine, renderer, flows, now)
    now.advance(days=3, minutes=1)
    _pass(engine, renderer, flows, now)
    assert [m.text for m in _outbox(engine)] == ["Hello Li", "Missed you"]
    assert _runs(engine)[0].status == "done"


def test_goal_ends_the_run(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, survey=WAIT_UNTIL)
    owner = _owner(engine)
    _transition(engine, owner, "mature/churned", now.now)
    _pass(engine, renderer, flows, now)
    _event(engine, owner, EventKind.booking, now.advance(hours=1))
    _pass(engine, renderer, flows, now)
    now.advance(days=4)
    _pass(engine, renderer, flows, now)
    [run] = _runs(engine)
    assert run.status == "goal_reached" and run.end_reason == "goal booking"
    assert len(_outbox(engine)) == 1


def test_playbook_decides_which_cells_enter(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, survey=WAIT_UNTIL)
    owner = _owner(engine, product_line="commercial")
    _transition(engine, owner, "mature/churned", now.now)
    _pass(engine, renderer, flows, now, Playbook(passenger={"mature/churned": ["survey"]}))
    assert _runs(engine) == []


BRANCH = """\
key: tips
trigger: {event: verified}
steps:
  - id: which
    branch:
      if: {field: owner.familiarity, equals: novice}
      then: novice
      else: veteran
  - id: novice
    send: {template: t/novice}
  - id: end
    exit: {}
  - id: veteran
    set: {attribute: level, value: expert}
  - id: veteran_tips
    send: {template: t/veteran}
"""


def test_branch_on_owner_field_and_set_attribute(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, tips=BRANCH)
    novice = _owner(engine, 5001, familiarity="novice")
    veteran = _owner(engine, 5002, familiarity="veteran")
    _event(engine, novice, EventKind.verified, now.now)
    _event(engine, veteran, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    assert sorted((m.chat_id, m.text) for m in _outbox(engine)) == [(5001, "Novice tips"), (5002, "Veteran tips")]
    with Session(engine) as s:
        assert s.get(Owner, veteran).attributes == {"level": "expert"}
        assert s.get(Owner, novice).attributes == {}


def test_edited_flow_leaves_live_run_on_its_version(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{}"))
    first = _owner(engine, 5001)
    _event(engine, first, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    edited = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{}").replace("t/second", "t/no"))
    second = _owner(engine, 5002)
    _event(engine, second, EventKind.verified, now.now)
    _pass(engine, renderer, edited, now)
    now.advance(days=2)
    _pass(engine, renderer, edited, now)
    texts = {m.chat_id: m.text for m in _outbox(engine) if m.text != "Hello Li"}
    assert texts == {5001: "Second", 5002: "Missed you"}
    old, new = _runs(engine)
    assert old.flow_version == flows["simple"].version != new.flow_version


def test_quiet_hours_deferral_is_logged(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{}"))
    now.now = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    owner = _owner(engine)
    _event(engine, owner, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    [deferred] = _logs(engine, "deferred")
    assert deferred.step_id == "hello" and deferred.reason.startswith("quiet_hours until")


GIFT = """\
key: newbie
trigger: {event: verified}
steps:
  - id: give
    grant_gift: {type: newcomer}
  - id: tell
    send: {template: t/gift, class: transactional}
"""

REMIND = """\
key: remind
trigger: {date: {attribute: gift.expires_at, offset: -3d}}
goals: [{event: gift_redeemed}]
steps:
  - id: first
    send: {template: t/remind, class: transactional}
  - id: pause
    wait: {duration: 2d}
  - id: last
    send: {template: t/remind, class: transactional}
"""


def test_gift_granted_reminded_and_redemption_ends_reminders(engine, renderer, tmp_path, now) -> None:
    from flows.growth import gifts

    flows = _flows(tmp_path, newbie=GIFT, remind=REMIND)
    partner = _partner(engine)
    owner = _owner(engine, partner_id=partner)
    _event(engine, owner, EventKind.verified, now.now)
    _pass(engine, renderer, flows, now)
    [told] = _outbox(engine)
    code = told.text.removeprefix("Code ")
    now.advance(days=27, minutes=1)
    _pass(engine, renderer, flows, now)
    _pass(engine, renderer, flows, now)
    reminders = [m for m in _outbox(engine) if m.dedupe_key.startswith("flow:remind:")]
    assert len(reminders) == 1 and reminders[0].text.startswith(f"{code} expires ")
    with Session(engine) as s:
        gifts.redeem(s, partner, code, now.advance(hours=1))
        s.commit()
    now.advance(days=3)
    _pass(engine, renderer, flows, now)
    remind_run = next(r for r in _runs(engine) if r.flow_key == "remind")
    assert remind_run.status == "goal_reached"
    assert len([m for m in _outbox(engine) if m.dedupe_key.startswith("flow:remind:")]) == 1


# --- the shipped library, with the real templates ------------------------------------------


def test_library_newcomer_journey(engine, tmp_path, now) -> None:
    from flows.engine.playbook import load_library

    library = load_library()
    real = Renderer(default_locale="en")
    owner = _owner(engine, familiarity="novice")
    _event(engine, owner, EventKind.verified, now.now)
    run_due_flows(engine, real, library.flows, library.playbook, now.now)
    welcome, gift = _outbox(engine)
    assert welcome.text.startswith("Welcome to the owner circle, Li!")
    assert "Show code <code>" in gift.text
    now.advance(days=2, minutes=1)
    run_due_flows(engine, real, library.flows, library.playbook, now.now)
    assert _outbox(engine)[-1].text.startswith("New-car tip")
    now.advance(days=3, minutes=1)
    run_due_flows(engine, real, library.flows, library.playbook, now.now)
    assert _outbox(engine)[-1].text.startswith("Your first-order reward")
    _event(engine, owner, EventKind.booking, now.advance(hours=1))
    run_due_flows(engine, real, library.flows, library.playbook, now.now)
    assert _outbox(engine)[-1].text.startswith("Booking received")
    [run] = _runs(engine)
    assert run.status == "exited" and run.end_reason == "newcomer journey complete"


def test_library_winback_survey_answer_reaches_partner(engine, tmp_path, now) -> None:
    from flows.engine.playbook import load_library

    library = load_library()
    real = Renderer(default_locale="en")
    partner = _partner(engine)
    owner = _owner(engine, partner_id=partner, maturity="mature", activity="active", phone="138")
    _transition(engine, owner, "mature/churned", now.now)
    run_due_flows(engine, real, library.flows, library.playbook, now.now)
    [survey] = _outbox(engine)
    actions = [b["callback_data"] for row in survey.buttons for b in row]
    assert len(actions) == 6
    run_id, action = parse_callback(actions[0])
    with Session(engine) as s:
        assert record_button(s, run_id, action, 5001, now.advance(hours=1))
        s.commit()
    run_due_flows(engine, real, library.flows, library.playbook, now.now)
    texts = [m.text for m in _outbox(engine)]
    assert texts[1].startswith("Thank you for telling us!")
    assert "gave a reason for leaving: price" in texts[2]
    with Session(engine) as s:
        assert s.exec(select(Event).where(col(Event.kind) == "button")).one().data["action"] == "winback.price"


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_every_flow_template_renders(locale: str) -> None:
    real = Renderer()
    gift = {"id": 1, "code": "AB12CD34", "value": "V", "expires_on": "2026-04-01", "type": "newcomer"}
    for template in [t for t in real.template_ids() if t.startswith("flows/")]:
        for g in (gift, None):
            if template.startswith("flows/gift_reminder") and g is None:
                continue
            text = real.render(
                template,
                locale,
                owner_name="Li",
                owner_phone="138",
                owner_id=1,
                cell="mature/churned",
                partner_name="Wang",
                gift=g,
                answer="winback.price",
                flow="x",
            )
            assert text


DEEP = """\
key: promo
trigger: {deep_link: spring}
entry: {once: true}
steps:
  - id: hello
    send: {template: t/hello}
"""

WEEKLY = """\
key: weekly
trigger: {schedule: "0 9 * * *"}
audience: {product_lines: [passenger]}
steps:
  - id: tip
    send: {template: t/second}
"""


def test_deep_link_enters_once_and_the_next_pass_sends(engine, renderer, tmp_path, now) -> None:
    from flows.engine.runner import enter_deep_link

    flows = _flows(tmp_path, promo=DEEP)
    owner = _owner(engine)
    with Session(engine) as s:
        assert enter_deep_link(s, flows, owner, "autumn", now.now) is None
        assert enter_deep_link(s, flows, owner, "spring", now.now) is not None
        s.commit()
    _pass(engine, renderer, flows, now)
    with Session(engine) as s:
        assert enter_deep_link(s, flows, owner, "spring", now.advance(hours=1)) is None  # once
        s.commit()
    assert [m.text for m in _outbox(engine)] == ["Hello Li"]


def test_schedule_enters_the_audience_once_per_slot(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, weekly=WEEKLY)
    _owner(engine, 5001)
    _owner(engine, 5002, product_line="commercial")
    _pass(engine, renderer, flows, now)  # 04:00: the schedule starts now
    now.advance(hours=5, minutes=1)  # 09:01
    _pass(engine, renderer, flows, now)
    _pass(engine, renderer, flows, now)
    assert [(m.chat_id, m.text) for m in _outbox(engine)] == [(5001, "Second")]
    now.advance(days=1)
    _pass(engine, renderer, flows, now)
    assert len(_outbox(engine)) == 2


def test_schedule_reads_cron_in_the_configured_time_zone(engine, renderer, tmp_path, now) -> None:
    """ "0 9 * * *" in Asia/Shanghai is 01:00 UTC: not at 09:00 UTC, but the next morning there."""
    flows = _flows(tmp_path, weekly=WEEKLY)
    _owner(engine, 5001)

    def shanghai_pass() -> None:
        run_due_flows(engine, renderer, flows, None, now.now, timezone="Asia/Shanghai")

    shanghai_pass()  # 04:00 UTC = 12:00 in Shanghai: the schedule starts now
    now.advance(hours=5, minutes=1)  # 09:01 UTC = 17:01 in Shanghai
    shanghai_pass()
    assert _outbox(engine) == []
    now.advance(hours=16)  # 01:01 UTC the next day = 09:01 in Shanghai
    shanghai_pass()
    assert [m.chat_id for m in _outbox(engine)] == [5001]
    [run] = _runs(engine)
    assert run.entry_key.endswith(f"{now.now:%Y%m%d}T0100")  # the slot, in UTC


def test_wait_ignores_an_answer_given_before_the_wait(engine, renderer, tmp_path, now) -> None:
    flows = _flows(tmp_path, survey=WAIT_UNTIL)
    owner = _owner(engine)
    _event(engine, owner, EventKind.button, now.now - timedelta(hours=1), action="survey.price")
    _transition(engine, owner, "mature/churned", now.now)
    _pass(engine, renderer, flows, now)
    now.advance(days=3, minutes=1)
    _pass(engine, renderer, flows, now)
    assert [m.text for m in _outbox(engine)] == ["Hello Li", "Missed you"]


def test_a_failing_step_ends_its_run_and_the_pass_goes_on(engine, renderer, tmp_path, now, monkeypatch) -> None:
    from flows.engine.flow_steps import StepRunner

    flows = _flows(tmp_path, tips=BRANCH)
    first = _owner(engine, 5001, familiarity="novice")
    second = _owner(engine, 5002, familiarity="veteran")
    _event(engine, first, EventKind.verified, now.now)
    _event(engine, second, EventKind.verified, now.now)
    real = StepRunner._step_set

    def broken(self, run, spec, owner, step):
        raise RuntimeError("boom")

    monkeypatch.setattr(StepRunner, "_step_set", broken)
    _pass(engine, renderer, flows, now)
    monkeypatch.setattr(StepRunner, "_step_set", real)
    by_owner = {r.owner_id: r for r in _runs(engine)}
    assert by_owner[first].status == "exited" and by_owner[first].end_reason == "done"
    assert by_owner[second].status == "exited" and by_owner[second].end_reason == "error: RuntimeError"
    assert [m.chat_id for m in _outbox(engine)] == [5001]
    # the batch was redone run by run: each step of the good run is logged once, the failed
    # run's rolled-back steps not at all
    lines = [(log.owner_id, log.step_id, log.outcome) for log in _logs(engine) if log.run_id is not None]
    assert len(lines) == len(set(lines))
    assert [outcome for owner, _step, outcome in lines if owner == second] == ["entered", "exited"]


def test_two_concurrent_passes_send_each_step_once(engine, renderer, tmp_path, now) -> None:
    import threading

    flows = _flows(tmp_path, simple=SIMPLE.replace("{ENTRY}", "{}"))
    owners = [_owner(engine, 6000 + i) for i in range(10)]
    for owner in owners:
        _event(engine, owner, EventKind.verified, now.now)
    errors: list[BaseException] = []

    def one_pass() -> None:
        try:
            _pass(engine, renderer, flows, now)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _pass(engine, renderer, flows, now)
    assert errors == []
    assert len(_runs(engine)) == 10
    assert sorted(m.chat_id for m in _outbox(engine)) == sorted(6000 + i for i in range(10))
