"""Circle posts (``flows.growth.circle_posts``): messages a partner or operator schedules to a circle.

A post is one-off (``kind = once``: ``next_at`` is its time) or weekly (``weekday`` 0 = Monday
and ``local_time`` "HH:MM" in the app's timezone; ``next_at`` is the next occurrence in UTC).
The text is the author's own words, stored raw and escaped when rendered. ``active`` is false
once a one-off post went out or when the author cancels.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class PostKind:
    once = "once"
    weekly = "weekly"


class CirclePost(SQLModel, table=True):
    __tablename__ = "circle_post"
    __table_args__ = (Index("ix_circle_post_due", "active", "next_at"),)

    id: int | None = Field(default=None, primary_key=True)
    circle_id: int = Field(
        sa_column=Column(Integer, ForeignKey("circle.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    # Exactly one author: the partner who runs the circle, or an operator (by Telegram id).
    author_partner_id: int | None = Field(default=None, foreign_key="partner.id")
    author_operator_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    text: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(default=PostKind.once, sa_column=Column(String(8), nullable=False))
    weekday: int | None = None
    local_time: str | None = Field(default=None, sa_column=Column(String(5), nullable=True))
    next_at: datetime | None = None
    active: bool = True
    sent_count: int = 0
    last_planned_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
