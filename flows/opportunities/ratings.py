"""Completion, ratings both ways, and what completed tasks count for.

Either side marks an assigned task done (a compare-and-set move); the owner's capacity row
counts the completion. Each side rates the other once per completed task (1–5 stars and
reason codes); only the parties may rate, and a second rating by the same side is refused by
a unique constraint (not by a read first). Ratings of owners feed the ranking through the
owner's capacity row, where ``ranking.bayes_rating`` puts a prior in front of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from flows.delivery.outbox import Push, enqueue
from flows.opportunities import tasks
from flows.opportunities.demand import staff_chats
from flows.opportunities.errors import RatingError, TaskNotFoundError, TaskStateError
from flows.opportunities.matching import task_view
from flows.templating import Renderer
from storage.models import MessageClass, Owner
from storage.opportunity_models import Capacity, Task, TaskRating, TaskState

REASONS = ("great", "on_time", "late", "no_show", "damage", "rude", "unclear_task", "paid_late")
DEMAND, OWNER = "demand", "owner"


@dataclass(frozen=True)
class Party:
    """Who acts: the owner (``owner_id``) or a demand-side account's staff (``demand_id``)."""

    side: str
    owner_id: int | None = None
    demand_id: int | None = None

    @property
    def actor(self) -> str:
        return f"owner:{self.owner_id}" if self.side == OWNER else f"demand:{self.demand_id}"


def _party_task(session: Session, task_id: int, party: Party) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise TaskNotFoundError(f"no task {task_id}", key="task_not_found", task_id=task_id)
    if party.side == OWNER and task.assigned_owner_id != party.owner_id:
        raise TaskNotFoundError(f"no task {task_id}", key="task_not_found", task_id=task_id)
    if party.side == DEMAND and task.demand_id != party.demand_id:
        raise TaskNotFoundError(f"no task {task_id}", key="task_not_found", task_id=task_id)
    return task


def rate_buttons(task_id: int) -> list[list[dict[str, Any]]]:
    return [
        [{"text": "⭐" * n if n <= 1 else str(n) + "⭐", "callback_data": f"tkr:{task_id}:{n}"} for n in range(1, 6)]
    ]


def reason_buttons(renderer: Renderer, locale: str | None, task_id: int) -> list[list[dict[str, Any]]]:
    row = [
        {
            "text": renderer.render(f"opportunities/reason_{r}", locale, no_signature=True),
            "callback_data": f"tkq:{task_id}:{r}",
        }
        for r in REASONS
    ]
    return [row[i : i + 4] for i in range(0, len(row), 4)]


def mark_done(session: Session, renderer: Renderer, task_id: int, party: Party, now: datetime) -> Task:
    task = _party_task(session, task_id, party)
    if not tasks.move(
        session,
        task_id,
        TaskState.done,
        actor=party.actor,
        reason="marked done",
        now=now,
        sources=[TaskState.assigned.value, TaskState.in_progress.value],
        done_at=now,
    ):
        raise TaskStateError(f"task {task_id} is {task.state}", key="task_state", task_id=task_id, state=task.state)
    session.refresh(task)
    assert task.assigned_owner_id is not None
    session.exec(
        update(Capacity)
        .where(col(Capacity.owner_id) == task.assigned_owner_id)
        .values(completed=col(Capacity.completed) + 1, last_task_at=now)
        .execution_options(synchronize_session=False)
    )
    owner = session.get(Owner, task.assigned_owner_id)
    view = task_view(task)
    if owner is not None and owner.telegram_user_id:
        enqueue(
            session,
            Push(
                dedupe_key=f"task:{task_id}:rate:owner",
                chat_id=owner.telegram_user_id,
                owner_id=owner.id,
                message_class=MessageClass.transactional,
                text=renderer.render("opportunities/rate_prompt", owner.locale, task=view, side=OWNER),
                buttons=rate_buttons(task_id),
            ),
        )
    for chat in staff_chats(session, task.demand_id):
        enqueue(
            session,
            Push(
                dedupe_key=f"task:{task_id}:rate:demand:{chat}",
                chat_id=chat,
                message_class=MessageClass.transactional,
                text=renderer.render("opportunities/rate_prompt", None, task=view, side=DEMAND),
                buttons=rate_buttons(task_id),
            ),
        )
    return task


def rate(
    session: Session, task_id: int, party: Party, stars: int, now: datetime, reasons: tuple[str, ...] = ()
) -> TaskRating:
    if not 1 <= stars <= 5:
        raise RatingError("stars must be 1 to 5")
    bad = [r for r in reasons if r not in REASONS]
    if bad:
        raise RatingError(f"unknown reason {bad[0]!r}: use {', '.join(REASONS)}")
    task = _party_task(session, task_id, party)
    if task.state != TaskState.done.value or task.assigned_owner_id is None:
        raise RatingError("only a completed task can be rated")
    rating = TaskRating(
        task_id=task_id,
        side=party.side,
        rater=party.actor,
        owner_id=task.assigned_owner_id,
        demand_id=task.demand_id,
        stars=stars,
        reasons=list(dict.fromkeys(reasons)),
        at=now,
    )
    try:
        with session.begin_nested():
            session.add(rating)
            session.flush()
    except IntegrityError:
        raise RatingError("you have already rated this task") from None
    if party.side == DEMAND:
        session.exec(
            update(Capacity)
            .where(col(Capacity.owner_id) == task.assigned_owner_id)
            .values(rating_sum=col(Capacity.rating_sum) + stars, rating_count=col(Capacity.rating_count) + 1)
            .execution_options(synchronize_session=False)
        )
    return rating


def add_reason(session: Session, task_id: int, party: Party, reason: str) -> TaskRating:
    if reason not in REASONS:
        raise RatingError(f"unknown reason {reason!r}")
    _party_task(session, task_id, party)
    rating = session.exec(
        select(TaskRating).where(col(TaskRating.task_id) == task_id, col(TaskRating.side) == party.side)
    ).first()
    if rating is None:
        raise RatingError("rate with stars first")
    if reason not in rating.reasons:
        rating.reasons = [*rating.reasons, reason]
        session.add(rating)
    return rating


def demand_rating(session: Session, demand_id: int) -> tuple[float | None, int]:
    stars = list(
        session.exec(
            select(col(TaskRating.stars)).where(col(TaskRating.demand_id) == demand_id, col(TaskRating.side) == OWNER)
        )
    )
    return (round(sum(stars) / len(stars), 1) if stars else None, len(stars))
