"""Matching in waves, the atomic first acceptance, partner pushes and escalation.

* ``candidates``: verified commercial owners whose capacity fits the task (class, payload,
  volume), whose base is within both the wave's radius and their own working radius, who are
  available in the window, not opted out and not assigned to a task whose window overlaps.
  One query over the capacity table's covering index ``ix_capacity_match`` (class, the H3
  disk's cells as an ``IN`` list, payload, a lat/lng box) reads plain rows; they are scored in
  Python and only the best are checked against the owner table (primary-key lookups in ranked
  chunks), so no query walks all owners or all capacity.
* ``send_wave``: the best ``k`` of those not offered yet get the offer through the outbox
  (transactional, Accept / Decline buttons ``tk:<task>:a|d``). Earlier waves' offers stay
  open: whoever accepts first, of any wave, wins; they lapse when the task expires. Offers
  still queued in the outbox when the task is taken or cancelled are withdrawn
  (``withdraw_offers``: the outbox skips them with ``task_taken`` / ``task_cancelled``).
  ``waves_job`` sends the next, wider wave when a wave timed out (or everyone answered),
  escalates once when the waves are used up (partners of nearby owners and the operators
  are told) and expires tasks whose window started unassigned.
* ``accept``: one conditional UPDATE (``state = offered``, a pending offer of this owner, and
  no assigned or started task of this owner whose window overlaps), issued before any other
  write of the unit of work, so of fifty owners pressing at once exactly one wins on SQLite
  and PostgreSQL; the others get ``AlreadyTakenError``. One owner pressing Accept on two
  overlapping tasks gets one of them (``OverlappingTaskError`` for the other): on PostgreSQL
  the owner's row is locked first, so that owner's acceptances run one after the other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import String, and_, any_, bindparam, exists, or_, update
from sqlalchemy import select as sa_select  # sqlmodel's select() has overloads for up to 4 columns
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from flows.delivery.outbox import Push, cancel_topic, enqueue, job_scope
from flows.opportunities import geo, places, ranking, tasks
from flows.opportunities.demand import staff_chats
from flows.opportunities.errors import (
    AlreadyTakenError,
    OfferNotCurrentError,
    OverlappingTaskError,
    TaskNotFoundError,
)
from flows.opportunities.ranking import Candidate
from flows.templating import Renderer
from storage.clock import utcnow
from storage.db import rowcount
from storage.models import FunnelStage, MessageClass, Owner, Partner, ProductLine
from storage.opportunity_models import (
    Capacity,
    DemandAccount,
    OfferStatus,
    Task,
    TaskOffer,
    TaskState,
)

log = logging.getLogger(__name__)
OFFER_PREFIX = "tk"
#: The outbox topic of offers (subject ``task:<id>``): what ``withdraw_offers`` cancels.
OFFER_TOPIC = "task_offer"
#: Why a queued offer was not sent (the outbox row's reason).
WITHDRAWN_TAKEN = "task_taken"
WITHDRAWN_CANCELLED = "task_cancelled"


@dataclass(frozen=True)
class MatchPolicy:
    per_wave: int = 5
    wave_radii_km: tuple[float, ...] = (50.0, 150.0, 300.0)
    wave_timeout: timedelta = timedelta(minutes=15)
    operator_ids: tuple[int, ...] = ()

    def radius(self, wave: int) -> float:
        return self.wave_radii_km[min(max(wave, 1), len(self.wave_radii_km)) - 1]


def offer_buttons(renderer: Renderer, locale: str | None, task_id: int) -> list[list[dict[str, Any]]]:
    return [
        [
            {
                "text": renderer.render("opportunities/button_accept", locale, no_signature=True),
                "callback_data": f"{OFFER_PREFIX}:{task_id}:a",
            },
            {
                "text": renderer.render("opportunities/button_decline", locale, no_signature=True),
                "callback_data": f"{OFFER_PREFIX}:{task_id}:d",
            },
        ]
    ]


# --- candidates -----------------------------------------------------------------------------

#: The capacity columns a candidate needs: read as plain rows, never whole objects.
_CAPACITY_COLUMNS = (
    col(Capacity.id),
    col(Capacity.owner_id),
    col(Capacity.lat),
    col(Capacity.lon),
    col(Capacity.radius_km),
    col(Capacity.rating_sum),
    col(Capacity.rating_count),
    col(Capacity.offers),
    col(Capacity.accepted),
    col(Capacity.completed),
    col(Capacity.last_task_at),
)
#: Owners checked for eligibility per round trip while walking the ranked list.
_CHUNK = 50
#: Tasks that keep an assigned owner busy for their window.
_BUSY_STATES = (TaskState.assigned.value, TaskState.in_progress.value)


def _box(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    """A latitude/longitude box around the circle (generous by 1%), so the index trims the
    H3 disk's corners before any row is read."""
    dlat = radius_km * 1.01 / 110.574
    dlon = radius_km * 1.01 / (111.320 * max(math.cos(math.radians(lat)), 0.01))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def _among(session: Session, column: Any, values: list[str]) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY(:array)``, one parameter for a wide wave's
    hundreds of cells (the same index condition, without parsing and binding each one)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(String())))
    return column.in_(values)


def _degrees_per_km(lat: float, radius_km: float) -> tuple[float, float]:
    """Degrees of latitude and of longitude per km around ``lat``, generous by 1%; the
    longitude's taken at the edge of a ``radius_km`` band farthest from the equator, so a box
    of any radius up to ``radius_km`` built from them holds that whole circle."""
    edge = min(abs(lat) + radius_km * 1.01 / 110.574, 89.0)
    return 1.01 / 110.574, 1.01 / (111.320 * max(math.cos(math.radians(edge)), 0.01))


def _nearby(
    session: Session, task: Task, radius_km: float, exclude: set[int], only_partner: int | None = None
) -> list[Candidate]:
    """Capacity that fits the task within ``radius_km`` (and its own radius), without owners'
    details yet: one indexed query (class, H3 cells, payload, box) over the capacity table;
    with ``only_partner``, of that partner's owners only (so a partner's view never ranks
    everyone else's capacity)."""
    cells = geo.disk(task.pickup_h3, radius_km)
    lat0, lat1, lon0, lon1 = _box(task.pickup_lat, task.pickup_lon, radius_km)
    per_lat, per_lon = _degrees_per_km(task.pickup_lat, radius_km)
    own_radius = col(Capacity.radius_km)
    available = or_(
        and_(col(Capacity.available).is_(True), col(Capacity.busy_until).is_(None)),
        col(Capacity.busy_until) <= task.window_start,
    )
    query = sa_select(*_CAPACITY_COLUMNS).where(
        col(Capacity.vehicle_class) == task.vehicle_class,
        _among(session, col(Capacity.h3_cell), cells),
        col(Capacity.payload_t) >= task.payload_t,
        col(Capacity.lat).between(lat0, lat1),
        col(Capacity.lon).between(lon0, lon1),
        # and the box of the owner's own working radius: most of a wide wave's disk is out of
        # reach of owners who work 50 or 100 km around their base, and is not read into Python
        col(Capacity.lat).between(task.pickup_lat - own_radius * per_lat, task.pickup_lat + own_radius * per_lat),
        col(Capacity.lon).between(task.pickup_lon - own_radius * per_lon, task.pickup_lon + own_radius * per_lon),
        col(Capacity.volume_m3) >= task.volume_m3,
        col(Capacity.opted_out).is_(False),
        available,
    )
    if only_partner is not None:
        query = query.where(col(Capacity.owner_id).in_(_owners_of(only_partner)))
    found = []
    for cap_id, owner_id, lat, lon, radius, r_sum, r_count, offers, accepted, completed, last in session.execute(query):
        if owner_id in exclude:
            continue
        distance = geo.distance_km(task.pickup_lat, task.pickup_lon, lat, lon)
        reach = min(radius_km, float(radius))
        if distance > reach:
            continue
        found.append(
            Candidate(
                owner_id=owner_id,
                capacity_id=cap_id,
                distance_km=distance,
                reach_km=reach,
                rating_sum=r_sum,
                rating_count=r_count,
                offers=offers,
                accepted=accepted,
                completed=completed,
                last_task_at=last,
            )
        )
    return found


def _owners_of(partner_id: int) -> Any:
    return sa_select(col(Owner.id)).where(col(Owner.partner_id) == partner_id)


def _eligible(
    session: Session, task: Task, owner_ids: Sequence[int], only_partner: int | None
) -> dict[int, tuple[int | None, int | None, str, str | None]]:
    """Of ``owner_ids``, the verified, reachable commercial owners (of ``only_partner``) not
    already assigned to a task whose window overlaps this one: primary-key lookups."""
    if not owner_ids:
        return {}
    overlapping = exists().where(
        col(Task.assigned_owner_id) == col(Owner.id),
        col(Task.state).in_(_BUSY_STATES),
        col(Task.id) != task.id,
        col(Task.window_start) < task.window_end,
        col(Task.window_end) > task.window_start,
    )
    query = sa_select(
        col(Owner.id), col(Owner.partner_id), col(Owner.telegram_user_id), col(Owner.name), col(Owner.locale)
    ).where(
        col(Owner.id).in_(list(owner_ids)),
        col(Owner.product_line) == ProductLine.commercial.value,
        col(Owner.stage) == FunnelStage.verified.value,
        col(Owner.unreachable).is_(False),
        col(Owner.telegram_user_id).is_not(None),
        ~overlapping,
    )
    if only_partner is not None:
        query = query.where(col(Owner.partner_id) == only_partner)
    return {oid: (pid, chat, name, locale) for oid, pid, chat, name, locale in session.execute(query)}


def _with_owner(c: Candidate, info: tuple[int | None, int | None, str, str | None]) -> Candidate:
    partner_id, chat_id, name, locale = info
    return replace(c, partner_id=partner_id, chat_id=chat_id, name=name, locale=locale)


def best(
    session: Session,
    task: Task,
    radius_km: float,
    k: int,
    now: datetime,
    *,
    exclude: Sequence[int] = (),
    only_partner: int | None = None,
) -> list[tuple[float, Candidate]]:
    """The ``k`` best eligible owners: capacity ranked first (plain rows, scored in Python),
    then owners checked in ranked chunks until ``k`` pass, so only the top rows are read."""
    ranked = ranking.rank(_nearby(session, task, radius_km, set(exclude), only_partner), now)
    out: list[tuple[float, Candidate]] = []
    chunk = min(max(_CHUNK, 4 * k), 1000)
    for start in range(0, len(ranked), chunk):
        part = ranked[start : start + chunk]
        ok = _eligible(session, task, [c.owner_id for _, c in part], only_partner)
        out.extend((sc, _with_owner(c, ok[c.owner_id])) for sc, c in part if c.owner_id in ok)
        if len(out) >= k:
            break
    return out[:k]


def candidates(
    session: Session,
    task: Task,
    radius_km: float,
    *,
    exclude: Sequence[int] = (),
    only_partner: int | None = None,
) -> list[Candidate]:
    """Every eligible owner within ``radius_km`` of the pickup (see the module docstring)."""
    return [c for _, c in best(session, task, radius_km, 10**9, utcnow(), exclude=exclude, only_partner=only_partner)]


def offered_owner_ids(session: Session, task_id: int) -> list[int]:
    return list(session.exec(select(col(TaskOffer.owner_id)).where(col(TaskOffer.task_id) == task_id)))


# --- offers ---------------------------------------------------------------------------------


def _offer_push(renderer: Renderer, task: Task, c: Candidate, *, via_partner: str = "") -> Push:
    assert task.id is not None and c.chat_id is not None
    text = renderer.render(
        "opportunities/offer", c.locale, task=task_view(task), distance_km=round(c.distance_km), via_partner=via_partner
    )
    return Push(
        dedupe_key=f"task:{task.id}:offer:{c.owner_id}",
        chat_id=c.chat_id,
        text=text,
        message_class=MessageClass.transactional,
        owner_id=c.owner_id,
        buttons=offer_buttons(renderer, c.locale, task.id),
        expires_at=task.window_start,
        topic=OFFER_TOPIC,
        subject=f"task:{task.id}",
    )


def _make_offer(
    session: Session,
    renderer: Renderer,
    task: Task,
    c: Candidate,
    sc: float,
    rank_: int,
    now: datetime,
    *,
    via_partner_id: int | None = None,
    via_partner: str = "",
) -> None:
    assert task.id is not None
    session.add(
        TaskOffer(
            task_id=task.id,
            owner_id=c.owner_id,
            wave=task.wave,
            rank=rank_,
            score=round(sc, 4),
            distance_km=round(c.distance_km, 1),
            via_partner_id=via_partner_id,
            offered_at=now,
        )
    )
    session.exec(
        update(Capacity)
        .where(col(Capacity.id) == c.capacity_id)
        .values(offers=col(Capacity.offers) + 1)
        .execution_options(synchronize_session=False)
    )
    enqueue(session, _offer_push(renderer, task, c, via_partner=via_partner))


def withdraw_offers(session: Session, task_id: int, reason: str, now: datetime) -> None:
    """Offers of ``task_id`` still waiting in the outbox (or in a sender's hands, or put back
    after a 429) are not sent: the outbox's send-time screen skips them with ``reason``
    (``cancel_topic`` on the offers' topic and this task). Idempotent. A taken or cancelled
    task never goes back to offered, so no later offer of it is stopped by mistake."""
    cancel_topic(session, OFFER_TOPIC, f"task:{task_id}", reason, now)


def send_wave(session: Session, renderer: Renderer, task: Task, policy: MatchPolicy, now: datetime) -> int:
    """The next wave of offers for ``task``; returns how many owners got one."""
    assert task.id is not None
    wave = task.wave + 1
    radius = policy.radius(wave)
    chosen = best(session, task, radius, policy.per_wave, now, exclude=offered_owner_ids(session, task.id))
    source = task.state
    moved = session.exec(
        update(Task)
        .where(col(Task.id) == task.id, col(Task.state).in_(tasks.LIVE), col(Task.wave) == task.wave)
        .values(wave=wave, wave_at=now, state=TaskState.offered.value)
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        return 0  # another scheduler sent this wave
    session.refresh(task)
    if source != TaskState.offered.value:
        tasks.log(session, task.id, source, TaskState.offered, "system", f"wave {wave} ({radius:g} km)", now)
    for i, (sc, c) in enumerate(chosen, start=1):
        _make_offer(session, renderer, task, c, sc, i, now)
    return len(chosen)


def current_offer(session: Session, task_id: int, owner_id: int) -> TaskOffer | None:
    return session.exec(
        select(TaskOffer).where(
            col(TaskOffer.task_id) == task_id,
            col(TaskOffer.owner_id) == owner_id,
            col(TaskOffer.status) == OfferStatus.pending.value,
        )
    ).first()


@dataclass(frozen=True)
class Accepted:
    task_id: int
    owner_id: int
    demand_id: int
    partner_id: int | None


def _overlap(owner_id: int, task_id: int, start: Any, end: Any) -> tuple[Any, list[Any]]:
    """Another task of ``owner_id`` (an alias of the task table) and the conditions that make
    it assigned or started and overlapping ``start``–``end`` (columns of the task being
    accepted, or values)."""
    other = aliased(Task)
    return other, [
        col(other.assigned_owner_id) == owner_id,
        col(other.state).in_(_BUSY_STATES),
        col(other.id) != task_id,
        col(other.window_start) < end,
        col(other.window_end) > start,
    ]


def _lock_owner(session: Session, owner_id: int) -> None:
    """On PostgreSQL, hold the owner's row for the unit of work, so two acceptances by one
    owner (of two overlapping tasks) run one after the other: the second one's statement
    then sees the first one's assignment. SQLite has one writer at a time already (and a read
    before the first write would only make its transaction stale), so nothing is issued there."""
    if session.get_bind().dialect.name == "postgresql":
        session.exec(select(col(Owner.id)).where(col(Owner.id) == owner_id).with_for_update())


def accept(session: Session, renderer: Renderer, task_id: int, owner_id: int, now: datetime) -> Accepted:
    """First acceptance wins, and an owner never holds two tasks whose windows overlap: one
    compare-and-set (the task still offered, unassigned, this owner's offer pending, and no
    other assigned or started task of this owner overlapping its window), the unit of work's
    first write."""
    pending = exists().where(
        col(TaskOffer.task_id) == task_id,
        col(TaskOffer.owner_id) == owner_id,
        col(TaskOffer.status) == OfferStatus.pending.value,
    )
    _lock_owner(session, owner_id)
    won = session.exec(
        update(Task)
        .where(
            col(Task.id) == task_id,
            col(Task.state) == TaskState.offered.value,
            col(Task.assigned_owner_id).is_(None),
            pending,
            ~exists().where(*_overlap(owner_id, task_id, col(Task.window_start), col(Task.window_end))[1]),
        )
        .values(state=TaskState.assigned.value, assigned_owner_id=owner_id, assigned_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(won) != 1:
        _refused(session, task_id, owner_id, now)
    tasks.log(session, task_id, TaskState.offered.value, TaskState.assigned, f"owner:{owner_id}", "accepted", now)
    task = session.get(Task, task_id)
    assert task is not None
    session.refresh(task)
    offer = current_offer(session, task_id, owner_id)
    via = offer.via_partner_id if offer else None
    session.exec(
        update(TaskOffer)
        .where(col(TaskOffer.task_id) == task_id, col(TaskOffer.owner_id) == owner_id)
        .values(status=OfferStatus.accepted.value, answered_at=now)
        .execution_options(synchronize_session=False)
    )
    session.exec(
        update(TaskOffer)
        .where(col(TaskOffer.task_id) == task_id, col(TaskOffer.status) == OfferStatus.pending.value)
        .values(status=OfferStatus.lost.value, answered_at=now)
        .execution_options(synchronize_session=False)
    )
    withdraw_offers(session, task_id, WITHDRAWN_TAKEN, now)
    session.exec(
        update(Capacity)
        .where(col(Capacity.owner_id) == owner_id)
        .values(accepted=col(Capacity.accepted) + 1, last_task_at=now)
        .execution_options(synchronize_session=False)
    )
    owner = session.get(Owner, owner_id)
    partner_id = via or (owner.partner_id if owner else None)
    task.partner_id = partner_id
    session.add(task)
    _tell_accepted(session, renderer, task, owner, partner_id)
    return Accepted(task_id, owner_id, task.demand_id, partner_id)


def _refused(session: Session, task_id: int, owner_id: int, now: datetime) -> NoReturn:
    """Why the acceptance did not win, as the error the presser is told."""
    offer = session.exec(
        select(TaskOffer).where(col(TaskOffer.task_id) == task_id, col(TaskOffer.owner_id) == owner_id)
    ).first()
    if offer is None:
        raise OfferNotCurrentError("this offer is not yours", key="offer_not_current")
    row = session.execute(
        sa_select(col(Task.state), col(Task.assigned_owner_id), col(Task.window_start), col(Task.window_end)).where(
            col(Task.id) == task_id
        )
    ).first()
    state, taken, start, end = row if row is not None else (None, None, None, None)
    if offer.status in (OfferStatus.pending.value, OfferStatus.lost.value) and taken not in (None, owner_id):
        if offer.status == OfferStatus.pending.value:
            offer.status, offer.answered_at = OfferStatus.lost.value, now
            session.add(offer)
        raise AlreadyTakenError("already taken: another owner accepted first", key="already_taken")
    if offer.status == OfferStatus.pending.value and state == TaskState.offered.value and taken is None:
        other, overlapping = _overlap(owner_id, task_id, start, end)
        first = session.execute(
            sa_select(col(other.id)).where(*overlapping).order_by(col(other.window_start)).limit(1)
        ).scalar()
        if first is not None:
            raise OverlappingTaskError(
                f"you already have task {first} at that time", key="overlapping", other=int(first)
            )
    raise OfferNotCurrentError("this offer is no longer open", key="offer_not_current")


def owner_card(session: Session, owner_id: int) -> dict[str, Any]:
    owner = session.get(Owner, owner_id)
    cap = session.exec(select(Capacity).where(col(Capacity.owner_id) == owner_id)).first()
    partner = session.get(Partner, owner.partner_id) if owner and owner.partner_id else None
    return {
        "name": owner.name if owner else "",
        "vehicle_class": cap.vehicle_class if cap else "",
        "payload_t": cap.payload_t if cap else 0,
        "rating": round(ranking.bayes_rating(cap.rating_sum, cap.rating_count), 1) if cap else ranking.PRIOR_MEAN,
        "ratings": cap.rating_count if cap else 0,
        "partner_name": partner.name if partner else "",
        "phone": owner.phone if owner and owner.phone else "",
    }


def _tell_accepted(
    session: Session, renderer: Renderer, task: Task, owner: Owner | None, partner_id: int | None
) -> None:
    assert task.id is not None and owner is not None
    card = owner_card(session, owner.id or 0)
    for chat in staff_chats(session, task.demand_id):
        enqueue(
            session,
            Push(
                dedupe_key=f"task:{task.id}:assigned:demand:{chat}",
                chat_id=chat,
                text=renderer.render("opportunities/assigned_demand", None, task=task_view(task), owner=card),
                message_class=MessageClass.transactional,
                buttons=done_buttons(renderer, None, task.id),
            ),
        )
    partner = session.get(Partner, partner_id) if partner_id else None
    if partner and partner.active and partner.telegram_user_id:
        enqueue(
            session,
            Push(
                dedupe_key=f"task:{task.id}:assigned:partner",
                chat_id=partner.telegram_user_id,
                partner_id=partner.id,
                message_class=MessageClass.transactional,
                text=renderer.render("opportunities/deal_partner", None, task=task_view(task), owner=card),
            ),
        )


#: The assigned owner's Start button (``tks:<task>``): assigned → in_progress.
START_PREFIX = "tks"


def owner_task_buttons(renderer: Renderer, locale: str | None, task_id: int) -> list[list[dict[str, Any]]]:
    """Done and Start, under the assigned owner's confirmation (Done stays the first button,
    where it was before Start existed: the demo presses it there)."""
    start = {
        "text": renderer.render("opportunities/button_start", locale, no_signature=True),
        "callback_data": f"{START_PREFIX}:{task_id}",
    }
    return [[*done_buttons(renderer, locale, task_id)[0], start]]


def done_buttons(renderer: Renderer, locale: str | None, task_id: int) -> list[list[dict[str, Any]]]:
    return [
        [
            {
                "text": renderer.render("opportunities/button_done", locale, no_signature=True),
                "callback_data": f"tkd:{task_id}",
            }
        ]
    ]


def decline(session: Session, task_id: int, owner_id: int, now: datetime) -> None:
    done = session.exec(
        update(TaskOffer)
        .where(
            col(TaskOffer.task_id) == task_id,
            col(TaskOffer.owner_id) == owner_id,
            col(TaskOffer.status) == OfferStatus.pending.value,
        )
        .values(status=OfferStatus.declined.value, answered_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(done) != 1:
        raise OfferNotCurrentError("this offer is no longer open")


# --- partners as matchmakers ----------------------------------------------------------------


@dataclass(frozen=True)
class NearbyTask:
    task: dict[str, Any]
    candidates: list[dict[str, Any]] = field(default_factory=list)


#: Live tasks a partner's ``/tasks`` looks through (newest first) for ones near their owners.
NEAR_SCAN = 200
#: Suggested owners shown per task.
NEAR_SUGGESTED = 5


def _partner_cells(session: Session, partner_id: int) -> dict[str, set[str]]:
    """Vehicle class -> the H3 cells of this partner's owners' capacity (not paused): one read,
    so tasks no owner of theirs could fit are passed over without a query."""
    cells: dict[str, set[str]] = {}
    for cls, cell in session.execute(
        sa_select(col(Capacity.vehicle_class), col(Capacity.h3_cell)).where(
            col(Capacity.owner_id).in_(_owners_of(partner_id)),
            col(Capacity.opted_out).is_(False),
            col(Capacity.h3_cell).is_not(None),
        )
    ):
        cells.setdefault(cls, set()).add(cell)
    return cells


def tasks_near_partner(
    session: Session, partner_id: int, now: datetime, *, policy: MatchPolicy = MatchPolicy(), limit: int = 10
) -> list[NearbyTask]:
    """Open tasks with at least one fitting owner of this partner, with their best owners
    ranked (``best(..., k=NEAR_SUGGESTED, only_partner=...)``: a bounded query over this
    partner's capacity near the pickup, for the tasks whose class and H3 disk meet some of it)."""
    radius = policy.wave_radii_km[-1]
    reach = _partner_cells(session, partner_id)
    if not reach:
        return []
    out = []
    live = session.exec(
        select(Task)
        .where(col(Task.state).in_(tasks.LIVE), col(Task.window_end) > now)
        .order_by(col(Task.id).desc())
        .limit(NEAR_SCAN)
    )
    for task in live:
        assert task.id is not None
        cells = reach.get(task.vehicle_class)
        if not cells or cells.isdisjoint(geo.disk(task.pickup_h3, radius)):
            continue
        ranked = best(session, task, radius, NEAR_SUGGESTED, now, only_partner=partner_id)
        if not ranked:
            continue
        offered = set(offered_owner_ids(session, task.id))
        out.append(
            NearbyTask(
                task_view(task),
                [
                    {
                        "owner_id": c.owner_id,
                        "name": c.name,
                        "distance_km": round(c.distance_km),
                        "score": round(sc, 2),
                        "offered": c.owner_id in offered,
                    }
                    for sc, c in ranked
                ],
            )
        )
        if len(out) >= limit:
            break
    return out


def partner_push(
    session: Session,
    renderer: Renderer,
    partner_id: int,
    task_id: int,
    owner_id: int,
    now: datetime,
    policy: MatchPolicy = MatchPolicy(),
) -> None:
    """The partner hands a task to one of their owners by hand; the owner must fit it."""
    task = session.get(Task, task_id)
    if task is None or task.state not in tasks.LIVE:
        raise TaskNotFoundError(f"task {task_id} is not open")
    fits = [
        c
        for c in candidates(session, task, policy.wave_radii_km[-1], only_partner=partner_id)
        if c.owner_id == owner_id
    ]
    if not fits:
        raise OfferNotCurrentError(f"owner {owner_id} is not one of yours who fits task {task_id}")
    if owner_id in offered_owner_ids(session, task_id):
        raise OfferNotCurrentError(f"owner {owner_id} already has this offer")
    if task.state == TaskState.open.value:
        tasks.move(
            session,
            task_id,
            TaskState.offered,
            actor=f"partner:{partner_id}",
            reason="pushed by partner",
            now=now,
            sources=[TaskState.open.value],
            wave_at=now,
        )
        session.refresh(task)
    partner = session.get(Partner, partner_id)
    c = fits[0]
    _make_offer(
        session,
        renderer,
        task,
        c,
        ranking.score(c, now),
        0,
        now,
        via_partner_id=partner_id,
        via_partner=partner.name if partner else "",
    )


# --- the scheduler job ----------------------------------------------------------------------


def _escalate(session: Session, renderer: Renderer, task: Task, policy: MatchPolicy, now: datetime) -> None:
    assert task.id is not None
    moved = session.exec(
        update(Task)
        .where(col(Task.id) == task.id, col(Task.escalated_at).is_(None))
        .values(escalated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        return
    session.refresh(task)
    view = task_view(task)
    cells = geo.disk(task.pickup_h3, policy.wave_radii_km[-1])
    partners = session.exec(
        select(col(Partner.id), col(Partner.telegram_user_id))
        .distinct()
        .join(Owner, col(Owner.partner_id) == col(Partner.id))
        .join(Capacity, col(Capacity.owner_id) == col(Owner.id))
        .where(
            col(Capacity.h3_cell).in_(cells), col(Partner.active).is_(True), col(Partner.telegram_user_id).is_not(None)
        )
    )
    for pid, chat in partners:
        if chat is None:  # excluded by the query (telegram_user_id IS NOT NULL)
            continue
        enqueue(
            session,
            Push(
                dedupe_key=f"task:{task.id}:escalate:partner:{pid}",
                chat_id=chat,
                partner_id=pid,
                text=renderer.render("opportunities/escalate_partner", None, task=view),
                message_class=MessageClass.transactional,
            ),
        )
    for op in policy.operator_ids:
        enqueue(
            session,
            Push(
                dedupe_key=f"task:{task.id}:escalate:operator:{op}",
                chat_id=op,
                text=renderer.render("opportunities/escalate_operator", None, task=view),
                message_class=MessageClass.transactional,
            ),
        )
    tasks.log(session, task.id, task.state, TaskState(task.state), "system", "escalated to partners and operators", now)


def _expire(session: Session, renderer: Renderer, task: Task, now: datetime) -> None:
    assert task.id is not None
    if not tasks.move(
        session,
        task.id,
        TaskState.expired,
        actor="system",
        reason="window started unassigned",
        now=now,
        sources=list(tasks.LIVE),
    ):
        return
    session.exec(
        update(TaskOffer)
        .where(col(TaskOffer.task_id) == task.id, col(TaskOffer.status) == OfferStatus.pending.value)
        .values(status=OfferStatus.lapsed.value, answered_at=now)
        .execution_options(synchronize_session=False)
    )
    for chat in staff_chats(session, task.demand_id):
        enqueue(
            session,
            Push(
                dedupe_key=f"task:{task.id}:expired:{chat}",
                chat_id=chat,
                text=renderer.render("opportunities/expired_demand", None, task=task_view(task)),
                message_class=MessageClass.transactional,
            ),
        )


def cancel_task(
    session: Session, renderer: Renderer, task_id: int, demand_id: int, *, actor: str, now: datetime
) -> None:
    """The demand side withdraws a task: the move to ``cancelled`` (``tasks.cancel``), its
    open offers closed as lost and their queued messages withdrawn, and the owner who had it
    (if any) and that owner's partner told."""
    tasks.cancel(session, task_id, demand_id, actor=actor, now=now)
    session.exec(
        update(TaskOffer)
        .where(col(TaskOffer.task_id) == task_id, col(TaskOffer.status) == OfferStatus.pending.value)
        .values(status=OfferStatus.lost.value, answered_at=now)
        .execution_options(synchronize_session=False)
    )
    withdraw_offers(session, task_id, WITHDRAWN_CANCELLED, now)
    task = tasks.get_task(session, task_id)
    owner = session.get(Owner, task.assigned_owner_id) if task.assigned_owner_id else None
    if owner is None:
        return
    view = task_view(task)
    if owner.telegram_user_id:
        enqueue(
            session,
            Push(
                dedupe_key=f"task:{task_id}:cancelled:owner",
                chat_id=owner.telegram_user_id,
                owner_id=owner.id,
                text=renderer.render("opportunities/cancelled_owner", owner.locale, task=view),
                message_class=MessageClass.transactional,
            ),
        )
    partner_id = task.partner_id or owner.partner_id
    partner = session.get(Partner, partner_id) if partner_id else None
    if partner and partner.active and partner.telegram_user_id:
        enqueue(
            session,
            Push(
                dedupe_key=f"task:{task_id}:cancelled:partner",
                chat_id=partner.telegram_user_id,
                partner_id=partner.id,
                text=renderer.render("opportunities/cancelled_partner", None, task=view, owner_name=owner.name),
                message_class=MessageClass.transactional,
            ),
        )


def run_waves(session: Session, renderer: Renderer, policy: MatchPolicy, now: datetime) -> dict[str, int]:
    """One pass: first waves for new tasks, next waves after a timeout, escalation, expiry."""
    counts = {"waves": 0, "offers": 0, "escalated": 0, "expired": 0}
    live = list(session.exec(select(Task).where(col(Task.state).in_(tasks.LIVE)).order_by(col(Task.id))))
    # One query for the whole pass, not one per task: each step below only touches its own task's offers.
    with_pending = set(
        session.exec(
            select(col(TaskOffer.task_id))
            .where(col(TaskOffer.task_id).in_([t.id for t in live]), col(TaskOffer.status) == OfferStatus.pending.value)
            .distinct()
        )
    )
    for task in live:
        assert task.id is not None
        if task.window_start <= now:
            _expire(session, renderer, task, now)
            counts["expired"] += 1
            continue
        pending = task.id in with_pending
        due = task.wave == 0 or task.wave_at is None or now >= task.wave_at + policy.wave_timeout or not pending
        if not due:
            continue
        if task.wave >= len(policy.wave_radii_km):
            if task.escalated_at is None and (not pending or now >= (task.wave_at or now) + policy.wave_timeout):
                _escalate(session, renderer, task, policy, now)
                counts["escalated"] += 1
            continue
        counts["offers"] += send_wave(session, renderer, task, policy, now)
        counts["waves"] += 1
    return counts


def waves_job(renderer: Renderer, policy: MatchPolicy) -> Callable[[Any], dict[str, int]]:
    def job(ctx: Any) -> dict[str, int]:
        with job_scope(ctx) as session:
            return run_waves(session, renderer, policy, ctx.now)

    return job


# --- views ----------------------------------------------------------------------------------


#: The dealers' calendar for the window shown in messages (the bot's TIMEZONE default).
DISPLAY_ZONE = "Asia/Shanghai"


def task_view(task: Task, timezone: str = DISPLAY_ZONE) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    return {
        "id": task.id,
        "pickup": task.pickup_text,
        "dropoff": task.dropoff_text,
        "pickup_place": places.describe(task.pickup_adcode),
        "dropoff_place": places.describe(task.dropoff_adcode),
        "window_start": task.window_start.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "window_end": task.window_end.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "vehicle_class": task.vehicle_class,
        "payload_t": task.payload_t,
        "volume_m3": task.volume_m3,
        "price": None if task.price_cents is None else task.price_cents / 100,
        "notes": task.notes,
        "state": task.state,
        "wave": task.wave,
    }


def demand_name(session: Session, demand_id: int) -> str:
    account = session.get(DemandAccount, demand_id)
    return account.company if account else ""
