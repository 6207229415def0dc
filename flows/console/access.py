"""Signing in to the console without passwords (issue 15, item 2).

An operator sends ``/console``; ``issue_link`` makes a random token, stores only its SHA-256
and hands the token back once, for a link that works ``minutes`` (10) and only once.
``redeem_link`` spends it with one compare-and-set UPDATE (``used_at IS NULL AND expires_at >
now``), so two browsers racing with the same link get one session between them. A session is a
second random token (the cookie), stored hashed, with its own CSRF token, an expiry and a
``revoked_at``. Failed sign-ins are rows per client address; ``locked_out`` refuses further
tries inside the window before any token is looked at. Every sign-in and revocation is audited.

Services take a Session and plain values and never commit (the caller owns the unit of work).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from flows.errors import AutoCircleError
from storage.audit import AuditKind, record_audit
from storage.console_models import ConsoleAttempt, ConsoleLink, ConsoleSession
from storage.db import rowcount

_DOMAIN = b"autocircle-console:"


class SignInError(AutoCircleError):
    """The link is unknown, used or expired (one answer for all three)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(_DOMAIN + token.encode("utf-8")).hexdigest()


def issue_link(session: Session, user_id: int, now: datetime, minutes: int = 10) -> str:
    """A fresh one-time sign-in token for ``user_id`` (shown once, stored hashed)."""
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleLink(
            token_hash=hash_token(token), user_id=user_id, created_at=now, expires_at=now + timedelta(minutes=minutes)
        )
    )
    record_audit(
        session,
        AuditKind.operator_action,
        actor=f"user:{user_id}",
        subject="console",
        at=now,
        action="console_link_issued",
    )
    session.flush()
    return token


@dataclass(frozen=True)
class NewSession:
    cookie: str  # the raw cookie value, never stored
    user_id: int
    csrf_token: str
    expires_at: datetime


def locked_out(session: Session, client: str, now: datetime, limit: int, window_minutes: int) -> bool:
    """Too many failed sign-ins from this client address inside the window."""
    count = session.exec(
        select(func.count())
        .select_from(ConsoleAttempt)
        .where(
            col(ConsoleAttempt.client) == client[:64], col(ConsoleAttempt.at) > now - timedelta(minutes=window_minutes)
        )
    ).one()
    return int(count) >= limit


def record_failure(session: Session, client: str, now: datetime) -> None:
    session.add(ConsoleAttempt(client=client[:64], at=now))
    session.flush()


def redeem_link(session: Session, token: str, now: datetime, *, client: str, session_hours: float) -> NewSession:
    """Spend a sign-in token once and open a session; ``SignInError`` (and a recorded failure)
    for an unknown, used or expired one."""
    digest = hash_token(token or "")
    spent = rowcount(
        session.execute(
            update(ConsoleLink)
            .where(
                col(ConsoleLink.token_hash) == digest,
                col(ConsoleLink.used_at).is_(None),
                col(ConsoleLink.expires_at) > now,
            )
            .values(used_at=now)
        )
    )
    if spent != 1:
        record_failure(session, client, now)
        raise SignInError("this sign-in link is not valid any more")
    user_id = session.exec(select(col(ConsoleLink.user_id)).where(col(ConsoleLink.token_hash) == digest)).one()
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=session_hours)
    session.add(
        ConsoleSession(
            token_hash=hash_token(cookie),
            user_id=user_id,
            csrf_token=csrf,
            client=client[:64],
            created_at=now,
            expires_at=expires,
        )
    )
    record_audit(
        session,
        AuditKind.operator_action,
        actor=f"user:{user_id}",
        subject="console",
        at=now,
        action="console_signed_in",
        client=client[:64],
    )
    session.flush()
    return NewSession(cookie=cookie, user_id=int(user_id), csrf_token=csrf, expires_at=expires)


def current(session: Session, cookie: str | None, now: datetime) -> ConsoleSession | None:
    """The live session a cookie names (not expired, not revoked), else ``None``."""
    if not cookie:
        return None
    row = session.exec(select(ConsoleSession).where(col(ConsoleSession.token_hash) == hash_token(cookie))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    return row


def sessions_of(session: Session, user_id: int, now: datetime) -> list[ConsoleSession]:
    """A user's live sessions, newest first."""
    return list(
        session.exec(
            select(ConsoleSession)
            .where(
                col(ConsoleSession.user_id) == user_id,
                col(ConsoleSession.revoked_at).is_(None),
                col(ConsoleSession.expires_at) > now,
            )
            .order_by(col(ConsoleSession.id).desc())
        ).all()
    )


def revoke(session: Session, user_id: int, now: datetime, session_id: int | None = None) -> int:
    """Revoke one of the user's sessions (``session_id``) or all of them; how many ended."""
    query = update(ConsoleSession).where(
        col(ConsoleSession.user_id) == user_id, col(ConsoleSession.revoked_at).is_(None)
    )
    if session_id is not None:
        query = query.where(col(ConsoleSession.id) == session_id)
    ended = rowcount(session.execute(query.values(revoked_at=now))) or 0
    record_audit(
        session,
        AuditKind.operator_action,
        actor=f"user:{user_id}",
        subject="console",
        at=now,
        action="console_revoked",
        sessions=ended,
    )
    session.flush()
    return int(ended)
