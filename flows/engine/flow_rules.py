"""The runner's pure rules: who may enter, who is in the audience, which branch holds, which
event a name matches. No database here, so the rules are unit-tested with plain values."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flows.engine import registry
from flows.engine.flow_spec import CONDITION_FIELDS, Audience, Condition, EntryRules, Goal, parse_duration
from storage.flow_models import FlowRunStatus

TAGS_KEY = "tags"


@dataclass(frozen=True)
class PastRun:
    entered_at: datetime
    status: str


@dataclass(frozen=True)
class OwnerView:
    """What the rules read of an owner."""

    product_line: str
    maturity: str
    activity: str
    stage: str = "verified"
    familiarity: str | None = None
    locale: str | None = None
    attributes: Mapping[str, Any] | None = None
    lookup: Callable[[str], Any] | None = None  # a registered condition field's value (registry)

    @property
    def cell(self) -> str:
        return f"{self.maturity}/{self.activity}"


def entry_refusal(rules: EntryRules, past: Sequence[PastRun], now: datetime) -> str | None:
    """Why the owner may not enter now (``None``: may enter). A live run always blocks."""
    if any(run.status == FlowRunStatus.live for run in past):
        return "live run"
    if rules.once and past:
        return "once"
    if rules.max_entries is not None and len(past) >= rules.max_entries:
        return f"max_entries {rules.max_entries}"
    if rules.cooldown and past:
        last = max(run.entered_at for run in past)
        if now < last + parse_duration(rules.cooldown):
            return f"cooldown {rules.cooldown}"
    return None


def cell_matches(pattern: str, cell: str) -> bool:
    """``mature/*`` matches every activity of mature; ``*/churned`` every maturity."""
    pm, _, pa = pattern.partition("/")
    cm, _, ca = cell.partition("/")
    return pm in ("*", cm) and pa in ("*", ca)


def any_cell_matches(patterns: Iterable[str], cell: str) -> bool:
    return any(cell_matches(p, cell) for p in patterns)


def audience_refusal(audience: Audience, owner: OwnerView) -> str | None:
    """Why the owner is outside the flow's audience (``None``: inside)."""
    if owner.product_line not in audience.product_lines:
        return f"audience: product line {owner.product_line}"
    if audience.verified_only and owner.stage != "verified":
        return f"audience: not verified ({owner.stage})"
    if audience.cells is not None and not any_cell_matches(audience.cells, owner.cell):
        return f"audience: cell {owner.cell}"
    return None


def tags_of(attributes: Mapping[str, Any] | None) -> list[str]:
    tags = (attributes or {}).get(TAGS_KEY) or []
    return [str(t) for t in tags] if isinstance(tags, list) else []


def field_value(owner: OwnerView, name: str) -> Any:
    if name.startswith("attribute."):
        return (owner.attributes or {}).get(name.removeprefix("attribute."))
    if name.startswith("tag."):
        return name.removeprefix("tag.") in tags_of(owner.attributes)
    if name not in CONDITION_FIELDS:
        return owner.lookup(name) if owner.lookup is not None else None
    return {
        "owner.familiarity": owner.familiarity,
        "owner.product_line": owner.product_line,
        "owner.locale": owner.locale,
        "owner.stage": owner.stage,
        "cell": owner.cell,
        "maturity": owner.maturity,
        "activity": owner.activity,
    }[name]


def condition_holds(condition: Condition, owner: OwnerView) -> bool:
    value = field_value(owner, condition.field)
    if condition.is_set is not None:
        present = value not in (None, "", [], False)
        return present == condition.is_set
    if condition.field == "cell":
        wanted = [condition.equals] if condition.in_ is None else condition.in_
        return any_cell_matches([str(w) for w in wanted], str(value))
    if condition.in_ is not None:
        return value in condition.in_
    return bool(value == condition.equals)


def event_names(kind: str, data: Mapping[str, Any] | None) -> set[str]:
    """Names a recorded event answers to: its kind, and for a button its action and the
    action's prefixes (``winback.price`` answers to ``winback.price`` and ``winback``)."""
    names = {kind}
    action = (data or {}).get("action")
    if kind == "button" and isinstance(action, str) and action:
        parts = action.split(".")
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return names


def goal_reached(
    goals: Sequence[Goal], kind: str, data: Mapping[str, Any] | None, run_context: Mapping[str, Any]
) -> Goal | None:
    """The goal this event meets for a run, if any: the event's name, and every capability's
    goal filter (``registry.register_goal_filter``: growth's goal about a gift type, or a run
    about one gift, is met only by that gift's event)."""
    names = event_names(kind, data)
    data = data or {}
    for goal in goals:
        if goal.event in names and registry.goal_accepts(goal.options, data, run_context):
            return goal
    return None


def signed_offset(text: str) -> timedelta:
    """``-3d`` → minus three days (the DateTrigger keeps the sign in front)."""
    sign = -1 if text.startswith("-") else 1
    return sign * parse_duration(text.lstrip("+-"))
