"""Outbox queries: claim due rows under a lease, record outcomes in batches, and the reads
the send-time rules need (who a chat is, their recent marketing pushes, topics, suppressions).

Claiming is one statement that flips due rows to ``sending`` with a lease and returns them:
on PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED`` (several senders never take
the same row); on SQLite the single ``UPDATE ... RETURNING`` holds the write lock. A crash
leaves rows ``sending``; when their lease expires they are claimed again.

Outcomes other than ``sent`` only apply to rows still ``sending``: a sender whose lease ran
out must not put back a row another sender has since delivered.

Partner notices (issue 11, items 2 and 4): a row addressed to a partner's private chat is
sent only while that partner is active and that chat is still the partner's account
(``partner_vetoes``, run by the send-time screen); deactivation, a re-issued registration
code and a handover also settle the queued rows at once (``skip_partner_notices``,
``readdress_partner_notices``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from typing import Any, NamedTuple

from sqlalchemy import String, Table, and_, any_, bindparam, exists, func, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.expression import Exists
from sqlmodel import Session, col

from storage.db import rowcount, table_of
from storage.delivery_models import DeliverySuppression, OwnerPreference
from storage.models import MessageClass, OutboxMessage, OutboxStatus, Owner, Partner

_T = table_of(OutboxMessage)
PENDING = OutboxStatus.pending.value
SENDING = OutboxStatus.sending.value
SENT = OutboxStatus.sent.value
FAILED = OutboxStatus.failed.value
SKIPPED = OutboxStatus.skipped.value
_IN_CHUNK = 500  # ids per IN (...) list
_PG_CHUNK = 20_000  # values per among() (= ANY(:array) on PostgreSQL, json_each on SQLite)


@dataclass(frozen=True)
class ClaimedMessage:
    id: int
    chat_id: int
    owner_id: int | None
    message_class: str
    priority: int
    text: str
    parse_mode: str | None
    buttons: list[Any] | None
    attempts: int
    not_before: datetime
    expires_at: datetime | None
    created_at: datetime
    partner_id: int | None = None
    topic: str | None = None  # what it is about, for the send-time suppression checks
    subject: str | None = None


_CLAIM_COLUMNS = (
    _T.c.id,
    _T.c.chat_id,
    _T.c.owner_id,
    _T.c.message_class,
    _T.c.priority,
    _T.c.text,
    _T.c.parse_mode,
    _T.c.buttons,
    _T.c.attempts,
    _T.c.not_before,
    _T.c.expires_at,
    _T.c.created_at,
    _T.c.partner_id,
    _T.c.topic,
    _T.c.subject,
)


def claim_due(
    engine: Engine,
    now: datetime,
    limit: int,
    lease: timedelta,
    *,
    exclude_chats: Collection[int] = (),
) -> list[ClaimedMessage]:
    """Lease up to ``limit`` due rows (priority, then age), skipping ``exclude_chats``."""
    if limit <= 0:
        return []
    due = or_(
        and_(_T.c.status == PENDING, _T.c.not_before <= now),
        and_(_T.c.status == SENDING, _T.c.lease_until < now),
    )
    pick = select(_T.c.id).where(due)
    if exclude_chats:
        pick = pick.where(_T.c.chat_id.not_in(list(exclude_chats)))
    pick = pick.order_by(_T.c.priority, _T.c.not_before, _T.c.id).limit(limit)
    values = dict(status=SENDING, lease_until=now + lease, attempts=_T.c.attempts + 1, updated_at=now)
    if engine.dialect.name == "postgresql":
        picked = pick.with_for_update(skip_locked=True).cte("picked")  # a locking CTE runs once
        stmt = update(_T).where(_T.c.id == picked.c.id)
    else:
        stmt = update(_T).where(_T.c.id.in_(pick.scalar_subquery()))
    stmt = stmt.values(**values).returning(*_CLAIM_COLUMNS)
    with engine.begin() as conn:
        rows = conn.execute(stmt).all()
    claimed = [ClaimedMessage(**row._mapping) for row in rows]
    claimed.sort(key=lambda m: (m.priority, m.not_before, m.id))
    return claimed


# --- outcomes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed row. ``pending`` puts it back for ``not_before``."""

    id: int
    status: str
    at: datetime
    reason: str | None = None
    telegram_message_id: int | None = None
    not_before: datetime | None = None
    refund_attempt: bool = False  # a retry that should not count (429, deferral by rules)
    block_chat: int | None = None  # 403: this chat is unreachable, skip its queued pushes


def record_outcomes(engine: Engine, outcomes: Sequence[Outcome]) -> None:
    """Store a batch of outcomes in one transaction (executemany per kind)."""
    if not outcomes:
        return
    with engine.begin() as conn:
        _record(conn, outcomes)


def _record(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    sent = [o for o in outcomes if o.status == SENT]
    final = [o for o in outcomes if o.status in (FAILED, SKIPPED)]
    retry = [o for o in outcomes if o.status == PENDING]
    if sent:
        conn.execute(
            update(_T)
            .where(_T.c.id == bindparam("b_id"))
            .values(
                status=SENT,
                telegram_message_id=bindparam("b_tg"),
                sent_at=bindparam("b_at"),
                updated_at=bindparam("b_at"),
                lease_until=None,
                reason=None,
            ),
            [{"b_id": o.id, "b_tg": o.telegram_message_id, "b_at": o.at} for o in sent],
        )
    if final:
        conn.execute(
            update(_T)
            .where(_T.c.id == bindparam("b_id"), _T.c.status == SENDING)
            .values(
                status=bindparam("b_status"),
                reason=bindparam("b_reason"),
                updated_at=bindparam("b_at"),
                lease_until=None,
            ),
            [{"b_id": o.id, "b_status": o.status, "b_reason": (o.reason or "")[:500], "b_at": o.at} for o in final],
        )
    if retry:
        conn.execute(
            update(_T)
            .where(_T.c.id == bindparam("b_id"), _T.c.status == SENDING)
            .values(
                status=PENDING,
                not_before=bindparam("b_nb"),
                reason=bindparam("b_reason"),
                updated_at=bindparam("b_at"),
                lease_until=None,
                attempts=_T.c.attempts - bindparam("b_refund"),
            ),
            [
                {
                    "b_id": o.id,
                    "b_nb": o.not_before or o.at,
                    "b_reason": o.reason,
                    "b_at": o.at,
                    "b_refund": 1 if o.refund_attempt else 0,
                }
                for o in retry
            ],
        )
    for chat_id in {o.block_chat for o in outcomes if o.block_chat is not None}:
        _chat_unreachable(conn, chat_id, "blocked", max(o.at for o in outcomes))


def _chat_unreachable(conn: Connection, chat_id: int, reason: str, now: datetime) -> int:
    conn.execute(
        update(table_of(Owner))
        .where(table_of(Owner).c.telegram_user_id == chat_id)
        .values(unreachable=True, updated_at=now)
    )
    result = conn.execute(
        update(_T)
        .where(_T.c.chat_id == chat_id, _T.c.status == PENDING)
        .values(status=SKIPPED, reason=reason, updated_at=now)
    )
    return rowcount(result) or 0


def expire_pending(engine: Engine, now: datetime) -> int:
    """Skip pending rows whose ``expires_at`` has passed (they could never be sent)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(_T)
            .where(_T.c.status == PENDING, _T.c.expires_at <= now)
            .values(status=SKIPPED, reason="expired", updated_at=now)
        )
        return rowcount(result) or 0


# --- partner notices -------------------------------------------------------------------------

PARTNER_INACTIVE = "partner_inactive"
PARTNER_ACCOUNT_CHANGED = "partner_account_changed"
PARTNER_NOT_REGISTERED = "partner_not_registered"
_O = table_of(Owner)


def _owner_addressed() -> Exists:
    """The row goes to the owner it is about (their own private chat), not to a partner."""
    return exists().where(_O.c.id == _T.c.owner_id, _O.c.telegram_user_id == _T.c.chat_id)


def skip_partner_notices(session: Session, partner_id: int, chat_id: int, reason: str, now: datetime) -> int:
    """Skip the queued rows addressed to ``chat_id`` as partner ``partner_id``'s chat (the
    partner was deactivated, or this account was unlinked). Rows to owners stay."""
    result = session.execute(
        update(_T)
        .where(
            _T.c.status == PENDING,
            _T.c.chat_id == chat_id,
            or_(_T.c.partner_id == partner_id, _T.c.partner_id.is_(None)),
            ~_owner_addressed(),
        )
        .values(status=SKIPPED, reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) or 0


@dataclass(frozen=True)
class Readdressed:
    moved: int  # partner notices now addressed to the new partner's chat
    skipped: int  # partner notices dropped: the new partner has no Telegram account yet
    retagged: int  # other queued rows (to owners, circles) now counted for the new partner


def readdress_partner_notices(
    session: Session,
    from_id: int,
    from_chat: int | None,
    to_id: int,
    to_chat: int | None,
    now: datetime,
) -> Readdressed:
    """Handover: queued notices for the leaving partner go to the one taking over.

    Only ``pending`` rows move; one a sender already holds is stopped by the send-time check
    (``partner_vetoes``), since the leaving partner is inactive by then.
    """
    moved = skipped = 0
    if from_chat is not None:
        to_partner = and_(
            _T.c.status == PENDING,
            _T.c.partner_id == from_id,
            _T.c.chat_id == from_chat,
            ~_owner_addressed(),
        )
        if to_chat is not None:
            values: dict[str, Any] = dict(chat_id=to_chat, partner_id=to_id, updated_at=now)
        else:
            values = dict(status=SKIPPED, reason=PARTNER_NOT_REGISTERED, partner_id=to_id, updated_at=now)
        count = (
            rowcount(
                session.execute(
                    update(_T).where(to_partner).values(**values).execution_options(synchronize_session=False)
                )
            )
            or 0
        )
        moved, skipped = (count, 0) if to_chat is not None else (0, count)
    retagged = (
        rowcount(
            session.execute(
                update(_T)
                .where(_T.c.status == PENDING, _T.c.partner_id == from_id)
                .values(partner_id=to_id, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        or 0
    )
    return Readdressed(moved, skipped, retagged)


def partner_vetoes(session: Session, rows: Sequence[ClaimedMessage]) -> dict[int, str]:
    """Send-time check: ``outbox id -> reason`` for claimed rows addressed to a partner who
    may no longer get them.

    A row is a partner's when it goes to a private chat that is not the chat of the owner it
    is about. It is vetoed when its partner is inactive (deactivated or handed over), or its
    chat is no longer that partner's account (the code was re-issued); a row without a
    partner is vetoed when its chat is an inactive partner's account.
    """
    private = [r for r in rows if r.chat_id > 0]
    if not private:
        return {}
    chats = sorted({r.chat_id for r in private})
    partner_ids = sorted({r.partner_id for r in private if r.partner_id is not None})
    partners: dict[int, tuple[int | None, bool]] = {}
    by_chat: dict[int, bool] = {}
    owner_of_chat: dict[int, int] = {}
    for chunk in in_chunks(chats):
        for pid, tg, active in session.execute(
            select(col(Partner.id), col(Partner.telegram_user_id), col(Partner.active)).where(
                col(Partner.telegram_user_id).in_(chunk)
            )
        ).all():
            partners[pid] = (tg, bool(active))
            by_chat[tg] = bool(active)
        for oid, tg in session.execute(
            select(col(Owner.id), col(Owner.telegram_user_id)).where(col(Owner.telegram_user_id).in_(chunk))
        ).all():
            owner_of_chat[tg] = oid
    missing = [p for p in partner_ids if p not in partners]
    for chunk in in_chunks(missing):
        for pid, tg, active in session.execute(
            select(col(Partner.id), col(Partner.telegram_user_id), col(Partner.active)).where(
                col(Partner.id).in_(chunk)
            )
        ).all():
            partners[pid] = (tg, bool(active))
    vetoes: dict[int, str] = {}
    for row in private:
        partner = partners.get(row.partner_id) if row.partner_id is not None else None
        chat_owner = owner_of_chat.get(row.chat_id)
        if chat_owner is not None and (
            row.owner_id == chat_owner or (row.owner_id is None and not (partner and partner[0] == row.chat_id))
        ):
            continue  # to an owner: the partner's state does not decide it
        if row.partner_id is not None:
            if partner is None:
                continue  # no such partner row: nothing to check against
            account, active = partner
            if not active:
                vetoes[row.id] = PARTNER_INACTIVE
            elif account != row.chat_id:
                vetoes[row.id] = PARTNER_ACCOUNT_CHANGED
        elif by_chat.get(row.chat_id) is False:
            vetoes[row.id] = PARTNER_INACTIVE
    return vetoes


# --- reads for the send-time rules ---------------------------------------------------------


class ChatOwner(NamedTuple):
    """The owner behind a private chat, with their delivery preferences (a named tuple: a
    campaign makes one per owner, and a tuple is made at C speed, ``ChatOwner._make(values)``)."""

    owner_id: int
    chat_id: int
    opted_out: bool
    unreachable: bool
    timezone: str | None
    marketing_cap: int | None
    quiet_hours: str | None
    partner_id: int | None  # the owner's partner (their circle, for the best hour's fallback)


def owners_by_chat(session: Session, chat_ids: Iterable[int]) -> dict[int, ChatOwner]:
    """Owners whose Telegram user id is one of ``chat_ids`` (private chats), by chat id."""
    wanted = sorted({c for c in chat_ids if c > 0})
    found: dict[int, ChatOwner] = {}
    for chunk in among_chunks(wanted):
        rows = session.execute(
            select(*chat_owner_columns())
            .outerjoin(OwnerPreference, col(OwnerPreference.owner_id) == col(Owner.id))
            .where(among(session, col(Owner.telegram_user_id), chunk))
        ).all()
        for row in rows:
            found[row[1]] = chat_owner(row)
    return found


def chat_owner_columns() -> tuple[Any, ...]:
    """What a ``ChatOwner`` is read from, in its order (``OwnerPreference`` outer-joined on
    the owner), for a query that reads other columns of the same owners too."""
    return (
        col(Owner.id),
        col(Owner.telegram_user_id),
        col(Owner.opted_out),
        col(Owner.unreachable),
        col(OwnerPreference.timezone),
        col(OwnerPreference.marketing_cap_per_week),
        col(OwnerPreference.quiet_hours),
        col(Owner.partner_id),
    )


def chat_owner(row: Sequence[Any]) -> ChatOwner:
    """A ``ChatOwner`` from the values of ``chat_owner_columns``."""
    return ChatOwner(row[0], row[1], bool(row[2]), bool(row[3]), row[4], row[5], row[6], row[7])


def partner_chats(session: Session, chat_ids: Iterable[int]) -> set[int]:
    """Which of ``chat_ids`` are active partners' private chats (staff, not audience)."""
    wanted = sorted({c for c in chat_ids if c > 0})
    found: set[int] = set()
    for chunk in among_chunks(wanted):
        found.update(
            session.execute(
                select(col(Partner.telegram_user_id)).where(
                    among(session, col(Partner.telegram_user_id), chunk), col(Partner.active).is_(True)
                )
            ).scalars()
        )
    return found


def marketing_times(
    session: Session,
    chat_ids: Iterable[int],
    since: datetime,
    *,
    include_planned: bool,
    exclude_ids: Collection[int] = (),
) -> dict[int, list[datetime]]:
    """Per chat: marketing pushes that count against the frequency cap after ``since``.

    Sent ones count at ``sent_at``; with ``include_planned``, pending and in-flight ones count
    at ``not_before`` (planning must leave room for what is already queued).
    """
    wanted = sorted(set(chat_ids))
    times: dict[int, list[datetime]] = {}
    statuses = [SENT, PENDING, SENDING] if include_planned else [SENT]
    # by chat: SQLite would rather walk ix_outbox_due over every pending row (a campaign's
    # whole queue, again for every batch), so there the status is tested, not indexed
    status = _T.c.status if _is_pg(session) else _T.c.status.concat("")
    for chunk in among_chunks(wanted):
        rows = session.execute(
            select(_T.c.id, _T.c.chat_id, _T.c.status, _T.c.sent_at, _T.c.not_before).where(
                among(session, _T.c.chat_id, chunk),
                _T.c.message_class == MessageClass.marketing.value,
                status.in_(statuses),
            )
        ).all()
        for row_id, chat_id, status, sent_at, not_before in rows:
            if row_id in exclude_ids:
                continue
            at = sent_at if status == SENT else not_before
            if at is not None and at > since:
                times.setdefault(chat_id, []).append(at)
    return times


def suppressions_for(session: Session, topics: Iterable[str]) -> dict[tuple[str, str], str]:
    """``(topic, subject) -> reason`` for cancelled topics (subject ``""``: the whole topic)."""
    wanted = sorted(set(topics))
    if not wanted:
        return {}
    rows = session.execute(
        select(col(DeliverySuppression.topic), col(DeliverySuppression.subject), col(DeliverySuppression.reason)).where(
            col(DeliverySuppression.topic).in_(wanted)
        )
    ).all()
    return {(topic, subject or ""): reason for topic, subject, reason in rows}


def add_suppression(session: Session, topic: str, subject: str, reason: str, now: datetime) -> bool:
    """Record a cancelled topic/subject once; returns True when it is new."""
    exists = session.execute(
        select(col(DeliverySuppression.id)).where(
            col(DeliverySuppression.topic) == topic, col(DeliverySuppression.subject) == subject
        )
    ).first()
    if exists:
        return False
    session.add(DeliverySuppression(topic=topic, subject=subject, reason=reason, created_at=now))
    session.flush()
    return True


def existing_keys(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` are taken (read on the session's connection: plain rows, no ORM)."""
    found: set[str] = set()
    conn = session.connection()
    for chunk in among_chunks(sorted(set(keys))):
        found.update(
            conn.execute(select(_T.c.dedupe_key).where(among(session, _T.c.dedupe_key, chunk))).scalars().all()
        )
    return found


def planned_rows(session: Session, keys: Iterable[str]) -> dict[str, tuple[str, str | None, datetime]]:
    """``dedupe key -> (status, reason, not_before)`` of the rows with these keys."""
    found: dict[str, tuple[str, str | None, datetime]] = {}
    for chunk in among_chunks(sorted(set(keys))):
        for key, status, reason, not_before in session.execute(
            select(_T.c.dedupe_key, _T.c.status, _T.c.reason, _T.c.not_before).where(
                among(session, _T.c.dedupe_key, chunk)
            )
        ).all():
            found[key] = (status, reason, not_before)
    return found


# --- bulk writes for the planners ------------------------------------------------------------


def bulk_insert(session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``INSERT INTO table (columns)`` every row, in the session's transaction: the planners'
    bulk path (a campaign's or a flow tick's outbox rows, topics, members), at about the
    driver's own speed: on PostgreSQL one ``COPY``, on SQLite one DBAPI ``executemany`` of
    ``INSERT ... VALUES (...), (...), ...`` statements of up to ``_ROWS_PER_STATEMENT`` rows
    (and ``_SQLITE_PARAMS`` parameters) each, the rest row by row: measured, a third less
    time than one row per statement for a campaign's members, a tenth for its outbox rows.

    Values go through each column's bind processor (aware datetimes to UTC, JSON) column by
    column, once per distinct value where they are hashable (most rows share ``now``), instead
    of SQLAlchemy's per-row parameter processing, which is most of a Core executemany's time.
    A duplicate key raises ``IntegrityError`` as SQLAlchemy's own statements do.
    """
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    values = _bound(dialect, [table.c[name] for name in columns], rows)
    names = ", ".join(columns)
    if dialect.name == "postgresql":
        _copy(conn, f"COPY {table.name} ({names}) FROM STDIN", values)
        return
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    one = f"({', '.join([mark] * len(columns))})"
    per = max(1, min(_ROWS_PER_STATEMENT, _SQLITE_PARAMS // len(columns))) if dialect.name == "sqlite" else 1
    full = len(values) - len(values) % per
    if per > 1 and full:  # several rows per INSERT: a fraction of executemany's per-statement work
        many = f"INSERT INTO {table.name} ({names}) VALUES {', '.join([one] * per)}"
        conn.exec_driver_sql(many, [tuple(chain.from_iterable(values[i : i + per])) for i in range(0, full, per)])
        values = values[full:]
    if values:
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES {one}", values)  # one executemany


_ROWS_PER_STATEMENT = 200
_SQLITE_PARAMS = 999  # SQLite's limit before 3.32 (SQLITE_MAX_VARIABLE_NUMBER); 32,766 since


def _bound(dialect: Any, columns: Sequence[Any], rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The rows with every column's bind processor applied (column-wise, C-level maps)."""
    processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    if not any(processors):
        return [tuple(row) for row in rows]
    by_column: list[Any] = list(zip(*rows, strict=True))
    for i, process in enumerate(processors):
        if process is None:
            continue
        try:
            known = {v: process(v) for v in set(by_column[i])}
            by_column[i] = map(known.__getitem__, by_column[i])
        except TypeError:  # unhashable values (JSON): once per distinct object
            by_id: dict[int, Any] = {}
            for v in by_column[i]:
                if id(v) not in by_id:
                    by_id[id(v)] = process(v)
            by_column[i] = [by_id[id(v)] for v in by_column[i]]
    return list(zip(*by_column, strict=True))


def _copy(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``COPY ... FROM STDIN`` of ``rows`` on the connection's psycopg connection, inside the
    session's transaction; driver errors become SQLAlchemy's (``IntegrityError`` for a key)."""
    from sqlalchemy.exc import DBAPIError

    raw: Any = conn.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except raw.Error as error:
        raise DBAPIError.instance(sql, None, error, type(raw).Error) from error


def among_chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """Slices of ``values`` sized for ``among`` (one parameter per slice)."""
    return _slices(values, _PG_CHUNK)


def in_chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """Slices of ``values`` sized for a plain ``IN (...)`` list (one parameter per value)."""
    return _slices(values, _IN_CHUNK)


def _slices(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def among(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """SQL ``column IN values`` with one parameter however many values: on PostgreSQL
    ``= ANY(:array)``, on SQLite ``IN (SELECT value FROM json_each(:json))``. (Thousands of
    placeholders are slow to render and to parse, and SQLite caps their number.) For ints and
    strings, which JSON carries exactly."""
    if _is_pg(session):
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    listed = func.json_each(bindparam(None, json.dumps(list(values)), type_=String())).table_valued("value")
    return column.in_(select(listed.c.value))


__all__ = [
    "ChatOwner",
    "ClaimedMessage",
    "Outcome",
    "Readdressed",
    "add_suppression",
    "bulk_insert",
    "chat_owner",
    "chat_owner_columns",
    "claim_due",
    "existing_keys",
    "expire_pending",
    "marketing_times",
    "owners_by_chat",
    "partner_chats",
    "partner_vetoes",
    "planned_rows",
    "readdress_partner_notices",
    "record_outcomes",
    "skip_partner_notices",
    "suppressions_for",
]
