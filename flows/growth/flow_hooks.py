"""Growth's words in the flow language, registered with the engine (``flows.engine.registry``).

``grant_gift: {type: newcomer}`` grants a gift and keeps it in the run's context; the date
trigger ``gift.expires_at`` enters owners whose unredeemed gift expires within the offset, and
a send from such a run is about that gift (redeeming it drops the reminder); templates see
``gift`` with its value in the message's language; ``gift_type`` narrows a goal or a date
trigger to one gift type, and a run about one gift meets its goal only by that gift's event;
win-back's survey answers are acted on as they are recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from flows.engine import registry
from flows.errors import AutoCircleError
from flows.growth import gifts, winback
from flows.growth.gift_types import DEFAULT_GIFT_TYPES


class GrantGiftStep(BaseModel):
    """``grant_gift: {type: newcomer}``: a gift type from the configured catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    gift_type: str = Field(alias="type")


def gift_context(grant: Any) -> dict[str, Any]:
    """A grant as a run keeps it in its context (JSON-ready) and templates see it."""
    expires = getattr(grant, "expires_at", None)
    return {
        "id": getattr(grant, "id", None),
        "code": str(getattr(grant, "code", "")),
        "value": str(getattr(grant, "value", "")),
        "type": getattr(grant, "gift_type", None),
        "expires_at": expires.isoformat() if expires else None,
        "expires_on": f"{expires:%Y-%m-%d}" if expires else "",
    }


def _grant_gift(ctx: registry.StepContext, run: Any, spec: Any, owner: Any, step: Any, action: GrantGiftStep) -> None:
    try:
        granted = gifts.grant(ctx.session, owner.id, action.gift_type, ctx.now)
    except AutoCircleError as exc:
        ctx.log(run, owner.id, spec.key, "skipped", f"gift {action.gift_type}: {exc}", step.id)
        return None
    gift = {**gift_context(granted), "type": action.gift_type}
    run.context = {**run.context, "gift": gift}
    ctx.log(run, owner.id, spec.key, "granted", f"gift {action.gift_type} {gift['code']}", step.id)
    return None


def _check_gift(action: GrantGiftStep, _ctx: registry.CheckContext) -> Iterator[tuple[str, str]]:
    if action.gift_type not in DEFAULT_GIFT_TYPES:
        known = ", ".join(sorted(DEFAULT_GIFT_TYPES))
        yield "type", f"unknown gift type {action.gift_type!r}; known: {known}"


def _expiring(session: Session, ahead: timedelta, now: datetime, trigger: Any) -> Iterator[registry.DateEntry]:
    for owner_id, grant in gifts.expiring(session, ahead, now):
        kind = getattr(grant, "gift_type", None)
        wanted = trigger.option("gift_type")
        if wanted and kind not in (None, wanted):
            continue
        yield registry.DateEntry(owner_id, f"date:gift:{grant.code}", {"gift": gift_context(grant)})


def _gift_topic(context: Mapping[str, Any]) -> dict[str, str] | None:
    gift_id = (context.get("gift") or {}).get("id")
    return {"topic": gifts.REMINDER_TOPIC, "subject": f"gift:{gift_id}"} if gift_id else None


def _gift_vars(context: Mapping[str, Any], locale: str) -> dict[str, Any]:
    gift = context.get("gift")
    if gift and gift.get("type"):
        gift = {**gift, "value": gifts.value_of(gift["type"], locale)}  # in the message's language
    return {"gift": gift}


def _gift_goal(goal: Mapping[str, str], data: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """A goal about a gift type is met only by that type's event; a run about one gift (its
    context's ``gift``) only by that gift's event (its grant id or code)."""
    wanted = goal.get("gift_type")
    if wanted and data.get("gift_type") not in (None, wanted):
        return False
    gift = context.get("gift") or {}
    if gift.get("id") and data.get("grant_id") and data.get("grant_id") != gift.get("id"):
        return False
    return not (gift.get("code") and data.get("code") and data.get("code") != gift.get("code"))


def _on_answer(session: Session, owner_id: int, action: str, now: datetime) -> None:
    winback.on_answer(session, owner_id, action, now)


def install() -> None:
    """Register growth's words (idempotent: a second call replaces the same entries)."""
    registry.register_step("grant_gift", GrantGiftStep, _grant_gift, _check_gift)
    registry.register_date_source("gift.expires_at", _expiring, _gift_topic)
    registry.register_date_fields(["gift_type"])
    registry.register_goal_filter(_gift_goal, ["gift_type"])
    registry.register_render_vars(_gift_vars)
    registry.register_vocabulary("gift_type", DEFAULT_GIFT_TYPES)
    registry.register_answer_hook(_on_answer, [winback.ACTION_PREFIX + r for r in winback.REASONS])
