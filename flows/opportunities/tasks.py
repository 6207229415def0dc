"""Tasks: posting with validation, the state machine, and its transition log.

open → offered → assigned → in_progress → done, or cancelled / expired. Every move is a
compare-and-set (``UPDATE … WHERE state IN (allowed)``), so two racing moves cannot both
happen, and every move that happened is a ``task_transition`` row (who, when, why).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from flows.opportunities import capacity as capacity_rules
from flows.opportunities import geo, places
from flows.opportunities.errors import InvalidValueError, TaskNotFoundError, TaskStateError
from storage.db import rowcount
from storage.opportunity_models import Task, TaskState, TaskTransition, VehicleClass

S = TaskState
ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    S.open: frozenset({S.offered, S.assigned, S.cancelled, S.expired}),
    S.offered: frozenset({S.assigned, S.cancelled, S.expired}),
    S.assigned: frozenset({S.in_progress, S.done, S.cancelled}),
    S.in_progress: frozenset({S.done, S.cancelled}),
    S.done: frozenset(),
    S.cancelled: frozenset(),
    S.expired: frozenset(),
}
LIVE = (S.open.value, S.offered.value)
MAX_NOTES = 500
MAX_WINDOW = timedelta(days=30)
MAX_AHEAD = timedelta(days=90)


def sources_of(target: TaskState) -> list[str]:
    return [s.value for s, targets in ALLOWED.items() if target in targets]


@dataclass(frozen=True)
class TaskDraft:
    pickup: str
    dropoff: str
    window_start: datetime
    window_end: datetime
    vehicle_class: str
    payload_t: float
    volume_m3: float = 0.0
    price_cents: int | None = None
    notes: str = ""


def check_window(start: datetime, end: datetime, now: datetime) -> None:
    if end <= start:
        raise InvalidValueError("the window ends before it starts", key="window_order")
    if end <= now:
        raise InvalidValueError("that time window is already in the past", key="window_past")
    if start > now + MAX_AHEAD:
        raise InvalidValueError(
            f"tasks can be posted at most {MAX_AHEAD.days} days ahead", key="window_too_far", days=MAX_AHEAD.days
        )
    if end - start > MAX_WINDOW:
        raise InvalidValueError(
            f"a window can be at most {MAX_WINDOW.days} days long", key="window_too_long", days=MAX_WINDOW.days
        )


def check_load(vehicle_class: str, payload_t: float, volume_m3: float) -> VehicleClass:
    cls = capacity_rules.parse_class(vehicle_class)
    if payload_t <= 0 and volume_m3 <= 0:
        raise InvalidValueError("say what is carried: tonnes and/or m³", key="load_missing")
    capacity_rules.check_payload(cls, payload_t, volume_m3)
    return cls


def parse_price(text: str) -> int | None:
    """ "quote"/"报价"/"-" → None (ask for quotes); "800", "¥1,200.50" → cents."""
    raw = unicodedata.normalize("NFKC", text or "").strip().lower().lstrip("¥￥").replace(",", "")
    if raw in ("", "-", "quote", "quotes", "ask", "报价", "询价", "面议"):
        return None
    try:
        value = float(raw.removesuffix("元").removesuffix("yuan").strip())
    except ValueError:
        raise InvalidValueError("price: a number in yuan, or 'quote' to ask for quotes", key="price_format") from None
    if not 0 < value <= 1_000_000:
        raise InvalidValueError("price must be between 0 and 1,000,000 yuan", key="price_range")
    return round(value * 100)


def post_task(session: Session, demand_id: int, draft: TaskDraft, *, actor: str, now: datetime) -> Task:
    """Validate and store a task in state ``open`` (the scheduler sends the first wave)."""
    pickup, dropoff = places.resolve(draft.pickup), places.resolve(draft.dropoff)
    check_window(draft.window_start, draft.window_end, now)
    cls = check_load(draft.vehicle_class, draft.payload_t, draft.volume_m3)
    notes = " ".join(unicodedata.normalize("NFKC", draft.notes or "").split())
    if len(notes) > MAX_NOTES:
        raise InvalidValueError(f"notes are longer than {MAX_NOTES} characters", key="notes_too_long", limit=MAX_NOTES)
    task = Task(
        demand_id=demand_id,
        posted_by=actor[:64],
        pickup_text=draft.pickup.strip()[:40],
        pickup_adcode=pickup.adcode,
        pickup_lat=pickup.lat,
        pickup_lon=pickup.lon,
        pickup_h3=geo.cell_of(pickup.lat, pickup.lon),
        dropoff_text=draft.dropoff.strip()[:40],
        dropoff_adcode=dropoff.adcode,
        dropoff_lat=dropoff.lat,
        dropoff_lon=dropoff.lon,
        window_start=draft.window_start,
        window_end=draft.window_end,
        vehicle_class=cls.value,
        payload_t=draft.payload_t,
        volume_m3=draft.volume_m3,
        price_cents=draft.price_cents,
        notes=notes,
        state=S.open.value,
        created_at=now,
    )
    session.add(task)
    session.flush()
    assert task.id is not None
    log(session, task.id, "", S.open, actor, "posted", now)
    return task


def log(session: Session, task_id: int, source: str, target: TaskState, actor: str, reason: str, now: datetime) -> None:
    session.add(
        TaskTransition(
            task_id=task_id, from_state=source, to_state=target.value, at=now, actor=actor[:64], reason=reason[:200]
        )
    )


def move(
    session: Session,
    task_id: int,
    target: TaskState,
    *,
    actor: str,
    reason: str,
    now: datetime,
    sources: list[str] | None = None,
    **values: object,
) -> bool:
    """Compare-and-set the task's state; True when this call made the move (and logged it)."""
    allowed = sources if sources is not None else sources_of(target)
    before = session.exec(select(col(Task.state)).where(col(Task.id) == task_id)).first()
    result = session.exec(
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state).in_(allowed))
        .values(state=target.value, **values)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False
    log(session, task_id, before or "", target, actor, reason, now)
    task = session.get(Task, task_id)
    if task is not None:
        session.refresh(task)
    return True


def get_task(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise TaskNotFoundError(f"no task {task_id}", key="task_not_found", task_id=task_id)
    return task


def tasks_of_demand(session: Session, demand_id: int, limit: int = 20) -> list[Task]:
    return list(
        session.exec(select(Task).where(col(Task.demand_id) == demand_id).order_by(col(Task.id).desc()).limit(limit))
    )


def tasks_of_owner(session: Session, owner_id: int, limit: int = 20) -> list[Task]:
    return list(
        session.exec(
            select(Task).where(col(Task.assigned_owner_id) == owner_id).order_by(col(Task.id).desc()).limit(limit)
        )
    )


def transitions(session: Session, task_id: int) -> list[TaskTransition]:
    return list(
        session.exec(
            select(TaskTransition).where(col(TaskTransition.task_id) == task_id).order_by(col(TaskTransition.id))
        )
    )


def cancel(session: Session, task_id: int, demand_id: int, *, actor: str, now: datetime) -> None:
    task = get_task(session, task_id)
    if task.demand_id != demand_id:
        raise TaskNotFoundError(f"no task {task_id}", key="task_not_found", task_id=task_id)
    if not move(session, task_id, S.cancelled, actor=actor, reason="cancelled by the demand side", now=now):
        raise TaskStateError(
            f"task {task_id} is {task.state} and cannot be cancelled",
            key="task_state",
            task_id=task_id,
            state=task.state,
        )


def start(session: Session, task_id: int, owner_id: int, *, now: datetime) -> None:
    task = get_task(session, task_id)
    if task.assigned_owner_id != owner_id:
        raise TaskNotFoundError(f"no task {task_id}", key="task_not_found", task_id=task_id)
    if not move(session, task_id, S.in_progress, actor=f"owner:{owner_id}", reason="started", now=now):
        raise TaskStateError(f"task {task_id} is {task.state}", key="task_state", task_id=task_id, state=task.state)


def parse_window(text: str, now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """ "2026-12-05 09:00-18:00", "2026-12-05 09:00 - 2026-12-06 12:00", "2026-12-05"
    (08:00–18:00) in the dealers' calendar → aware UTC start and end."""
    import re
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    raw = " ".join(unicodedata.normalize("NFKC", text or "").replace("到", "-").replace("~", "-").split())
    day = r"(\d{4}-\d{1,2}-\d{1,2})"
    hm = r"(\d{1,2}:\d{2})"

    def at(d: str, t: str) -> datetime:
        try:
            return datetime.strptime(f"{d} {t}", "%Y-%m-%d %H:%M").replace(tzinfo=zone).astimezone(now.tzinfo)
        except ValueError:
            raise InvalidValueError(
                f"{d} {t} is not a date and time", key="window_bad_time", value=f"{d} {t}"
            ) from None

    if m := re.fullmatch(rf"{day} {hm} ?- ?{day} {hm}", raw):
        return at(m.group(1), m.group(2)), at(m.group(3), m.group(4))
    if m := re.fullmatch(rf"{day} {hm} ?- ?{hm}", raw):
        return at(m.group(1), m.group(2)), at(m.group(1), m.group(3))
    if m := re.fullmatch(day, raw):
        return at(m.group(1), "08:00"), at(m.group(1), "18:00")
    raise InvalidValueError("write the window as 2026-12-05 09:00-18:00 (or just a date)", key="window_format")
