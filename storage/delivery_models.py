"""Tables of the delivery engine beside the outbox (``storage.models.OutboxMessage``).

* ``owner_preference``: an owner's own send-time settings (time zone, a lower marketing cap,
  quiet hours) and when they last stopped/resumed marketing pushes (``Owner.opted_out`` is
  the flag itself).
* (what a push is about, ``topic`` such as ``gift_reminder`` and ``subject`` such as
  ``gift:12``, is two columns of the outbox row itself since migration 0016.)
* ``delivery_suppression``: topics/subjects cancelled as a whole (a campaign cancelled, a
  flow stopped): queued pushes with that topic and subject are skipped at send time.
* ``apscheduler_jobs``: APScheduler's persistent job store (one-off jobs such as scheduled
  campaigns), declared here so that Alembic owns it; the columns are APScheduler 3.x's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Unicode,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from storage.clock import utcnow
from storage.db import table_of
from storage.models import OutboxMessage

SCHEDULER_JOBS_TABLE = "apscheduler_jobs"


class OwnerPreference(SQLModel, table=True):
    """An owner's own delivery settings; a missing row or a NULL field means the default."""

    __tablename__ = "owner_preference"

    owner_id: int = Field(sa_column=Column(Integer, ForeignKey("owner.id", ondelete="CASCADE"), primary_key=True))
    timezone: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    marketing_cap_per_week: int | None = None  # may only lower the configured cap
    # local "HH:MM-HH:MM", e.g. "22:00-07:30"
    quiet_hours: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    stopped_at: datetime | None = None
    resumed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class DeliverySuppression(SQLModel, table=True):
    """A cancelled topic (``subject`` empty: all of it) or one subject of it."""

    __tablename__ = "delivery_suppression"
    __table_args__ = (UniqueConstraint("topic", "subject", name="uq_delivery_suppression_topic_subject"),)

    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(sa_column=Column(String(64), nullable=False))
    subject: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    reason: str = "cancelled"
    created_at: datetime = Field(default_factory=utcnow)


# APScheduler 3.x SQLAlchemyJobStore's table, same columns; the job store's own CREATE IF NOT
# EXISTS then finds it in place.
scheduler_jobs = Table(
    SCHEDULER_JOBS_TABLE,
    SQLModel.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)

# The delivery report reads the outbox by creation day. The index is declared here (not in
# storage.models, which other work owns) on the outbox table itself, so that Alembic's
# autogenerate sees it as part of the model.
Index("ix_outbox_created_at", table_of(OutboxMessage).c.created_at)
