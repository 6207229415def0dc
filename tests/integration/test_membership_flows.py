"""Membership in the flow language on SQLite and PostgreSQL: the invitation's join button
enrols the owner (account, welcome points once, level), ``member.level`` is a condition field
branches read, and the library's membership flow skips owners already in the programme."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from flows.engine.flow_files import load_flows
from flows.engine.flow_rules import condition_holds
from flows.engine.flow_spec import Condition
from flows.engine.flow_steps import owner_view
from flows.engine.playbook import load_library
from flows.engine.runner import parse_callback, record_button, run_due_flows
from flows.membership import points
from flows.templating import Renderer
from storage import clock
from storage.membership_models import MemberAccount, PointsLine
from storage.models import OutboxMessage, Owner, SegmentTransition

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def _owner(engine, tg: int = 5001, **kw) -> int:
    with Session(engine) as s:
        owner = Owner(
            name="Li",
            telegram_user_id=tg,
            stage="verified",
            maturity="growing",
            activity="active",
            locale="en",
            attributes={},
            **kw,
        )
        s.add(owner)
        s.commit()
        return owner.id


def _entered_cell(engine, owner_id: int, at: datetime) -> None:
    with Session(engine) as s:
        s.add(
            SegmentTransition(
                owner_id=owner_id,
                from_maturity="beginner",
                from_activity="active",
                to_maturity="growing",
                to_activity="active",
                at=at,
            )
        )
        s.commit()


def test_join_button_enrols_once_and_member_level_is_a_condition(engine) -> None:
    clock.set_now(lambda: T0)
    try:
        library = load_library()
        real = Renderer(default_locale="en")
        owner = _owner(engine)
        _entered_cell(engine, owner, T0)
        run_due_flows(engine, real, library.flows, library.playbook, T0)
        with Session(engine) as s:
            invite = [
                m for m in s.execute(select(OutboxMessage)).scalars() if m.dedupe_key.startswith("flow:membership:")
            ]
            assert len(invite) == 1
            [[button]] = invite[0].buttons
            run_id, action = parse_callback(button["callback_data"])
            assert action == "membership.join"
            owner_row = s.get(Owner, owner)
            assert not condition_holds(Condition(field="member.level", is_set=True), owner_view(owner_row))
        for _ in range(2):  # pressed twice: enrolled once
            with Session(engine) as s:
                record_button(s, run_id, action, 5001, T0 + timedelta(minutes=5))
                s.commit()
        with Session(engine) as s:
            account = s.get(MemberAccount, owner)
            assert (
                account is not None
                and account.level == "silver"
                and account.balance == points.DEFAULT_AMOUNTS["welcome"]
            )
            assert (
                s.execute(
                    select(func.count()).select_from(PointsLine).where(col(PointsLine.reason) == "welcome")
                ).scalar_one()
                == 1
            )
            view = owner_view(s.get(Owner, owner))
            assert condition_holds(Condition(field="member.level", is_set=True), view)
            assert condition_holds(Condition(field="member.level", **{"in": ["silver", "gold"]}), view)
            assert not condition_holds(Condition(field="member.level", equals="black"), view)
        run_due_flows(engine, real, library.flows, library.playbook, T0 + timedelta(minutes=6))
        with Session(engine) as s:
            texts = [m.text for m in s.execute(select(OutboxMessage).order_by(col(OutboxMessage.id))).scalars()]
        assert any("points programme" in t for t in texts)
    finally:
        clock.set_now(None)


BRANCH = """\
key: level_branch
trigger: {event: verified}
steps:
  - id: check
    branch:
      if: {field: member.level, in: [gold, black]}
      then: vip
      else: plain
  - id: vip
    set: {tag: vip}
    next: finish
  - id: plain
    set: {tag: plain}
  - id: finish
    exit: {reason: done}
"""


def test_a_branch_on_member_level_in_a_run(engine, tmp_path) -> None:
    from storage.events import EventKind, record

    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "level_branch.yaml").write_text(BRANCH, encoding="utf-8")
    flows = load_flows(folder)
    gold, plain = _owner(engine), _owner(engine, tg=5002)
    with Session(engine) as s:
        points.join(s, gold, T0)
        points.award(s, gold, 600, "booking", "test:gold", T0)
        points.check_level(s, gold, points.DEFAULT_POLICY, T0)
        record(s, gold, EventKind.verified, T0)
        record(s, plain, EventKind.verified, T0)
        s.commit()
    run_due_flows(engine, Renderer(default_locale="en"), flows, None, T0 + timedelta(seconds=1))
    with Session(engine) as s:
        assert s.get(Owner, gold).attributes["tags"] == ["vip"]
        assert s.get(Owner, plain).attributes["tags"] == ["plain"]


def test_the_join_button_awards_the_deployments_welcome_points(engine) -> None:
    """The bot installs the configured policy on each update's session (bot.runtime); the answer
    hook, which gets no settings, awards from it rather than the built-in amounts."""
    clock.set_now(lambda: T0)
    try:
        library = load_library()
        owner = _owner(engine)
        _entered_cell(engine, owner, T0)
        run_due_flows(engine, Renderer(default_locale="en"), library.flows, library.playbook, T0)
        with Session(engine) as s:
            [invite] = [
                m for m in s.execute(select(OutboxMessage)).scalars() if m.dedupe_key.startswith("flow:membership:")
            ]
            run_id, action = parse_callback(invite.buttons[0][0]["callback_data"])
        policy = points.PointsPolicy(amounts={**points.DEFAULT_AMOUNTS, "welcome": 7})
        with Session(engine, info={points.POLICY_KEY: policy}) as s:
            assert record_button(s, run_id, action, 5001, T0 + timedelta(minutes=5))
            s.commit()
        with Session(engine) as s:
            account = s.get(MemberAccount, owner)
            assert account is not None and account.balance == 7 != points.DEFAULT_AMOUNTS["welcome"]
    finally:
        clock.set_now(None)
