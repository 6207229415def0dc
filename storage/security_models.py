"""Tables of the security layer (issue 11).

* ``verification_failure``: one failed attempt to prove who one is (a VIN ending or a phone
  contact that did not match). Counted per Telegram user and per owner record inside a
  sliding window, so a lockout survives restarts and ``/start``.
* ``audit_log``: security-relevant actions (failed verifications, lockouts, partner
  registration and deactivation, handovers, operator actions), append-only, read by
  ``autocircle audit``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, String
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class VerificationFailure(SQLModel, table=True):
    __tablename__ = "verification_failure"
    __table_args__ = (
        Index("ix_verification_failure_user_at", "user_id", "at"),
        Index("ix_verification_failure_owner_at", "owner_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    owner_id: int | None = Field(default=None, foreign_key="owner.id")
    via: str = Field(sa_column=Column(String(16), nullable=False))  # vin | phone
    reason: str = Field(sa_column=Column(String(32), nullable=False))  # not_found | ambiguous | taken | …
    at: datetime = Field(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    kind: str = Field(sa_column=Column(String(48), nullable=False, index=True))
    actor: str = Field(default="", sa_column=Column(String(64), nullable=False))  # "user:123", "cli", "system"
    subject: str = Field(default="", sa_column=Column(String(128), nullable=False))  # "owner:5", "partner:A001"
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
