"""The points ledger and the member account it keeps current.

Write paths are race-free on SQLite and PostgreSQL: a ledger line is inserted with its unique
key first (``ON CONFLICT DO NOTHING``: a retry or a second job adds nothing), and the balance
moves by one UPDATE that, for spending, only matches while the balance covers the amount
(``balance >= n``), backed by a CHECK constraint. Levels go by lifetime points earned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from flows.errors import AutoCircleError
from flows.templating import Renderer
from storage.clock import utcnow
from storage.db import dialect_insert, rowcount, table_of
from storage.membership_models import MemberAccount, PointsLine
from storage.models import Owner

DEFAULT_AMOUNTS = {
    "verification": 50,
    "circle": 2,
    "booking": 20,
    "service_visit": 30,
    "referral": 100,
    "redemption": 10,
    "welcome": 20,
}
DEFAULT_LEVELS = (("silver", 0), ("gold", 500), ("black", 2000))


class NotEnoughPointsError(AutoCircleError):
    pass


@dataclass(frozen=True)
class PointsPolicy:
    """Plain values from settings (flows never see the settings object)."""

    amounts: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_AMOUNTS))
    circle_daily_cap: int = 5
    levels: tuple[tuple[str, int], ...] = DEFAULT_LEVELS
    timezone: str = "Asia/Shanghai"

    def amount(self, reason: str) -> int:
        return int(self.amounts.get(reason, 0))


DEFAULT_POLICY = PointsPolicy()
#: ``session.info`` key under which the bot installs the deployment's policy on every update's
#: session, so that code reached without settings (a flow button's answer hook) awards what
#: ``membership.points`` says, not the built-in amounts
POLICY_KEY = "points_policy"


def policy_of(session: Session, policy: PointsPolicy | None = None) -> PointsPolicy:
    """``policy`` if given, else the one installed on the session, else the defaults."""
    if policy is not None:
        return policy
    installed = session.info.get(POLICY_KEY)
    return installed if isinstance(installed, PointsPolicy) else DEFAULT_POLICY


def _insert(session: Session, table: Table) -> postgresql.Insert | sqlite.Insert:
    return dialect_insert(session.get_bind().dialect.name, table)


def _ensure_account(session: Session, owner_id: int, now: datetime) -> None:
    session.execute(
        _insert(session, table_of(MemberAccount))
        .values(
            owner_id=owner_id,
            balance=0,
            earned=0,
            level="",
            joined_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["owner_id"])
    )


def _add_line(session: Session, owner_id: int, delta: int, reason: str, key: str, now: datetime, note: str) -> bool:
    result = session.execute(
        _insert(session, table_of(PointsLine))
        .values(
            owner_id=owner_id,
            delta=delta,
            reason=reason[:32],
            key=key[:120],
            note=note[:200],
            at=now,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(table_of(PointsLine).c.id)
    )
    return result.first() is not None  # rowcount is not reliable for INSERT … ON CONFLICT on every driver


def award(
    session: Session, owner_id: int, amount: int, reason: str, key: str, now: datetime | None = None, note: str = ""
) -> bool:
    """Add ``amount`` points once per ``key``; True when this call added them."""
    now = now or utcnow()
    if amount <= 0:
        return False
    if not _add_line(session, owner_id, amount, reason, key, now, note):
        return False
    _ensure_account(session, owner_id, now)
    session.execute(
        update(MemberAccount)
        .where(col(MemberAccount.owner_id) == owner_id)
        .values(balance=col(MemberAccount.balance) + amount, earned=col(MemberAccount.earned) + amount, updated_at=now)
    )
    return True


def spend(
    session: Session, owner_id: int, amount: int, reason: str, key: str, now: datetime | None = None, note: str = ""
) -> bool:
    """Take ``amount`` points once per ``key``; refuses (NotEnoughPointsError) rather than go
    below zero. False when ``key`` was spent already (a retry)."""
    now = now or utcnow()
    if amount <= 0:
        return False
    _ensure_account(session, owner_id, now)
    done = session.execute(
        update(MemberAccount)
        .where(
            col(MemberAccount.owner_id) == owner_id,
            col(MemberAccount.balance) >= amount,
        )
        .values(balance=col(MemberAccount.balance) - amount, updated_at=now)
    )
    if rowcount(done) != 1:
        raise NotEnoughPointsError(f"owner {owner_id} has fewer than {amount} points")
    if not _add_line(session, owner_id, -amount, reason, key, now, note):
        # a retry of a spend already booked: give back what this call just took
        session.execute(
            update(MemberAccount)
            .where(col(MemberAccount.owner_id) == owner_id)
            .values(balance=col(MemberAccount.balance) + amount)
        )
        return False
    return True


def take_back(
    session: Session, owner_id: int, amount: int, reason: str, key: str, now: datetime | None = None, note: str = ""
) -> int:
    """Take back up to ``amount`` (what was awarded for something undone), never below zero.
    Returns the points taken; 0 on a retry."""
    now = now or utcnow()
    if amount <= 0:
        return 0
    _ensure_account(session, owner_id, now)
    for _ in range(5):
        balance: int = session.execute(
            select(col(MemberAccount.balance)).where(col(MemberAccount.owner_id) == owner_id)
        ).scalar_one()
        take = min(balance, amount)
        if take <= 0:
            _add_line(session, owner_id, 0, reason, key, now, note)  # the reason is kept even for 0
            return 0
        done = session.execute(
            update(MemberAccount)
            .where(
                col(MemberAccount.owner_id) == owner_id,
                col(MemberAccount.balance) == balance,
            )
            .values(balance=col(MemberAccount.balance) - take, updated_at=now)
        )
        if rowcount(done) == 1:
            if _add_line(session, owner_id, -take, reason, key, now, note):
                return take
            session.execute(
                update(MemberAccount)
                .where(col(MemberAccount.owner_id) == owner_id)
                .values(balance=col(MemberAccount.balance) + take)
            )
            return 0
    return 0


def join(session: Session, owner_id: int, now: datetime | None = None, policy: PointsPolicy | None = None) -> bool:
    """Enrol the owner in the programme: the account, the welcome points (once: keyed by the
    owner) and the level they reach. True when this call enrolled them."""
    now = now or utcnow()
    policy = policy_of(session, policy)
    _ensure_account(session, owner_id, now)
    first = award(session, owner_id, policy.amount("welcome"), "welcome", f"join:{owner_id}", now, note="joined")
    check_level(session, owner_id, policy, now)
    return first


def balance_of(session: Session, owner_id: int) -> int:
    return (
        session.execute(select(col(MemberAccount.balance)).where(col(MemberAccount.owner_id) == owner_id)).scalar() or 0
    )


def lines_of(session: Session, owner_id: int, limit: int = 10) -> list[PointsLine]:
    return list(
        session.execute(
            select(PointsLine)
            .where(col(PointsLine.owner_id) == owner_id)
            .order_by(col(PointsLine.at).desc(), col(PointsLine.id).desc())
            .limit(limit)
        ).scalars()
    )


# --- levels -------------------------------------------------------------------------------


def level_for(earned: int, levels: Sequence[tuple[str, int]] = DEFAULT_LEVELS) -> str:
    current = ""
    for name, threshold in sorted(levels, key=lambda t: t[1]):
        if earned >= threshold:
            current = name
    return current


def next_level(earned: int, levels: Sequence[tuple[str, int]] = DEFAULT_LEVELS) -> tuple[str, int] | None:
    for name, threshold in sorted(levels, key=lambda t: t[1]):
        if earned < threshold:
            return name, threshold - earned
    return None


def check_level(session: Session, owner_id: int, policy: PointsPolicy, now: datetime) -> str | None:
    """Move the account to the level its lifetime points reach; returns the new level when it
    went up (compare-and-set on the old level, so only one caller announces it)."""
    account = session.get(MemberAccount, owner_id)
    if account is None:
        return None
    session.refresh(account)
    wanted = level_for(account.earned, policy.levels)
    if wanted == account.level:
        return None
    order = [name for name, _ in sorted(policy.levels, key=lambda t: t[1])]
    went_up = account.level == "" or (
        wanted in order and account.level in order and order.index(wanted) > order.index(account.level)
    )
    done = session.execute(
        update(MemberAccount)
        .where(
            col(MemberAccount.owner_id) == owner_id,
            col(MemberAccount.level) == account.level,
        )
        .values(level=wanted, level_at=now)
    )
    session.refresh(account)
    return wanted if rowcount(done) == 1 and went_up else None


def notify_level(session: Session, owner_id: int, level: str, renderer: Renderer, now: datetime) -> bool:
    """The level-up notice, once per owner and level, through the outbox."""
    from flows.delivery.outbox import Push, enqueue
    from storage.models import MessageClass

    owner = session.get(Owner, owner_id)
    if owner is None or owner.telegram_user_id is None:
        return False
    text = renderer.render("membership/level_up", owner.locale, level=level, name=owner.name)
    return enqueue(
        session,
        Push(
            dedupe_key=f"member:level:{owner_id}:{level}",
            chat_id=owner.telegram_user_id,
            text=text,
            owner_id=owner_id,
            message_class=MessageClass.transactional,
        ),
    )


# --- expiry -------------------------------------------------------------------------------


def _unspent_before(session: Session, owner_id: int, before: datetime) -> int:
    """Points earned before ``before`` that no spend or expiry has used yet (oldest first)."""
    old = session.execute(
        select(func.coalesce(func.sum(col(PointsLine.delta)), 0)).where(
            col(PointsLine.owner_id) == owner_id, col(PointsLine.at) < before, col(PointsLine.delta) > 0
        )
    ).scalar_one()
    used = -session.execute(
        select(func.coalesce(func.sum(col(PointsLine.delta)), 0)).where(
            col(PointsLine.owner_id) == owner_id, col(PointsLine.delta) < 0
        )
    ).scalar_one()
    return max(0, int(old) - int(used))


def expire_due(session: Session, now: datetime, timezone: str = "Asia/Shanghai") -> int:
    """Points earned in year Y expire at the end of Y+1: spends and earlier expiries use the
    oldest points first, so what is left of years ≤ Y-… is taken now. Returns points expired."""
    year = now.astimezone(ZoneInfo(timezone)).year
    cutoff_year = year - 2  # earned in cutoff_year or before: expired at the end of cutoff_year + 1
    cutoff = datetime(cutoff_year + 1, 1, 1, tzinfo=ZoneInfo(timezone))
    owners = (
        session.execute(
            select(col(PointsLine.owner_id))
            .where(col(PointsLine.at) < cutoff, col(PointsLine.delta) > 0)
            .group_by(col(PointsLine.owner_id))
        )
        .scalars()
        .all()
    )
    total = 0
    for owner_id in owners:
        due = _unspent_before(session, owner_id, cutoff)
        if due:
            total += take_back(
                session,
                owner_id,
                due,
                "expired",
                f"expire:{owner_id}:{cutoff_year}",
                now,
                note=f"earned in {cutoff_year} or before",
            )
    return total


@dataclass(frozen=True)
class PointsSummary:
    balance: int
    earned: int
    level: str
    next_level: str | None
    to_next: int
    lines: tuple[PointsLine, ...]
    expiring: int  # points that expire at the end of this year
    expiring_on: str


def summary(session: Session, owner_id: int, policy: PointsPolicy, now: datetime) -> PointsSummary:
    account = session.get(MemberAccount, owner_id)
    balance, earned, level = (account.balance, account.earned, account.level) if account else (0, 0, "")
    nxt = next_level(earned, policy.levels)
    zone = ZoneInfo(policy.timezone)
    year = now.astimezone(zone).year
    start = datetime(year, 1, 1, tzinfo=zone)
    expiring = min(balance, _unspent_before(session, owner_id, start))
    return PointsSummary(
        balance,
        earned,
        level or level_for(earned, policy.levels),
        nxt[0] if nxt else None,
        nxt[1] if nxt else 0,
        tuple(lines_of(session, owner_id)),
        expiring,
        f"{year}-12-31",
    )
