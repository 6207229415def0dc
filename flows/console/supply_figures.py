"""The console's supply-side figures (issues 13 and 14 in the console, issue 15 item 3): offers,
merchants, settlement and commercial tasks, and the Mini App's merchant and demand-side homes.

Scoped as the bot scopes them:

* an operator (``Scope()``) sees everything;
* a partner sees what the bot tells a partner: their own commission (``/earnings``: the
  settlement restricted to their lines) and the tasks their owners are in (offered to or taken
  by one of their owners, or attributed to them as a deal, ``/deals``); never another partner's
  owner, and no merchant or offer lists (the bot shows partners none);
* a merchant's staff sees their own merchant: its offers, stock, redemptions and its row of the
  settlement, never a line naming an owner;
* a demand-side account's staff sees their own account's tasks.

Anything else raises ``OutOfScope`` (the page answers 403); an id outside the scope is simply
not found (404), so a forged id tells nothing. Long lists page in SQL (LIMIT/OFFSET, counts by
correlated subqueries for the page's rows only). The settlement comes from
``flows.merchants.commission.settlement``, the same function the workbook and ``/earnings`` use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from flows.community.phones import mask
from flows.console.figures import Page, Scope, page_bounds
from flows.errors import AutoCircleError
from flows.merchants import commission
from storage.merchant_models import Coupon, Merchant, MerchantStaff, Offer, Redemption
from storage.models import Owner
from storage.opportunity_models import DemandAccount, Task, TaskOffer, TaskState, TaskTransition

OFFER_STATUSES = ("draft", "live", "paused", "ended")
TASK_STATES = tuple(s.value for s in TaskState)


class OutOfScope(AutoCircleError):
    """This viewer may not open this page at all (a 403, not a 404)."""


# --- scopes ---------------------------------------------------------------------------------


def _merchant_filter(scope: Scope, merchant_id: int | None = None) -> list[Any]:
    """Offers and merchants: an operator's optional filter, a merchant's own; nobody else's."""
    if scope.everything:
        return [] if merchant_id is None else [col(Offer.merchant_id) == merchant_id]
    if scope.merchant_id is not None and merchant_id in (None, scope.merchant_id):
        return [col(Offer.merchant_id) == scope.merchant_id]
    raise OutOfScope("offers and merchants are for operators and the merchant's own staff")


def _partner_owners(partner_id: int) -> Any:
    return select(col(Owner.id)).where(col(Owner.partner_id) == partner_id)


def _task_filter(scope: Scope) -> list[Any]:
    if scope.everything:
        return []
    if scope.demand_id is not None:
        return [col(Task.demand_id) == scope.demand_id]
    if scope.partner_id is not None:
        mine = _partner_owners(scope.partner_id)
        offered = exists().where(col(TaskOffer.task_id) == col(Task.id), col(TaskOffer.owner_id).in_(mine))
        return [
            or_(
                col(Task.partner_id) == scope.partner_id,
                col(Task.assigned_owner_id).in_(mine),
                offered,
            )
        ]
    raise OutOfScope("tasks are for operators, partners and the demand side")


# --- offers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferLine:
    id: int
    merchant_code: str
    merchant_name: str
    title: str
    category: str
    status: str
    stock_total: int | None  # None: unlimited
    stock_left: int | None
    claimed: int  # coupons issued
    redeemed: int  # coupons whose redemption stands (an undone one does not count)


def _claimed() -> Any:
    return (
        select(func.count(col(Coupon.id)))
        .where(col(Coupon.offer_id) == col(Offer.id))
        .correlate(Offer)
        .scalar_subquery()
    )


def _redeemed() -> Any:
    """The rule of ``flows.merchants.reports.offer_funnel``: coupons with a standing redemption."""
    return (
        select(func.count(func.distinct(col(Coupon.id))))
        .join(Redemption, and_(col(Redemption.coupon_id) == col(Coupon.id), col(Redemption.undone_at).is_(None)))
        .where(col(Coupon.offer_id) == col(Offer.id))
        .correlate(Offer)
        .scalar_subquery()
    )


def offer_page(
    session: Session,
    scope: Scope,
    page: int = 1,
    size: int = 50,
    *,
    status: str | None = None,
    merchant_id: int | None = None,
) -> Page:
    """Offers with their merchant, stock left and coupons issued / redeemed, one page."""
    where = _merchant_filter(scope, merchant_id)
    if status is not None:
        if status not in OFFER_STATUSES:
            raise ValueError(f"no offer status {status!r}")
        where.append(col(Offer.status) == status)
    total = int(session.exec(select(func.count()).select_from(Offer).where(*where)).one())
    page, offset = page_bounds(page, size)
    return Page(_offer_lines(session, where, offset, size), total, page, size)


def offer_in_scope(session: Session, scope: Scope, offer_id: int) -> OfferLine | None:
    """One offer's line, or None when it is not there or not this viewer's (a 404 either way)."""
    found = _offer_lines(session, [*_merchant_filter(scope), col(Offer.id) == offer_id], 0, 1)
    return found[0] if found else None


def _offer_lines(session: Session, where: list[Any], offset: int, size: int) -> list[OfferLine]:
    rows = session.execute(
        sa_select(
            col(Offer.id),
            col(Merchant.code),
            col(Merchant.name),
            col(Offer.title),
            col(Offer.category),
            col(Offer.status),
            col(Offer.stock_total),
            col(Offer.stock_claimed),
            _claimed(),
            _redeemed(),
        )
        .join(Merchant, col(Merchant.id) == col(Offer.merchant_id))
        .where(*where)
        .order_by(col(Offer.id))
        .offset(offset)
        .limit(size)
    ).all()
    return [
        OfferLine(
            int(r[0]),
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            None if r[6] is None else max(0, int(r[6]) - int(r[7] or 0)),
            int(r[8] or 0),
            int(r[9] or 0),
        )
        for r in rows
    ]


# --- merchants ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MerchantLine:
    id: int
    code: str
    name: str
    kind: str
    category: str
    city: str
    active: bool
    staff: int  # registered, active staff accounts (as ``directory.list_merchants``)
    offers: int
    live_offers: int
    redemptions: int  # standing (not undone)


def merchant_page(session: Session, scope: Scope, page: int = 1, size: int = 50) -> Page:
    """Merchants with staff count, offers and standing redemptions, one page."""
    if scope.everything:
        where: list[Any] = []
    elif scope.merchant_id is not None:
        where = [col(Merchant.id) == scope.merchant_id]
    else:
        raise OutOfScope("merchants are for operators")
    total = int(session.exec(select(func.count()).select_from(Merchant).where(*where)).one())
    page, offset = page_bounds(page, size)

    def count(query: Any) -> Any:
        return query.correlate(Merchant).scalar_subquery()

    staff = count(
        select(func.count(col(MerchantStaff.id))).where(
            col(MerchantStaff.merchant_id) == col(Merchant.id),
            col(MerchantStaff.registered_at).is_not(None),
            col(MerchantStaff.active).is_(True),
        )
    )
    offers = count(select(func.count(col(Offer.id))).where(col(Offer.merchant_id) == col(Merchant.id)))
    live = count(
        select(func.count(col(Offer.id))).where(col(Offer.merchant_id) == col(Merchant.id), col(Offer.status) == "live")
    )
    redemptions = count(
        select(func.count(col(Redemption.id))).where(
            col(Redemption.merchant_id) == col(Merchant.id), col(Redemption.undone_at).is_(None)
        )
    )
    rows = session.execute(
        sa_select(
            col(Merchant.id),
            col(Merchant.code),
            col(Merchant.name),
            col(Merchant.kind),
            col(Merchant.category),
            col(Merchant.city),
            col(Merchant.active),
            staff,
            offers,
            live,
            redemptions,
        )
        .where(*where)
        .order_by(col(Merchant.code))
        .offset(offset)
        .limit(size)
    ).all()
    items = [
        MerchantLine(int(r[0]), r[1], r[2], r[3], r[4], r[5], bool(r[6]), int(r[7]), int(r[8]), int(r[9]), int(r[10]))
        for r in rows
    ]
    return Page(items, total, page, size)


def merchant_id_of(session: Session, code: str) -> int | None:
    return session.exec(select(col(Merchant.id)).where(col(Merchant.code) == code.strip())).first()


# --- settlement -----------------------------------------------------------------------------


def current_month(now: datetime, timezone: str) -> str:
    return now.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def settlement(session: Session, scope: Scope, month: str, timezone: str, now: datetime) -> commission.Settlement:
    """The settlement workbook's totals for ``month`` as this viewer may see them: everything
    (operators), a partner's own lines, a merchant's own lines. Lines past their freeze are
    settled first, as ``report settlement`` and ``/earnings`` do."""
    if scope.demand_id is not None:
        raise OutOfScope("the settlement is for operators, partners and merchants")
    commission.month_bounds(month, timezone)  # InvalidInputError for a bad month, before any write
    commission.settle_due(session, now)
    return commission.settlement(session, month, timezone, merchant_id=scope.merchant_id, partner_id=scope.partner_id)


# --- commercial tasks -----------------------------------------------------------------------


@dataclass(frozen=True)
class TaskLine:
    id: int
    state: str
    demand: str  # the demand side's company; "" where the viewer is not shown it
    pickup: str
    dropoff: str
    window_start: datetime
    window_end: datetime
    vehicle_class: str
    payload_t: float
    price_cents: int | None
    owner_name: str  # the assigned owner, where the viewer may see who; "" otherwise
    owner_phone: str  # masked unless the viewer is an operator
    created_at: datetime


def _task_lines(session: Session, scope: Scope, where: list[Any], offset: int, size: int | None) -> list[TaskLine]:
    query = (
        sa_select(
            Task,
            col(DemandAccount.company),
            col(Owner.name),
            col(Owner.phone),
            col(Owner.partner_id),
        )
        .join(DemandAccount, col(DemandAccount.id) == col(Task.demand_id))
        .outerjoin(Owner, col(Owner.id) == col(Task.assigned_owner_id))
        .where(*where)
        .order_by(col(Task.id).desc())
        .offset(offset)
    )
    if size is not None:
        query = query.limit(size)
    out = []
    for task, company, name, phone, owner_partner in session.execute(query).all():
        # a partner sees their own owner taking a task, not another partner's; the demand side
        # is told who took theirs (the bot's "assigned" message)
        shown = scope.partner_id is None or owner_partner == scope.partner_id
        out.append(
            TaskLine(
                id=task.id,
                state=task.state,
                demand=company if scope.partner_id is None else "",
                pickup=task.pickup_text,
                dropoff=task.dropoff_text,
                window_start=task.window_start,
                window_end=task.window_end,
                vehicle_class=task.vehicle_class,
                payload_t=task.payload_t,
                price_cents=task.price_cents,
                owner_name=(name or "") if shown else "",
                owner_phone=("" if not shown or not phone else (phone if scope.everything else mask(phone))),
                created_at=task.created_at,
            )
        )
    return out


def task_page(session: Session, scope: Scope, page: int = 1, size: int = 50, *, state: str | None = None) -> Page:
    """Commercial tasks newest first, filtered by state, one page."""
    where = _task_filter(scope)
    if state is not None:
        if state not in TASK_STATES:
            raise ValueError(f"no task state {state!r}")
        where.append(col(Task.state) == state)
    total = int(session.exec(select(func.count()).select_from(Task).where(*where)).one())
    page, offset = page_bounds(page, size)
    return Page(_task_lines(session, scope, where, offset, size), total, page, size)


def task_states(session: Session, scope: Scope) -> dict[str, int]:
    """How many of the viewer's tasks are in each state (every state named, zeros too)."""
    counts = dict.fromkeys(TASK_STATES, 0)
    for state, n in session.exec(
        select(col(Task.state), func.count()).where(*_task_filter(scope)).group_by(col(Task.state))
    ).all():
        counts[state] = int(n)
    return counts


@dataclass(frozen=True)
class TransitionLine:
    at: datetime
    from_state: str
    to_state: str
    actor: str  # operators only; "" for everyone else
    reason: str


@dataclass(frozen=True)
class TaskDetail:
    task: TaskLine
    transitions: list[TransitionLine]


def task_in_scope(session: Session, scope: Scope, task_id: int) -> TaskDetail | None:
    """One task and its logged moves, or None when it is not there or not this viewer's."""
    found = _task_lines(session, scope, [*_task_filter(scope), col(Task.id) == task_id], 0, 1)
    if not found:
        return None
    moves = session.exec(
        select(TaskTransition).where(col(TaskTransition.task_id) == task_id).order_by(col(TaskTransition.id))
    ).all()
    return TaskDetail(
        found[0],
        [TransitionLine(m.at, m.from_state, m.to_state, m.actor if scope.everything else "", m.reason) for m in moves],
    )


# --- the Mini App's homes -------------------------------------------------------------------


@dataclass(frozen=True)
class MerchantHome:
    code: str
    name: str
    offers: Page
    redeemed_today: int
    redeemed_month: int
    month: str
    owed: commission.SettlementTotal | None  # this merchant's row of the month's settlement


def _day_start(now: datetime, timezone: str) -> datetime:
    local = now.astimezone(ZoneInfo(timezone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def merchant_home(
    session: Session, scope: Scope, now: datetime, timezone: str, page: int = 1, size: int = 20
) -> MerchantHome:
    """A merchant's staff: their offers and stock, today's and this month's redemptions (standing
    ones), and what the month's settlement says for them."""
    if scope.merchant_id is None:
        raise OutOfScope("the merchant home is for a merchant's staff")
    merchant = session.get(Merchant, scope.merchant_id)
    if merchant is None:
        raise OutOfScope("no such merchant")
    month = current_month(now, timezone)
    month_start, _ = commission.month_bounds(month, timezone)
    day_start = _day_start(now, timezone)
    standing = [col(Redemption.merchant_id) == scope.merchant_id, col(Redemption.undone_at).is_(None)]
    today, this_month = session.execute(
        sa_select(
            func.coalesce(func.sum(_when(col(Redemption.at) >= day_start)), 0),
            func.coalesce(func.sum(_when(col(Redemption.at) >= month_start)), 0),
        ).where(*standing, col(Redemption.at) >= month_start, col(Redemption.at) <= now)
    ).one()
    report = settlement(session, scope, month, timezone, now)
    owed = next((t for t in report.merchants if t.key == merchant.code), None)
    return MerchantHome(
        merchant.code,
        merchant.name,
        offer_page(session, scope, page, size),
        int(today or 0),
        int(this_month or 0),
        month,
        owed,
    )


def _when(condition: Any) -> Any:
    return case((condition, 1), else_=0)


@dataclass(frozen=True)
class DemandHome:
    company: str
    states: dict[str, int]
    tasks: Page


def demand_home(
    session: Session, scope: Scope, page: int = 1, size: int = 20, *, state: str | None = None
) -> DemandHome:
    """A demand-side account's staff: their tasks and the states they are in."""
    if scope.demand_id is None:
        raise OutOfScope("the demand home is for a demand-side account's staff")
    account = session.get(DemandAccount, scope.demand_id)
    if account is None:
        raise OutOfScope("no such account")
    return DemandHome(account.company, task_states(session, scope), task_page(session, scope, page, size, state=state))
