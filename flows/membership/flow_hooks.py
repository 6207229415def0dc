"""Membership's words in the flow language (``flows.engine.registry``).

* the condition field ``member.level`` (``""`` for an owner not in the programme) for
  branches: ``{field: member.level, in: [gold, black]}``; ``member.points`` is the balance;
* the button answer ``membership.join`` enrols the owner as it is recorded (``points.join``:
  the account, the welcome points once, the level), so the invitation flow is joining the
  programme.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import object_session
from sqlmodel import Session, col

from flows.engine import registry
from flows.membership import points
from storage.membership_models import MemberAccount

JOIN_ACTION = "membership.join"


def _account_value(owner: Any, column: Any, empty: Any) -> Any:
    session = object_session(owner)
    if session is None or owner.id is None:
        return empty
    value = session.execute(select(column).where(col(MemberAccount.owner_id) == owner.id)).scalar()
    return empty if value is None else value


def member_level(owner: Any) -> str:
    return str(_account_value(owner, col(MemberAccount.level), ""))


def member_points(owner: Any) -> int:
    return int(_account_value(owner, col(MemberAccount.balance), 0))


def _on_answer(session: Session, owner_id: int, action: str, now: datetime) -> None:
    if action == JOIN_ACTION:
        points.join(session, owner_id, now)


def install() -> None:
    """Register membership's words (idempotent)."""
    registry.register_condition_field("member.level", member_level)
    registry.register_condition_field("member.points", member_points)
    registry.register_answer_hook(_on_answer, [JOIN_ACTION])
    registry.register_vocabulary("member_level", [name for name, _ in points.DEFAULT_LEVELS])
