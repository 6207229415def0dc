"""The runner's pure rules: entry rules, audience, conditions, event names, goals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flows.engine.flow_rules import (
    OwnerView,
    PastRun,
    audience_refusal,
    cell_matches,
    condition_holds,
    entry_refusal,
    event_names,
    goal_reached,
    signed_offset,
)
from flows.engine.flow_spec import Audience, Condition, EntryRules, Goal
from flows.engine.runner import callback_data, parse_callback

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def _past(*ages_days: float, status: str = "done") -> list[PastRun]:
    return [PastRun(NOW - timedelta(days=d), status) for d in ages_days]


@pytest.mark.parametrize(
    ("rules", "past", "refusal"),
    [
        (EntryRules(), [], None),
        (EntryRules(), _past(10), None),
        (EntryRules(), _past(10, status="live"), "live run"),
        (EntryRules(once=True), _past(100), "once"),
        (EntryRules(cooldown="7d"), _past(3), "cooldown 7d"),
        (EntryRules(cooldown="7d"), _past(8), None),
        (EntryRules(max_entries=2), _past(30, 20), "max_entries 2"),
        (EntryRules(max_entries=2), _past(30), None),
    ],
)
def test_entry_rules(rules: EntryRules, past: list[PastRun], refusal: str | None) -> None:
    assert entry_refusal(rules, past, NOW) == refusal


def _owner(**kw) -> OwnerView:
    values = dict(
        product_line="passenger",
        maturity="mature",
        activity="churned",
        stage="verified",
        familiarity="novice",
        locale="zh",
        attributes={"tags": ["vip"], "color": "red"},
    )
    values.update(kw)
    return OwnerView(**values)


def test_audience() -> None:
    assert audience_refusal(Audience(), _owner()) is None
    assert audience_refusal(Audience(product_lines=["commercial"]), _owner()) == "audience: product line passenger"
    assert audience_refusal(Audience(), _owner(stage="online")) == "audience: not verified (online)"
    assert audience_refusal(Audience(verified_only=False), _owner(stage="online")) is None
    assert audience_refusal(Audience(cells=["mature/*"]), _owner()) is None
    assert audience_refusal(Audience(cells=["growing/churned"]), _owner()) == "audience: cell mature/churned"


def test_cells_match_with_wildcards() -> None:
    assert cell_matches("mature/*", "mature/active")
    assert cell_matches("*/churned", "growing/churned")
    assert not cell_matches("mature/active", "mature/declining")


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"field": "owner.familiarity", "equals": "novice"}, True),
        ({"field": "owner.familiarity", "in": ["skilled", "veteran"]}, False),
        ({"field": "cell", "equals": "mature/*"}, True),
        ({"field": "cell", "in": ["growing/churned", "*/churned"]}, True),
        ({"field": "activity", "equals": "active"}, False),
        ({"field": "attribute.color", "equals": "red"}, True),
        ({"field": "attribute.size", "is_set": False}, True),
        ({"field": "tag.vip", "equals": True}, True),
        ({"field": "tag.member", "is_set": True}, False),
    ],
)
def test_conditions(condition: dict, holds: bool) -> None:
    assert condition_holds(Condition.model_validate(condition), _owner()) is holds


def test_event_names_include_button_action_prefixes() -> None:
    assert event_names("booking", {}) == {"booking"}
    assert event_names("button", {"action": "winback.price"}) == {"button", "winback", "winback.price"}


def test_goals_match_kind_gift_type_and_the_runs_own_gift() -> None:
    goals = [Goal(event="gift_redeemed", gift_type="newcomer")]
    assert goal_reached(goals, "gift_redeemed", {"gift_type": "newcomer"}, {}) == goals[0]
    assert goal_reached(goals, "gift_redeemed", {"gift_type": "winback"}, {}) is None
    assert goal_reached(goals, "booking", {}, {}) is None
    ctx = {"gift": {"id": 7}}
    assert goal_reached(goals, "gift_redeemed", {"gift_type": "newcomer", "grant_id": 8}, ctx) is None
    assert goal_reached(goals, "gift_redeemed", {"gift_type": "newcomer", "grant_id": 7}, ctx) == goals[0]


def test_offsets_and_callbacks() -> None:
    assert signed_offset("-3d") == timedelta(days=-3)
    assert signed_offset("12h") == timedelta(hours=12)
    assert parse_callback(callback_data(12, "winback.price")) == (12, "winback.price")
    assert parse_callback("xx:1:a") is None
    assert parse_callback("fl:abc:a") is None
