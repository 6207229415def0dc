"""The console's figures (issue 15, item 3): one function per page, each a few GROUP BYs, and
long lists paged in SQL (LIMIT/OFFSET). Every function takes a ``Scope``: an operator's is
everything, a partner's only their own owners (and then phones and VINs come masked, as in
``/export``). The funnel, matrix and movement come from the same functions the bot's and the
CLI's reports use, so the numbers are the same everywhere; an operator's overview and matrix
read the counts ``flows.console.counts`` refreshes (the same definitions, held to the reports'
numbers by the tests), and the live aggregate while there are none yet.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, distinct, func, or_
from sqlalchemy import select as sa_select  # sqlmodel's select() has overloads for up to 4 columns
from sqlmodel import Session, col, select

from flows.community.funnel import TOTAL, UNASSIGNED, FunnelReport, FunnelRow, funnel_report
from flows.community.phones import mask
from flows.console import counts
from flows.delivery import best_hour_report
from flows.delivery.delivery_report import delivery_report, percentile
from flows.delivery.delivery_rules import BestHour
from flows.growth import campaigns as campaign_service
from flows.growth import winback
from flows.growth.uplift import Comparison
from flows.reports.owner_export import mask_vin
from flows.segments.matrix_report import (
    MatrixReport,
    MatrixScope,
    MovementReport,
    ScopeLabel,
    matrix_report,
    movement_report,
)
from storage.campaign_models import Campaign
from storage.flow_models import FlowRun, FlowRunLog
from storage.gift_models import GiftGrant, Referral, ReferralStatus
from storage.models import Dealer, Event, OutboxMessage, Owner, Partner, SegmentRun, Vehicle
from storage.segments import ACTIVITY_ORDER, MATURITY_ORDER, is_online

MATURITIES = tuple(m.value for m in MATURITY_ORDER)  # the matrix's columns and rows, as words
ACTIVITIES = tuple(a.value for a in ACTIVITY_ORDER)
NOT_ONLINE = "not_online"


@dataclass(frozen=True)
class Scope:
    """Whose data a page may show. All ids None: everything (operators); ``partner_id``: that
    partner's owners; ``merchant_id`` / ``demand_id``: one merchant's or one demand-side
    account's own supply-side figures and never an owner list (``owners()`` refuses)."""

    partner_id: int | None = None
    advisor_code: str | None = None  # for titles only: a partner's figures filter by partner_id
    merchant_id: int | None = None
    demand_id: int | None = None

    def __post_init__(self) -> None:
        if self.advisor_code is not None and self.partner_id is None:
            raise ValueError("a partner's scope needs the partner's id (an advisor code alone scopes nothing)")

    @property
    def masked(self) -> bool:
        return not self.everything

    @property
    def everything(self) -> bool:
        return self.partner_id is None and self.merchant_id is None and self.demand_id is None

    @property
    def supply(self) -> bool:
        """A merchant's or a demand-side account's scope: no owner pages at all."""
        return self.merchant_id is not None or self.demand_id is not None

    def owners(self) -> list[Any]:
        if self.supply:  # defence in depth: the handlers refuse these viewers first
            raise PermissionError("a merchant or demand-side scope sees no owners")
        return [] if self.partner_id is None else [col(Owner.partner_id) == self.partner_id]


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def page_bounds(page: int, size: int) -> tuple[int, int]:
    page = max(1, page)
    return page, (page - 1) * size


# --- overview -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageRate:
    key: str  # retention | activation | referral | revenue | acquisition
    part: int
    whole: int

    @property
    def rate(self) -> float | None:
        return round(self.part / self.whole * 100, 1) if self.whole else None


@dataclass(frozen=True)
class Overview:
    funnel: FunnelReport
    dealers: list[FunnelRow]
    stages: list[StageRate]
    as_of: datetime | None = None  # the counts' refresh; None: live


def funnel(session: Session, scope: Scope) -> FunnelReport:
    """The funnel per partner in scope (the Mini App's summary needs no more than this): a
    partner's own row, found by the partner's id."""
    scope.owners()  # refuses a supply-side scope
    if scope.partner_id is None:
        if counts.as_of(session) is not None:
            return _funnel_from_counts(session, counts.funnel_rows(session))
        return funnel_report(session)
    partner = session.get(Partner, scope.partner_id)
    if partner is None:
        raise PermissionError(f"no partner with id {scope.partner_id}")
    return funnel_report(session, partner.advisor_code)


def _funnel_from_counts(session: Session, rows: list[counts.FunnelCounts]) -> FunnelReport:
    """``funnel_report``'s rows (every partner, then the unassigned owners) from the counts."""
    by_partner = {r.partner_id: r for r in rows}
    partners = session.execute(
        sa_select(col(Partner.id), col(Partner.advisor_code), col(Partner.name), col(Dealer.code))
        .join(Dealer, col(Dealer.id) == col(Partner.dealer_id))
        .order_by(col(Dealer.code), col(Partner.advisor_code))
    ).all()

    def row(code: str | None, name: str, dealer: str | None, c: counts.FunnelCounts | None) -> FunnelRow:
        values = (c.imported, c.invited, c.online, c.verified) if c else (0, 0, 0, 0)
        return FunnelRow(code, name, dealer, *values)

    lines = [row(code, name, dealer, by_partner.get(pid)) for pid, code, name, dealer in partners]
    if None in by_partner:
        lines.append(row(None, UNASSIGNED, None, by_partner[None]))
    total = FunnelRow(
        None,
        TOTAL,
        None,
        sum(r.imported for r in lines),
        sum(r.invited for r in lines),
        sum(r.online for r in lines),
        sum(r.verified for r in lines),
    )
    return FunnelReport(rows=tuple(lines), total=total)


def _dealers(report: FunnelReport) -> list[FunnelRow]:
    by_dealer: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in report.rows:
        sums = by_dealer[row.dealer_code or "-"]
        for i, value in enumerate((row.imported, row.invited, row.online, row.verified)):
            sums[i] += value
    return [
        FunnelRow(
            advisor_code=None, name=code, dealer_code=code, imported=v[0], invited=v[1], online=v[2], verified=v[3]
        )
        for code, v in sorted(by_dealer.items())
    ]


def _stages(base: int, retained: int, activated: int, referring: int, revenue: int, acquired: int) -> list[StageRate]:
    return [
        StageRate("retention", retained, base),
        StageRate("activation", activated, base),
        StageRate("referral", referring, base),
        StageRate("revenue", revenue, base),
        StageRate("acquisition", acquired, base),
    ]


def overview(session: Session, scope: Scope) -> Overview:
    """The funnel per partner and per dealer, and the RARRA stage rates among owners online:
    from the refreshed counts for an operator when there are some, else live."""
    scope.owners()  # refuses a supply-side scope
    as_of = counts.as_of(session) if scope.partner_id is None else None
    if as_of is not None:
        funnel_rows = counts.funnel_rows(session)
        report = _funnel_from_counts(session, funnel_rows)
        on = [c for c in counts.cell_rows(session) if c.online]
        stages = _stages(
            sum(c.owners for c in on),
            sum(c.owners for c in on if c.activity in ("active", "declining")),
            sum(c.owners for c in on if c.maturity in ("growing", "mature")),
            sum(c.referring for c in on),
            sum(c.revenue for c in on),
            sum(r.acquired for r in funnel_rows),
        )
        return Overview(report, _dealers(report), stages, as_of)
    report = funnel(session, scope)
    online = is_online()
    totals = session.execute(
        sa_select(
            func.coalesce(func.sum(case((online, 1), else_=0)), 0),
            func.coalesce(func.sum(case((online & col(Owner.activity).in_(("active", "declining")), 1), else_=0)), 0),
            func.coalesce(func.sum(case((online & col(Owner.maturity).in_(("growing", "mature")), 1), else_=0)), 0),
            func.coalesce(func.sum(case((online & (col(Owner.referral_count) > 0), 1), else_=0)), 0),
            func.coalesce(func.sum(case((online & (col(Owner.service_visits) > 0), 1), else_=0)), 0),
        ).where(*scope.owners())
    ).one()
    base, retained, activated, referring, revenue = (int(v or 0) for v in totals)
    referred = (
        select(func.count())
        .select_from(Referral)
        .join(Owner, col(Owner.id) == col(Referral.referrer_owner_id))
        .where(col(Referral.status) == ReferralStatus.approved.value, *scope.owners())
    )
    acquired = int(session.exec(referred).one() or 0)
    return Overview(report, _dealers(report), _stages(base, retained, activated, referring, revenue, acquired))


# --- matrix, drill-down, movement ------------------------------------------------------------


def matrix(session: Session, scope: Scope, product_line: str | None) -> MatrixReport:
    """Owners per cell: an operator's from the refreshed counts when there are some, else live."""
    scope.owners()  # refuses a supply-side scope
    if scope.partner_id is None and counts.as_of(session) is not None:
        cells: dict[tuple[str, str], int] = {}
        not_online = 0
        for c in counts.cell_rows(session, product_line):
            if c.online:
                cells[(c.maturity, c.activity)] = cells.get((c.maturity, c.activity), 0) + c.owners
            else:
                not_online += c.owners
        segments_at = session.execute(sa_select(func.max(col(SegmentRun.at)))).scalar()
        return MatrixReport(ScopeLabel("all"), product_line, cells, not_online, segments_at)
    return matrix_report(session, MatrixScope(partner_id=scope.partner_id, product_line=product_line))


def counts_as_of(session: Session, scope: Scope) -> datetime | None:
    """When the counts an overview or a matrix of this scope shows were taken (None: live)."""
    return counts.as_of(session) if scope.partner_id is None else None


@dataclass(frozen=True)
class OwnerLine:
    id: int
    name: str
    phone: str
    vin: str
    partner: str
    stage: str
    cell: str
    last_active_at: datetime | None


def cell_owners(
    session: Session, scope: Scope, product_line: str | None, cell: str, page: int = 1, size: int = 50
) -> Page:
    """The owners of one matrix cell (``maturity/activity`` or ``not_online``), one page of them."""
    where = list(scope.owners())
    if product_line:
        where.append(col(Owner.product_line) == product_line)
    if cell == NOT_ONLINE:
        where.append(~is_online())
    else:
        maturity, _, activity = cell.partition("/")
        if maturity not in MATURITIES or activity not in ACTIVITIES:
            raise ValueError(f"no cell {cell!r}")
        where += [is_online(), col(Owner.maturity) == maturity, col(Owner.activity) == activity]
    total = int(session.exec(select(func.count()).select_from(Owner).where(*where)).one())
    page, offset = page_bounds(page, size)
    vin = (
        select(func.min(col(Vehicle.vin)))
        .where(col(Vehicle.owner_id) == col(Owner.id))
        .correlate(Owner)
        .scalar_subquery()
    )
    rows = session.execute(
        sa_select(
            col(Owner.id),
            col(Owner.name),
            col(Owner.phone),
            vin,
            col(Partner.name),
            col(Owner.stage),
            col(Owner.maturity),
            col(Owner.activity),
            col(Owner.last_active_at),
        )
        .outerjoin(Partner, col(Partner.id) == col(Owner.partner_id))
        .where(*where)
        .order_by(col(Owner.id))
        .offset(offset)
        .limit(size)
    ).all()
    items = [
        OwnerLine(
            id=r[0],
            name=r[1] or "",
            phone=(mask(r[2]) if scope.masked else (r[2] or "")),
            vin=(mask_vin(r[3]) if scope.masked and r[3] else (r[3] or "")),
            partner=r[4] or "",
            stage=r[5],
            cell=cell,
            last_active_at=r[8],
        )
        for r in rows
    ]
    return Page(items, total, page, size)


def movement(session: Session, scope: Scope, product_line: str | None, now: datetime, days: int = 30) -> MovementReport:
    return movement_report(
        session, MatrixScope(partner_id=scope.partner_id, product_line=product_line), now - timedelta(days=days), now
    )


def movement_by_week(session: Session, scope: Scope, now: datetime, weeks: int = 8) -> list[tuple[str, int, int]]:
    """(week start, moves up, moves down) per week: a move is up when it lands in a livelier
    activity or a higher maturity."""
    start = now - timedelta(weeks=weeks)
    from storage.models import SegmentTransition as T

    rows = session.execute(
        sa_select(col(T.at), col(T.from_maturity), col(T.from_activity), col(T.to_maturity), col(T.to_activity))
        .join(Owner, col(Owner.id) == col(T.owner_id))
        .where(col(T.at) >= start, *scope.owners())
    ).all()
    up: Counter[int] = Counter()
    down: Counter[int] = Counter()
    for at, fm, fa, tm, ta in rows:
        week = int((at - start).total_seconds() // (7 * 86400))
        score = (MATURITIES.index(tm) - MATURITIES.index(fm)) if tm in MATURITIES and fm in MATURITIES else 0
        score += (ACTIVITIES.index(fa) - ACTIVITIES.index(ta)) if fa in ACTIVITIES and ta in ACTIVITIES else 0
        if score > 0:
            up[week] += 1
        elif score < 0:
            down[week] += 1
    return [((start + timedelta(weeks=w)).date().isoformat(), up[w], down[w]) for w in range(weeks)]


# --- flows ----------------------------------------------------------------------------------


@dataclass
class FlowFunnel:
    flow_key: str
    entered: int = 0
    sent: int = 0
    goal_reached: int = 0
    exited: int = 0
    done: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # inside a run: runs per reason
    refused: dict[str, int] = field(default_factory=dict)  # at the entry (no run): owners per reason


_FUNNEL_OUTCOMES = {
    "entered": "entered",
    "queued": "sent",
    "goal_reached": "goal_reached",
    "exited": "exited",
    "done": "done",
}


def flow_funnels(session: Session, scope: Scope) -> list[FlowFunnel]:
    """Each flow's step funnel from ``flow_run_log`` (two GROUP BYs).

    The log has a row per step outcome, and a run writes several of one kind (a push queued
    at two steps, a retried step's "already in the outbox", a step skipped on every pass), so
    every figure of a run counts ``DISTINCT run_id``: each owner once per run. An entry the
    rules refused has no run (``run_id`` NULL, one row per entry attempt): those count
    ``DISTINCT owner_id`` per reason, in their own column, never mixed into the runs' figures."""
    L = FlowRunLog
    refused = col(L.run_id).is_(None)
    unit = case((refused, col(L.owner_id)), else_=col(L.run_id))
    rows = session.execute(
        sa_select(col(L.flow_key), col(L.outcome), col(L.reason), refused, func.count(distinct(unit)))
        .join(Owner, col(Owner.id) == col(L.owner_id))
        .where(col(L.outcome).in_(("skipped", "suppressed")), *scope.owners())
        .group_by(col(L.flow_key), col(L.outcome), col(L.reason), refused)
    ).all()
    funnels: dict[str, FlowFunnel] = {}
    for key, outcome, reason, no_run, n in rows:
        f = funnels.setdefault(key, FlowFunnel(key))
        label = (reason or outcome)[:60]
        bucket = f.refused if no_run else f.skipped
        bucket[label] = bucket.get(label, 0) + int(n)
    for key, outcome, n in session.exec(
        select(col(L.flow_key), col(L.outcome), func.count(distinct(col(L.run_id))))
        .join(Owner, col(Owner.id) == col(L.owner_id))
        .where(col(L.outcome).in_(tuple(_FUNNEL_OUTCOMES)), ~refused, *scope.owners())
        .group_by(col(L.flow_key), col(L.outcome))
    ).all():
        setattr(funnels.setdefault(key, FlowFunnel(key)), _FUNNEL_OUTCOMES[outcome], int(n))
    return sorted(funnels.values(), key=lambda f: f.flow_key)


# --- campaigns ------------------------------------------------------------------------------


def campaign_page(
    session: Session, scope: Scope, page: int = 1, size: int = 20, *, window_days: int = 7, min_group: int = 30
) -> Page:
    """Campaigns newest first with their results (the same ``stats`` as the bot's /campaigns)."""
    where = [] if scope.partner_id is None else [col(Campaign.partner_id) == scope.partner_id]
    total = int(session.exec(select(func.count()).select_from(Campaign).where(*where)).one())
    page, offset = page_bounds(page, size)
    rows = session.exec(
        select(Campaign, col(Partner.name))
        .join(Partner, col(Partner.id) == col(Campaign.partner_id))
        .where(*where)
        .order_by(col(Campaign.id).desc())
        .offset(offset)
        .limit(size)
    ).all()
    items = [(name, campaign_service.stats(session, c, window_days, min_group)) for c, name in rows]
    return Page(items, total, page, size)


# --- delivery, churn, gifts, referrals ------------------------------------------------------


@dataclass(frozen=True)
class DeliveryHealth:
    queue: dict[str, int]  # message class -> pending now
    sent: int
    failed: dict[str, int]
    skipped: dict[str, int]
    wait_p50_s: float | None
    wait_p95_s: float | None


def delivery_health(session: Session, scope: Scope, now: datetime, timezone: str, days: int = 7) -> DeliveryHealth:
    where = [] if scope.partner_id is None else [col(OutboxMessage.partner_id) == scope.partner_id]
    queue = {
        k: int(n)
        for k, n in session.exec(
            select(col(OutboxMessage.message_class), func.count())
            .where(col(OutboxMessage.status).in_(("pending", "sending")), *where)
            .group_by(col(OutboxMessage.message_class))
        ).all()
    }
    if scope.partner_id is not None:
        # the per-day report spans every partner; a partner sees their own queue only
        return DeliveryHealth(queue, 0, {}, {}, None, None)
    report = delivery_report(session, now=now, days=days, timezone=timezone)
    failed: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    waits: list[float] = []
    for row in report.rows:
        failed.update(row.failed)
        skipped.update(row.skipped)
        waits.extend(row.wait_s)
    return DeliveryHealth(
        queue,
        sum(r.sent for r in report.rows),
        dict(failed),
        dict(skipped),
        percentile(waits, 50),
        percentile(waits, 95),
    )


def best_hour_engagement(
    session: Session, scope: Scope, now: datetime, best: BestHour, min_group: int, days: int = 30
) -> Comparison:
    """Best-hour owners against the plain-schedule share (issue 15, item 5): marketing pushes
    followed by a meaningful event within 24 h, in the scope's pushes of the last ``days``."""
    return best_hour_report.engagement(session, now, best, days=days, min_group=min_group, partner_id=scope.partner_id)


def churn(session: Session, scope: Scope, now: datetime, days: int = 90) -> winback.ChurnReasons:
    return winback.churn_reasons(session, scope.partner_id, since=now - timedelta(days=days), until=now)


@dataclass(frozen=True)
class GiftLine:
    gift_type: str
    granted: int
    redeemed: int
    expired: int


def gifts(session: Session, scope: Scope, now: datetime) -> list[GiftLine]:
    rows = session.exec(
        select(
            col(GiftGrant.gift_type),
            func.count(),
            func.sum(case((col(GiftGrant.redeemed_at).is_not(None), 1), else_=0)),
            func.sum(case(((col(GiftGrant.redeemed_at).is_(None)) & (col(GiftGrant.expires_at) < now), 1), else_=0)),
        )
        .join(Owner, col(Owner.id) == col(GiftGrant.owner_id))
        .where(*scope.owners())
        .group_by(col(GiftGrant.gift_type))
        .order_by(col(GiftGrant.gift_type))
    ).all()
    return [GiftLine(t, int(n), int(r or 0), int(e or 0)) for t, n, r, e in rows]


def referrals(session: Session, scope: Scope, limit: int = 20) -> tuple[dict[str, int], list[tuple[str, str, int]]]:
    """Referrals by status, and the leaderboard (owner name, partner, approved)."""
    by_status = {
        s: int(n)
        for s, n in session.exec(
            select(col(Referral.status), func.count())
            .join(Owner, col(Owner.id) == col(Referral.referrer_owner_id))
            .where(*scope.owners())
            .group_by(col(Referral.status))
        ).all()
    }
    n = func.count(col(Referral.id)).label("n")
    leaders = session.exec(
        select(col(Owner.name), col(Partner.name), n)
        .join(Referral, col(Referral.referrer_owner_id) == col(Owner.id))
        .outerjoin(Partner, col(Partner.id) == col(Owner.partner_id))
        .where(col(Referral.status) == ReferralStatus.approved.value, *scope.owners())
        .group_by(col(Owner.id), col(Owner.name), col(Partner.name))
        .order_by(n.desc(), col(Owner.id))
        .limit(limit)
    ).all()
    return by_status, [(a or "", b or "", int(c)) for a, b, c in leaders]


# --- one owner ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str  # event | message | flow | gift
    what: str
    detail: str = ""


def owner_in_scope(session: Session, scope: Scope, owner_id: int) -> Owner | None:
    scope.owners()  # refuses a supply-side scope
    owner = session.get(Owner, owner_id)
    if owner is None or (scope.partner_id is not None and owner.partner_id != scope.partner_id):
        return None
    return owner


def timeline(session: Session, owner_id: int, limit: int = 200) -> list[TimelineItem]:
    """An owner's events, messages, flow runs and gifts, newest first (each source capped)."""
    items: list[TimelineItem] = []
    for kind, at in session.exec(
        select(col(Event.kind), col(Event.at))
        .where(col(Event.owner_id) == owner_id)
        .order_by(col(Event.at).desc())
        .limit(limit)
    ).all():
        items.append(TimelineItem(at, "event", kind))
    for cls, status, reason, at, sent_at in session.execute(
        sa_select(
            col(OutboxMessage.message_class),
            col(OutboxMessage.status),
            col(OutboxMessage.reason),
            col(OutboxMessage.created_at),
            col(OutboxMessage.sent_at),
        )
        .where(col(OutboxMessage.owner_id) == owner_id)
        .order_by(col(OutboxMessage.id).desc())
        .limit(limit)
    ).all():
        items.append(TimelineItem(sent_at or at, "message", f"{cls}: {status}", reason or ""))
    for key, status, entered, end_reason in session.exec(
        select(col(FlowRun.flow_key), col(FlowRun.status), col(FlowRun.entered_at), col(FlowRun.end_reason))
        .where(col(FlowRun.owner_id) == owner_id)
        .order_by(col(FlowRun.id).desc())
        .limit(limit)
    ).all():
        items.append(TimelineItem(entered, "flow", f"{key}: {status}", end_reason or ""))
    for gift_type, granted, redeemed in session.exec(
        select(col(GiftGrant.gift_type), col(GiftGrant.granted_at), col(GiftGrant.redeemed_at)).where(
            col(GiftGrant.owner_id) == owner_id
        )
    ).all():
        items.append(TimelineItem(granted, "gift", gift_type, "redeemed" if redeemed else ""))
    items.sort(key=lambda i: i.at, reverse=True)
    return items[:limit]


def search_owners(session: Session, scope: Scope, query: str, page: int = 1, size: int = 50) -> Page:
    """Owners by name or reference (a prefix), paged; phones masked for partners."""
    where = list(scope.owners())
    q = query.strip()
    if q:  # a prefix, literally: % and _ typed in the box are characters, not wildcards
        prefix = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(col(Owner.name).like(prefix, escape="\\"), col(Owner.external_id).like(prefix, escape="\\")))
    total = int(session.exec(select(func.count()).select_from(Owner).where(*where)).one())
    page, offset = page_bounds(page, size)
    rows = session.exec(select(Owner).where(*where).order_by(col(Owner.id)).offset(offset).limit(size)).all()
    items = [
        OwnerLine(
            o.id or 0,
            o.name,
            mask(o.phone) if scope.masked else (o.phone or ""),
            "",
            "",
            o.stage,
            f"{o.maturity}/{o.activity}",
            o.last_active_at,
        )
        for o in rows
    ]
    return Page(items, total, page, size)
