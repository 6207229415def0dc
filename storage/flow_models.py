"""Tables of the flow runner (``flows.engine.runner``): runs, their why-log, and the pass cursors.

* ``flow_run``: one owner in one flow. It keeps the flow's YAML text as it was when the run
  started (``flow_source``/``flow_version``), so an edited file leaves live runs on their
  version. ``next_at`` is when the runner looks at it again (due work is
  ``status = 'live' and next_at <= now``). A partial unique index allows at most one live run
  per (owner, flow), and ``entry_key`` (the event, transition, gift or schedule slot that
  caused the entry) makes entering idempotent: a pass run twice enters once.
* ``flow_run_log``: why an owner got or did not get a step: entered, skipped by an entry rule
  or the audience, a step queued/deferred/suppressed as the outbox planned it, goal reached,
  exit. ``autocircle flows runs`` prints it.
* ``flow_cursor``: how far the runner has read the event log and the segment transitions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class FlowRunStatus:
    live = "live"
    done = "done"
    exited = "exited"
    goal_reached = "goal_reached"


class FlowRun(SQLModel, table=True):
    __tablename__ = "flow_run"
    __table_args__ = (
        UniqueConstraint("owner_id", "flow_key", "entry_key", name="uq_flow_run_entry"),
        Index("ix_flow_run_owner_flow", "owner_id", "flow_key"),
        Index("ix_flow_run_due", "status", "next_at"),
        Index(
            "uq_flow_run_live",
            "owner_id",
            "flow_key",
            unique=True,
            sqlite_where=text("status = 'live'"),
            postgresql_where=text("status = 'live'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id")
    flow_key: str = Field(sa_column=Column(String(64), nullable=False))
    flow_version: str = Field(sa_column=Column(String(32), nullable=False))
    flow_source: str = Field(sa_column=Column(Text, nullable=False))
    entry_key: str | None = Field(default=None, sa_column=Column(String(120), nullable=True))
    step_index: int = 0
    step_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    status: str = Field(default=FlowRunStatus.live, sa_column=Column(String(16), nullable=False))
    next_at: datetime | None = Field(default=None, index=True)
    # what the run carries between steps: the gift it granted or reminds of, the event it
    # waits for, survey answers; plain JSON values only
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    rev: int = 0  # bumped by whichever pass claims the run (a second scheduler backs off)
    entered_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    end_reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


class FlowRunLog(SQLModel, table=True):
    __tablename__ = "flow_run_log"
    __table_args__ = (
        Index("ix_flow_run_log_owner_at", "owner_id", "at"),
        Index("ix_flow_run_log_entry", "flow_key", "owner_id", "entry_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="flow_run.id", index=True)
    owner_id: int = Field(foreign_key="owner.id")
    flow_key: str = Field(sa_column=Column(String(64), nullable=False))
    step_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    entry_key: str | None = Field(default=None, sa_column=Column(String(120), nullable=True))
    # entered | skipped | queued | deferred | suppressed | goal_reached | exited | done | error
    outcome: str = Field(sa_column=Column(String(24), nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    at: datetime = Field(default_factory=utcnow)


class FlowCursor(SQLModel, table=True):
    """``events``/``transitions``: the last id read; ``schedule:<flow>``: the last slot."""

    __tablename__ = "flow_cursor"

    name: str = Field(sa_column=Column(String(80), primary_key=True))
    position: int = 0
    at: datetime | None = None
