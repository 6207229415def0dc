"""The commercial line's words in the flow language (``flows.engine.registry``), so the
commercial cells of the playbook run flows about work rather than the passenger copy.

* ``nearby_tasks: {days: 7, none: finish, no_vehicle: ask}`` counts the tasks posted in the
  last ``days`` days that this owner's vehicle could have taken (class, payload, volume,
  pickup within the owner's working radius: the same indexed H3 lookup as matching) and keeps
  the count in the run's context; templates see ``nearby`` (``count``, ``days``, ``base``).
  With no task the run goes to ``none``; an owner without a usable vehicle goes to
  ``no_vehicle`` (both optional: without them the run carries on).
* ``vehicle_known: {then: finish}`` goes to ``then`` when the owner's vehicle already has a
  class, payload and base (a new owner who set it meanwhile is not asked again).
* the event ``vehicle_set`` is recorded whenever ``/vehicle`` saves a vehicle
  (``capacity.set_vehicle``), so a flow can wait for it.
* button answers ``vehicle.<class>`` (the owner picks a class; the next message reads it as
  ``answer``) and ``work.offers`` / ``work.pause`` (send me offers again / pause offers), acted
  on as they are recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from flows.engine import registry
from flows.opportunities import geo
from flows.opportunities.capacity import VEHICLE_SET_EVENT
from flows.opportunities.matching import _box
from storage.opportunity_models import Capacity, Task, TaskState, VehicleClass

VEHICLE_SET = VEHICLE_SET_EVENT
VEHICLE_ACTION = "vehicle."
WORK_OFFERS = "work.offers"
WORK_PAUSE = "work.pause"
_COUNTED = (TaskState.cancelled.value,)  # every posted task counts but a withdrawn one


class NearbyTasksStep(BaseModel):
    """``nearby_tasks: {days: 7, none: finish, no_vehicle: ask}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    days: int = Field(default=7, ge=1, le=60)
    none: str | None = None
    no_vehicle: str | None = None


class VehicleKnownStep(BaseModel):
    """``vehicle_known: {then: finish}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    then: str


def usable(cap: Capacity | None) -> bool:
    return (
        cap is not None
        and cap.h3_cell is not None
        and cap.lat is not None
        and cap.lon is not None
        and (cap.payload_t > 0 or cap.volume_m3 > 0)
    )


def tasks_near(session: Session, cap: Capacity, since: datetime) -> int:
    """How many tasks posted since ``since`` this vehicle could have taken."""
    assert cap.h3_cell is not None and cap.lat is not None and cap.lon is not None
    radius = float(cap.radius_km)
    lat0, lat1, lon0, lon1 = _box(cap.lat, cap.lon, radius)
    rows = session.exec(
        select(col(Task.pickup_lat), col(Task.pickup_lon)).where(
            col(Task.pickup_h3).in_(geo.disk(cap.h3_cell, radius)),
            col(Task.vehicle_class) == cap.vehicle_class,
            col(Task.payload_t) <= cap.payload_t,
            col(Task.volume_m3) <= cap.volume_m3,
            col(Task.created_at) >= since,
            col(Task.pickup_lat).between(lat0, lat1),
            col(Task.pickup_lon).between(lon0, lon1),
            col(Task.state).not_in(_COUNTED),
        )
    )
    return sum(1 for lat, lon in rows if geo.distance_km(cap.lat, cap.lon, lat, lon) <= radius)


def _capacity(session: Session, owner_id: int) -> Capacity | None:
    return session.exec(select(Capacity).where(col(Capacity.owner_id) == owner_id)).first()


def _nearby_tasks(
    ctx: registry.StepContext, run: Any, spec: Any, owner: Any, step: Any, action: NearbyTasksStep
) -> str | None:
    cap = _capacity(ctx.session, owner.id)
    if not usable(cap):
        ctx.log(run, owner.id, spec.key, "skipped", "no vehicle with class, payload and base", step.id)
        return action.no_vehicle
    assert cap is not None
    count = tasks_near(ctx.session, cap, ctx.now - timedelta(days=action.days))
    run.context = {**run.context, "nearby": {"count": count, "days": action.days, "base": cap.base_text}}
    ctx.log(
        run,
        owner.id,
        spec.key,
        "counted",
        f"{count} fitting task(s) within {cap.radius_km} km in {action.days}d",
        step.id,
    )
    return action.none if count == 0 else None


def _vehicle_known(
    ctx: registry.StepContext, run: Any, spec: Any, owner: Any, step: Any, action: VehicleKnownStep
) -> str | None:
    if usable(_capacity(ctx.session, owner.id)):
        ctx.log(run, owner.id, spec.key, "skipped", "vehicle already set", step.id)
        return action.then
    return None


def _check_target(name: str) -> Iterator[tuple[str, str]]:
    if not name or not name.replace("_", "").isalnum():
        yield "then", f"{name!r} is not a step id"


def _check_nearby(action: NearbyTasksStep, _ctx: registry.CheckContext) -> Iterator[tuple[str, str]]:
    for field_name in ("none", "no_vehicle"):
        value = getattr(action, field_name)
        if value is not None and not value.replace("_", "").isalnum():
            yield field_name, f"{value!r} is not a step id"


def _check_known(action: VehicleKnownStep, _ctx: registry.CheckContext) -> Iterator[tuple[str, str]]:
    yield from _check_target(action.then)


def _nearby_vars(context: Mapping[str, Any], _locale: str) -> dict[str, Any]:
    return {"nearby": context.get("nearby") or {"count": 0, "days": 7, "base": ""}}


def _on_answer(session: Session, owner_id: int, action: str, now: datetime) -> None:
    """``work.offers`` turns offers back on (available, not opted out); ``work.pause``
    opts the owner out of offers until they send /available. A class choice is only read
    back by the flow's next message (``answer``)."""
    if action not in (WORK_OFFERS, WORK_PAUSE):
        return
    cap = _capacity(session, owner_id)
    if cap is None:
        return
    if action == WORK_OFFERS:
        cap.available, cap.busy_until, cap.opted_out = True, None, False
    else:
        cap.opted_out = True
    cap.updated_at = now
    session.add(cap)


def install() -> None:
    """Register the commercial line's words (idempotent)."""
    registry.register_step("nearby_tasks", NearbyTasksStep, _nearby_tasks, _check_nearby)
    registry.register_step("vehicle_known", VehicleKnownStep, _vehicle_known, _check_known)
    registry.register_render_vars(_nearby_vars)
    registry.register_events([VEHICLE_SET])
    registry.register_answer_hook(
        _on_answer, [VEHICLE_ACTION + c.value for c in VehicleClass] + [WORK_OFFERS, WORK_PAUSE]
    )
