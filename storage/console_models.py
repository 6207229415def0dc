"""Tables of the web console's sign-in (issue 15).

* ``console_link``: a one-time sign-in link an operator asked for with ``/console``. Only the
  SHA-256 of its random token is stored, so a database dump opens nothing; it works once
  (``used_at``) and only until ``expires_at`` (10 minutes by default).
* ``console_session``: a browser signed in through such a link. The cookie carries a random
  token whose hash is stored here; a session expires and can be revoked (``revoked_at``). The
  CSRF token every form carries belongs to the session.
* ``console_attempt``: a failed sign-in (unknown, used or expired token) per client address,
  so the sign-in endpoint refuses after a few failures in a window.
* ``console_cell_count``, ``console_funnel_count`` and ``console_count_refresh``: the counts
  behind the operator's overview and matrix (issue 15, item 7), refreshed set-based by a
  scheduled job (``flows.console.counts``) so that a page reads a few hundred rows, not every
  owner; the refresh row says as of when.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String
from sqlmodel import Field, SQLModel

from storage.clock import utcnow
from storage.db import table_of
from storage.models import Owner


class ConsoleLink(SQLModel, table=True):
    __tablename__ = "console_link"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    user_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class ConsoleSession(SQLModel, table=True):
    __tablename__ = "console_session"
    __table_args__ = (Index("ix_console_session_user", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    user_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    csrf_token: str = Field(sa_column=Column(String(64), nullable=False))
    client: str = Field(default="", sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None


class ConsoleAttempt(SQLModel, table=True):
    __tablename__ = "console_attempt"
    __table_args__ = (Index("ix_console_attempt_client_at", "client", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    client: str = Field(sa_column=Column(String(64), nullable=False))
    at: datetime = Field(default_factory=utcnow)


# --- the counts behind the overview and the matrix (issue 15, item 7) ----------------------


class ConsoleCellCount(SQLModel, table=True):
    """Owners per (product line, stored cell, online or not), with the stage-rate parts the
    overview needs: how many of them have an approved referral and a service visit."""

    __tablename__ = "console_cell_count"

    id: int | None = Field(default=None, primary_key=True)
    product_line: str = Field(sa_column=Column(String(16), nullable=False))
    maturity: str = Field(sa_column=Column(String(16), nullable=False))
    activity: str = Field(sa_column=Column(String(16), nullable=False))
    online: bool = Field(sa_column=Column(Boolean, nullable=False))
    owners: int = Field(sa_column=Column(Integer, nullable=False))
    referring: int = Field(sa_column=Column(Integer, nullable=False))
    revenue: int = Field(sa_column=Column(Integer, nullable=False))


class ConsoleFunnelCount(SQLModel, table=True):
    """The funnel per partner (``partner_id`` NULL: the unassigned owners): owners who reached
    each stage, and the friends their approved referrals brought. The partner's dealer is read
    from the partner when the page is drawn."""

    __tablename__ = "console_funnel_count"

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    imported: int = Field(sa_column=Column(Integer, nullable=False))
    invited: int = Field(sa_column=Column(Integer, nullable=False))
    online: int = Field(sa_column=Column(Integer, nullable=False))
    verified: int = Field(sa_column=Column(Integer, nullable=False))
    acquired: int = Field(sa_column=Column(Integer, nullable=False))


class ConsoleCountRefresh(SQLModel, table=True):
    """One row: when the counts were last refreshed and how long it took (none: never)."""

    __tablename__ = "console_count_refresh"

    id: int = Field(default=1, primary_key=True)
    at: datetime
    seconds: float = 0.0


# --- covering indexes for the console's aggregates (issue 15, item 7) -----------------------
# The overview and the matrix are GROUP BYs over every owner. With these, SQLite and
# PostgreSQL read a narrow index instead of the wide owner rows (attributes JSON and all):
# ``ix_owner_cell`` carries what the matrix, a cell's count and the stage rates read;
# ``ix_owner_funnel`` what the funnel per partner reads. Declared here (the console's module)
# on the owner table; created by migration 0014.

_owner = table_of(Owner)
IX_OWNER_CELL = Index(
    "ix_owner_cell",
    _owner.c.maturity,
    _owner.c.activity,
    _owner.c.stage,
    _owner.c.online_at,
    _owner.c.verified_at,
    _owner.c.product_line,
    _owner.c.referral_count,
    _owner.c.service_visits,
)
IX_OWNER_FUNNEL = Index(
    "ix_owner_funnel",
    _owner.c.partner_id,
    _owner.c.stage,
    _owner.c.invited_at,
    _owner.c.online_at,
    _owner.c.verified_at,
)
