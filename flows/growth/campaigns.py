"""Partner campaigns: one push to some matrix cells of a partner's own owners, with a
sticky holdout (control group) so that the report can show the uplift on the goal event.

Life of a campaign: ``create`` (draft) → ``preview`` (audience count) → ``schedule`` (send at a
time; the bot also books a one-off scheduler job) or ``send`` now → ``done``; ``cancel`` while
pending. Sending records every picked owner as a ``CampaignMember`` (treated or holdout) and
enqueues one marketing push per treated owner with topic ``campaign:<id>``, so the outbox
applies quiet hours and the frequency cap and a later ``cancel`` suppresses what is still
queued. Who is in the holdout depends only on the owner and the partner (a hash), so the same
owner is control in every campaign of that partner.

Only an active partner's campaign goes out (issue 11, item 4): ``cancel_partner_campaigns``
cancels what a cut-off or handed-over partner left pending, and ``send`` and ``send_due`` pass
over a campaign whose partner is inactive.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import escape
from sqlalchemy import and_, false, func, or_, update
from sqlalchemy import select as sa_select  # sqlmodel's select() has overloads for up to 4 columns
from sqlmodel import Session, col, select

from flows.delivery.outbox import Push, Varying, cancel_topic, enqueue, enqueue_alike, job_scope
from flows.engine.flow_spec import ACTIVITIES, MATURITIES
from flows.errors import AutoCircleError, InvalidInputError, NotFoundError
from flows.growth.uplift import Comparison
from flows.templating import Renderer
from storage import outbox as outbox_store
from storage.campaign_models import PENDING_STATUSES, Campaign, CampaignMember, CampaignStatus
from storage.db import rowcount, table_of
from storage.delivery_models import OwnerPreference
from storage.events import EventKind
from storage.models import Event, FunnelStage, MessageClass, OutboxMessage, Owner, Partner

CELLS = tuple(f"{m}/{a}" for a in ACTIVITIES for m in MATURITIES)  # activity-major: the keyboard's rows
CUSTOM_TEMPLATE = "campaigns/custom"
READY_TEMPLATES = ("campaigns/service_check", "campaigns/weekend_drive", "campaigns/member_day")
DEFAULT_GOALS = (EventKind.booking.value, EventKind.gift_redeemed.value)
DEFAULT_HOLDOUT_PERCENT = 10
DEFAULT_WINDOW_DAYS = 7  # CAMPAIGNS__CONVERSION_WINDOW_DAYS
DEFAULT_MIN_GROUP = 30  # CONSOLE__MIN_GROUP
MAX_WINDOW_DAYS = 90
MAX_TEXT = 2000
SEND_TASK = "campaigns.send"


class CampaignError(AutoCircleError):
    """A campaign cannot do what was asked (not pending, nothing picked, ...)."""


class CampaignNotFoundError(NotFoundError):
    """No such campaign among this partner's campaigns."""


def topic_of(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


def job_id(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


def is_holdout(owner_id: int, partner_id: int, percent: int = DEFAULT_HOLDOUT_PERCENT) -> bool:
    """Sticky control membership: the same owner is control for the same partner every time."""
    return holdouts([owner_id], partner_id, percent)[0]


def holdouts(owner_ids: Sequence[int], partner_id: int, percent: int = DEFAULT_HOLDOUT_PERCENT) -> list[bool]:
    """``is_holdout`` of each owner (a campaign's batch at once): the first 8 bytes of
    ``sha256("holdout:<partner id>:<owner id>")``, big-endian, modulo 100, below ``percent``."""
    prefix, sha256, from_bytes = b"holdout:%d:" % partner_id, hashlib.sha256, int.from_bytes
    return [from_bytes(sha256(prefix + b"%d" % oid).digest()[:8], "big") % 100 < percent for oid in owner_ids]


# --- building -----------------------------------------------------------------------------


def create(
    session: Session,
    partner_id: int,
    cells: list[str],
    now: datetime,
    *,
    template: str | None = None,
    text: str | None = None,
    product_line: str | None = None,
    goal_events: list[str] | None = None,
    holdout_percent: int = DEFAULT_HOLDOUT_PERCENT,
    window_days: int | None = None,
) -> Campaign:
    """A draft. Either a ready ``template`` or the partner's own ``text`` (shown escaped).
    ``window_days``: its own conversion window (None: the setting's, when the report is made)."""
    bad = [c for c in cells if c not in CELLS]
    if not cells or bad:
        raise InvalidInputError(f"pick at least one cell (unknown: {', '.join(bad) or '-'})")
    if text is not None:
        text = text.strip()[:MAX_TEXT]
        if not text:
            raise InvalidInputError("the campaign text is empty")
        template = CUSTOM_TEMPLATE
    elif template not in READY_TEMPLATES:
        raise InvalidInputError(f"unknown campaign template {template!r}")
    if not 0 <= holdout_percent < 100:
        raise InvalidInputError("holdout share must be between 0 and 99 percent")
    if window_days is not None and not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise InvalidInputError(f"the conversion window must be 1 to {MAX_WINDOW_DAYS} days")
    campaign = Campaign(
        partner_id=partner_id,
        cells=sorted(set(cells), key=CELLS.index),
        product_line=product_line,
        template=template,
        text=text,
        status=CampaignStatus.draft,
        goal_events=list(goal_events or DEFAULT_GOALS),
        holdout_percent=holdout_percent,
        conversion_window_days=window_days,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    session.flush()
    return campaign


def get(session: Session, partner_id: int | None, campaign_id: int) -> Campaign:
    """The campaign if it is this partner's (``None``: any, for operators)."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or (partner_id is not None and campaign.partner_id != partner_id):
        raise CampaignNotFoundError(f"no campaign #{campaign_id} among yours")
    return campaign


def _reachable(partner_id: int, product_line: str | None) -> list[Any]:
    """Conditions for the partner's own owners who can be reached now: verified, linked to
    Telegram, not unreachable, not opted out of marketing (and of the line, if one is picked)."""
    conditions = [
        col(Owner.partner_id) == partner_id,
        col(Owner.stage) == FunnelStage.verified.value,
        col(Owner.telegram_user_id).is_not(None),
        col(Owner.unreachable) == False,  # noqa: E712
        col(Owner.opted_out) == False,  # noqa: E712
    ]
    if product_line:
        conditions.append(col(Owner.product_line) == product_line)
    return conditions


def audience(session: Session, campaign: Campaign) -> list[Owner]:
    """The reachable owners of the partner (see ``_reachable``) in the campaign's cells."""
    query = select(Owner).where(*_reachable(campaign.partner_id, campaign.product_line), _in_cells(campaign.cells))
    return list(session.exec(query.order_by(col(Owner.id))).all())


def product_lines(session: Session, partner_id: int) -> list[str]:
    """The product lines among the partner's owners: a choice to offer only when there are
    two or more (each line has its own matrix, DESIGN.md)."""
    rows = session.exec(
        select(col(Owner.product_line))
        .where(
            col(Owner.partner_id) == partner_id,
            col(Owner.product_line).is_not(None),
        )
        .distinct()
    ).all()
    return sorted(str(line) for line in rows if line)


def cell_counts(session: Session, partner_id: int, product_line: str | None = None) -> dict[str, int]:
    """Reachable owners per ``maturity/activity`` cell, drawn on the matrix keyboard."""
    rows = session.exec(
        select(col(Owner.maturity), col(Owner.activity), func.count())
        .where(*_reachable(partner_id, product_line))
        .group_by(col(Owner.maturity), col(Owner.activity))
    ).all()
    return {f"{m}/{a}": int(n) for m, a, n in rows if f"{m}/{a}" in CELLS}


@dataclass(frozen=True)
class Preview:
    campaign_id: int
    cells: list[str]
    product_line: str | None  # None: every line
    audience: int  # reachable owners in the cells
    holdout: int  # of them held out as control
    recipients: int  # audience minus holdout
    sample: str  # the message as the first recipient would see it (or in the default locale)


def preview(
    session: Session, renderer: Renderer, partner_id: int, campaign_id: int, locale: str | None = None
) -> Preview:
    campaign = get(session, partner_id, campaign_id)
    owners = audience(session, campaign)
    held = sum(holdouts([o.id or 0 for o in owners], campaign.partner_id, campaign.holdout_percent))
    sample = render(renderer, campaign, locale, owner_name=owners[0].name if owners else "")
    return Preview(
        campaign.id or 0, list(campaign.cells), campaign.product_line, len(owners), held, len(owners) - held, sample
    )


def render(renderer: Renderer, campaign: Campaign, locale: str | None, owner_name: str = "") -> str:
    return renderer.render(
        campaign.template or CUSTOM_TEMPLATE, locale, text=campaign.text or "", owner_name=owner_name
    )


def parse_send_time(value: str, now: datetime, timezone: str) -> datetime:
    """``HH:MM`` (today, or tomorrow when that time has passed) or ``YYYY-MM-DD HH:MM``, in the
    partner's local time zone; returns aware UTC. Times in the past are refused."""
    tz = ZoneInfo(timezone)
    local_now = now.astimezone(tz)
    value = " ".join(value.split())
    try:
        if len(value) <= 5:
            clock = time.fromisoformat(value.zfill(5))
            at = datetime.combine(local_now.date(), clock, tz)
            if at <= local_now:
                at += timedelta(days=1)
        else:
            at = datetime.strptime(value, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
    except ValueError as error:
        raise InvalidInputError("use HH:MM or YYYY-MM-DD HH:MM") from error
    if at <= local_now:
        raise InvalidInputError("that time has already passed")
    return at.astimezone(now.tzinfo)


def schedule(session: Session, partner_id: int | None, campaign_id: int, send_at: datetime, now: datetime) -> Campaign:
    """Confirm a draft for later; the caller books the job (``job_id``, ``SEND_TASK``)."""
    campaign = get(session, partner_id, campaign_id)
    if campaign.status not in (CampaignStatus.draft, CampaignStatus.scheduled):
        raise CampaignError(f"campaign #{campaign_id} is {campaign.status}")
    campaign.status = CampaignStatus.scheduled
    campaign.send_at = send_at
    campaign.updated_at = now
    session.flush()
    return campaign


@dataclass(frozen=True)
class Queued:
    """A campaign confirmed to go now: the job (``SEND_TASK``) plans it off the handler."""

    campaign_id: int
    audience: int  # reachable owners in the cells (one COUNT), the holdout among them
    holdout_percent: int


def confirm(
    session: Session,
    renderer: Renderer,
    partner_id: int,
    campaign_id: int,
    send_at: str | datetime | None,
    now: datetime,
) -> Queued | Campaign:
    """The partner's final yes: send now (``send_at`` None or past) or schedule for
    ``send_at``. "Now" never plans in the caller: the campaign becomes ``scheduled`` with no
    send time (``queue_now``) and the caller books ``SEND_TASK`` for it."""
    if send_at is None:
        return queue_now(session, partner_id, campaign_id, now)
    at = datetime.fromisoformat(send_at) if isinstance(send_at, str) else send_at
    if at <= now:
        return queue_now(session, partner_id, campaign_id, now)
    return schedule(session, partner_id, campaign_id, at, now)


def queue_now(
    session: Session, partner_id: int | None, campaign_id: int, now: datetime, *, fallback_due: bool = False
) -> Queued:
    """Mark a draft to be sent by the job at once (cheap: one UPDATE and one COUNT).
    ``fallback_due``: also give it a send time of ``now``, so that the every-minute
    ``send_due`` picks it up when no job can be booked."""
    campaign = get(session, partner_id, campaign_id)
    if campaign.status not in PENDING_STATUSES:
        raise CampaignError(f"campaign #{campaign_id} is {campaign.status}")
    campaign.status = CampaignStatus.scheduled
    campaign.send_at = now if fallback_due else None
    campaign.updated_at = now
    session.flush()
    count = session.execute(
        select(func.count())
        .select_from(Owner)
        .where(*_reachable(campaign.partner_id, campaign.product_line), _in_cells(campaign.cells))
    ).scalar_one()
    return Queued(campaign_id, int(count), campaign.holdout_percent)


def _in_cells(cells: list[str]) -> Any:
    """SQL: the owner's matrix cell is one of ``cells`` (``maturity/activity``)."""
    pairs = [cell.split("/", 1) for cell in cells if "/" in cell]
    if not pairs:
        return false()
    return or_(*(and_(col(Owner.maturity) == m, col(Owner.activity) == a) for m, a in pairs))


def local_time(at: datetime | None, timezone: str) -> str:
    return at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M") if at else ""


# --- sending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    campaign_id: int
    status: str
    treated: int = 0
    holdout: int = 0
    queued: int = 0


SEND_BATCH = 5_000  # owners planned per batch (and, in a job, per transaction)
SENDING_LEASE = timedelta(minutes=15)  # a campaign left ``sending`` this long was cut off: resume it


def cut_off(now: datetime) -> Any:
    """SQL: the campaign is ``sending`` but its heartbeat stopped ``SENDING_LEASE`` ago (the
    run was cut off; the next ``send`` may claim it)."""
    return and_(col(Campaign.status) == CampaignStatus.sending, col(Campaign.updated_at) < now - SENDING_LEASE)


_MEMBER_COLUMNS = ("campaign_id", "owner_id", "holdout", "dedupe_key", "extra")


def send(
    session: Session,
    renderer: Renderer,
    campaign_id: int,
    now: datetime,
    partner_id: int | None = None,
    *,
    commit_batches: bool = False,
) -> SendResult:
    """Pick the members and enqueue the pushes. Safe to run twice (members are unique per
    owner and pushes by dedupe key); a cancelled or finished campaign sends nothing.

    Set-based and in batches of ``SEND_BATCH`` owners (by owner id): each batch's audience is
    read as plain rows, its members go in by one ``executemany`` and its pushes through one
    ``enqueue_alike`` (``enqueue_many`` without a ``Push`` per owner); the text is rendered
    once per locale when the template only drops the owner's name in. Heavy for a big audience, so the bot runs it as a job (``SEND_TASK``),
    never inside a handler.

    ``commit_batches`` (the jobs, which own their session): the claim and every batch are
    committed on their own, so that on SQLite a handler's write waits at most one batch,
    and memory stays one batch's worth. A run cut off midway leaves the campaign ``sending``
    with its heartbeat (``updated_at``) stopped; after ``SENDING_LEASE`` the next run (the
    every-minute ``send_due``) claims it again and goes over the whole audience once more:
    owners already members keep their membership and owners whose push is queued keep that
    push (the dedupe key), so no one is sent twice and no one is skipped. A ``cancel`` while
    sending stops it at the next batch; what it queued is suppressed by the topic.
    """
    campaign = get(session, partner_id, campaign_id)
    claimed = rowcount(
        session.execute(  # a guarded UPDATE: a second scheduler finds nothing to claim
            update(Campaign)
            .where(
                col(Campaign.id) == campaign_id,
                or_(
                    col(Campaign.status).in_(PENDING_STATUSES),
                    cut_off(now),
                ),
                _partner_active(),  # a cut-off partner's campaign stays where it is
            )
            .values(status=CampaignStatus.sending, updated_at=now)
        )
    )
    session.refresh(campaign)
    if claimed != 1:
        return SendResult(campaign_id, campaign.status)
    if commit_batches:
        session.commit()
    started, beat = perf_counter(), now  # the claim wrote ``updated_at = now``: this run's lease
    text_for = _texts(renderer, campaign)
    no_extra: dict[str, Any] = {}  # one object for every member row: serialised once
    treated = held = queued = 0
    batches = _audience_batches(session, campaign)
    while True:
        with _gc_paused():
            batch = next(batches, None)
            if batch is None:
                break
            counts = _plan_batch(session, campaign, batch, text_for, no_extra)
        treated, held, queued = treated + counts[0], held + counts[1], queued + counts[2]
        if commit_batches:
            at = now + timedelta(seconds=perf_counter() - started)
            alive = _heartbeat(session, campaign_id, beat, at)
            beat = at
            session.commit()
            # cancelled meanwhile (the rest is not planned, the queued part is suppressed), or
            # another run took the lease over after this one stalled: that one goes on
            if not alive:
                session.refresh(campaign)
                return SendResult(campaign_id, campaign.status, treated, held, queued)
    session.execute(
        update(Campaign)
        .where(col(Campaign.id) == campaign_id, col(Campaign.status) == CampaignStatus.sending)
        .values(status=CampaignStatus.done, sent_at=campaign.sent_at or now, updated_at=now)
    )
    session.refresh(campaign)
    return SendResult(campaign_id, campaign.status, treated, held, queued)


def _plan_batch(
    session: Session,
    campaign: Campaign,
    batch: list[AudienceRow],
    text_for: Any,
    no_extra: dict[str, Any],
) -> tuple[int, int, int]:
    """One batch of the audience: its new members and its pushes; ``(treated, held, queued)``."""
    campaign_id = campaign.id or 0
    partner_id, topic = campaign.partner_id, topic_of(campaign_id)
    known = _members_among(session, campaign_id, batch[0][0], batch[-1][0])
    held = holdouts([row[0] for row in batch], partner_id, campaign.holdout_percent)
    fresh: list[tuple[Any, ...]] = []
    varying: list[Varying] = []  # what differs between the pushes
    owners: dict[int, outbox_store.ChatOwner] = {}
    for (oid, chat_id, locale, name, owner), holdout in zip(batch, held, strict=True):
        key = f"campaign:{campaign_id}:{oid}"
        if oid not in known:
            fresh.append((campaign_id, oid, holdout, None if holdout else key, no_extra))
        if holdout:
            continue
        if owner is not None:
            owners[owner.chat_id] = owner
        varying.append((key, chat_id or 0, text_for(locale, name), oid, f"owner:{oid}"))
    template = Push(
        dedupe_key="", chat_id=0, text="", message_class=MessageClass.marketing, partner_id=partner_id, topic=topic
    )
    # the members after the pushes: enqueue_alike reads before it writes, so on SQLite the write
    # lock is held only from its first insert to the batch's commit
    queued = enqueue_alike(session, template, varying, owners=owners)
    outbox_store.bulk_insert(session, table_of(CampaignMember), _MEMBER_COLUMNS, fresh)
    return len(varying), len(batch) - len(varying), queued


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while one batch is planned: its tens of thousands of
    short-lived rows and pushes (freed by reference counting; they form no cycles) would
    otherwise set off full collections that walk the whole heap, a third of a batch's time
    (measured). Collection runs again between batches; left off if someone else turned it off."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _heartbeat(session: Session, campaign_id: int, beat: datetime, at: datetime) -> bool:
    """Mark the campaign still being sent by this run (``updated_at`` from this run's last
    ``beat`` to ``at``); False when it is no longer sending, or no longer this run's (a run
    that resumed it after ``SENDING_LEASE`` wrote its own ``updated_at``)."""
    return (
        rowcount(
            session.execute(
                update(Campaign)
                .where(
                    col(Campaign.id) == campaign_id,
                    col(Campaign.status) == CampaignStatus.sending,
                    col(Campaign.updated_at) == beat,
                )
                .values(updated_at=at)
            )
        )
        == 1
    )


def _members_among(session: Session, campaign_id: int, first: int, last: int) -> set[int]:
    """The owners with ids in ``first..last`` already members (a resumed or repeated send)."""
    return set(
        session.connection()
        .execute(
            sa_select(col(CampaignMember.owner_id)).where(
                col(CampaignMember.campaign_id) == campaign_id,
                col(CampaignMember.owner_id) >= first,
                col(CampaignMember.owner_id) <= last,
            )
        )
        .scalars()
        .all()
    )


def _audience_batches(session: Session, campaign: Campaign) -> Iterator[list[AudienceRow]]:
    """The audience (``_audience_rows``) in owner-id order, ``SEND_BATCH`` owners at a time.
    The ids are read first in one pass (a few bytes an owner), then each batch's rows by
    primary key (``storage.outbox.among``): every query is bounded however big the base, where
    ``id > x ... LIMIT`` or id windows let PostgreSQL rescan the partner's whole index per batch."""
    ids: list[int] = list(
        session.connection()
        .execute(
            sa_select(col(Owner.id))
            .where(*_reachable(campaign.partner_id, campaign.product_line), _in_cells(campaign.cells))
            .order_by(col(Owner.id))
        )
        .scalars()
        .all()  # type: ignore[arg-type]  # reason: the id column is typed Optional; a row's id never is
    )
    for start in range(0, len(ids), SEND_BATCH):
        if rows := _audience_rows(session, campaign, ids[start : start + SEND_BATCH]):
            yield rows


#: one audience row: owner id, chat id, locale, name, and the owner as the outbox plans for them
AudienceRow = tuple[int, int | None, str | None, str, outbox_store.ChatOwner | None]


def _audience_rows(session: Session, campaign: Campaign, ids: Sequence[int] | None = None) -> list[AudienceRow]:
    """The audience (the same owners, in the same order, as ``audience``; only those among
    ``ids`` if given) as plain rows, with the delivery preferences ``enqueue_many`` would
    otherwise read again for the same owners (``storage.outbox.owners_by_chat``'s answer:
    not opted out, reachable and the campaign's partner's, as ``_reachable`` picks them).
    Read on the session's connection (plain rows, no ORM).

    Among ``ids`` the rows are found by primary key alone and the audience's conditions come
    back as a column (``picked``): neither database can then walk an index of the partner's
    whole audience per batch instead (PostgreSQL did, before the table had statistics: the
    benchmark's plan took three times as long), nor look each row up twice (SQLite went
    through ``ix_owner_stage`` first)."""
    picked = and_(*_reachable(campaign.partner_id, campaign.product_line), _in_cells(campaign.cells))
    query = (
        sa_select(
            col(Owner.id),
            col(Owner.telegram_user_id),
            col(Owner.locale),
            col(Owner.name),
            col(OwnerPreference.timezone),
            col(OwnerPreference.marketing_cap_per_week),
            col(OwnerPreference.quiet_hours),
            picked.label("picked"),
        )
        .outerjoin(OwnerPreference, col(OwnerPreference.owner_id) == col(Owner.id))
        .order_by(col(Owner.id))
    )
    query = query.where(picked) if ids is None else query.where(outbox_store.among(session, col(Owner.id), ids))
    chat_owner, partner_id = outbox_store.ChatOwner._make, campaign.partner_id
    rows: Sequence[Any] = session.connection().execute(query).all()
    return [
        (oid, chat, locale, name, chat_owner((oid, chat, False, False, tz, cap, quiet, partner_id)) if chat else None)
        for oid, chat, locale, name, tz, cap, quiet, ok in rows
        if ok  # NULL (an unknown condition) is no, as in a WHERE
    ]


_PROBES = ("\x01Probe\x01", "\x02Zweiter & <Name> 2\x02")
_HTML_SPECIAL = re.compile("[&<>'\"]").search  # what markupsafe's escape replaces: a name without them stays


def _texts(renderer: Renderer, campaign: Campaign) -> Any:
    """``text_for(locale, owner_name)``: the rendered push for one owner.

    Rendering is most of a big campaign's cost, so per locale the template is rendered with
    two probe names first: when both come out as one text with the (escaped) name dropped in,
    every non-empty name is substituted into that text instead of rendering again; otherwise
    (a template that transforms the name) each owner is rendered. An empty name is always
    rendered (templates fall back to a greeting)."""
    shapes: dict[str | None, list[str] | None] = {}  # the text split where the name goes
    empty: dict[str | None, str] = {}
    marker = str(escape(_PROBES[0]))

    def shape(locale: str | None) -> list[str] | None:
        if locale not in shapes:
            first, second = (render(renderer, campaign, locale, owner_name=n) for n in _PROBES)
            ok = marker in first and first.replace(marker, str(escape(_PROBES[1]))) == second
            shapes[locale] = first.split(marker) if ok else None
        return shapes[locale]

    def text_for(locale: str | None, name: str) -> str:
        if not name:
            if locale not in empty:
                empty[locale] = render(renderer, campaign, locale, owner_name="")
            return empty[locale]
        parts = shapes[locale] if locale in shapes else shape(locale)
        if parts is None:
            return render(renderer, campaign, locale, owner_name=name)
        return (str(escape(name)) if _HTML_SPECIAL(name) else name).join(parts)

    return text_for


def send_due(session: Session, renderer: Renderer, now: datetime, *, commit_batches: bool = False) -> list[SendResult]:
    """Send every scheduled campaign whose time has come, and every campaign marked to go
    now (``queue_now``: scheduled with no send time). A safety net beside the one-off jobs: a
    job lost with its store, never booked (no scheduler, a crash between the commit and the
    booking), or a bot that was down, still sends once; the partner hears "on its way" from
    whichever run sent it (the notice's dedupe key keeps it to one). A campaign whose send
    was cut off (``sending`` with no heartbeat for ``SENDING_LEASE``) is resumed here too."""
    due = session.exec(
        select(col(Campaign.id))
        .where(
            or_(
                and_(
                    col(Campaign.status) == CampaignStatus.scheduled,
                    or_(col(Campaign.send_at).is_(None), col(Campaign.send_at) <= now),
                ),
                cut_off(now),
            ),
            _partner_active(),
        )
        .order_by(col(Campaign.id))
    ).all()
    results = []
    for cid in due:
        if cid is None:
            continue
        result = send(session, renderer, cid, now, commit_batches=commit_batches)
        if result.status == CampaignStatus.done and (result.treated or result.holdout):
            _tell_partner(session, renderer, result, None)
        results.append(result)
    return results


def send_task(ctx: Any, campaign_id: int, locale: str | None = None) -> SendResult:
    """The scheduler task ``SEND_TASK`` (``ctx`` has ``engine`` and ``now``): one campaign,
    then the partner's "on its way" notice (in ``locale``) through the outbox, only by the
    run that sent it."""
    from flows.templating import default_renderer

    renderer = default_renderer()
    with job_scope(ctx) as session:
        result = send(session, renderer, campaign_id, ctx.now, commit_batches=True)
        if result.status == CampaignStatus.done and (result.treated or result.holdout):
            _tell_partner(session, renderer, result, locale)
        return result


def _tell_partner(session: Session, renderer: Renderer, result: SendResult, locale: str | None) -> None:
    from storage.models import Partner

    campaign = session.get(Campaign, result.campaign_id)
    partner = session.get(Partner, campaign.partner_id) if campaign else None
    if partner is None or partner.telegram_user_id is None:
        return
    enqueue(
        session,
        Push(
            dedupe_key=f"campaign:{result.campaign_id}:sent",
            chat_id=partner.telegram_user_id,
            text=renderer.render("campaigns/queued", locale, r=result),
            message_class=MessageClass.transactional,
            partner_id=partner.id,
        ),
    )


def cancel(session: Session, partner_id: int | None, campaign_id: int, now: datetime) -> Campaign:
    """Stop a campaign that has not gone out yet, and suppress whatever of it is still queued
    (pushes held by quiet hours or the cap are skipped at send time). The caller also drops
    the scheduler job."""
    campaign = get(session, partner_id, campaign_id)
    if campaign.status == CampaignStatus.cancelled:
        return campaign
    if campaign.status == CampaignStatus.done and not _has_pending(session, campaign_id):
        raise CampaignError(f"campaign #{campaign_id} has already been sent")
    campaign.status = CampaignStatus.cancelled
    campaign.updated_at = now
    cancel_topic(session, topic_of(campaign_id), "", "campaign cancelled", now)
    session.flush()
    return campaign


def cancel_partner_campaigns(session: Session, partner_id: int, reason: str, now: datetime) -> list[int]:
    """Cancel every campaign of this partner that could still reach an owner (draft,
    scheduled, sending, or sent with pushes still queued): the partner was cut off or handed
    their owners over. Their queued pushes are skipped with ``reason``; returns the ids."""
    cancelled = []
    for campaign in session.exec(
        select(Campaign)
        .where(col(Campaign.partner_id) == partner_id, col(Campaign.status) != CampaignStatus.cancelled)
        .order_by(col(Campaign.id))
    ).all():
        assert campaign.id is not None
        if campaign.status == CampaignStatus.done and not _has_pending(session, campaign.id):
            continue
        campaign.status = CampaignStatus.cancelled
        campaign.updated_at = now
        cancel_topic(session, topic_of(campaign.id), "", reason, now)
        cancelled.append(campaign.id)
    session.flush()
    return cancelled


def _partner_active() -> Any:
    """SQL: the campaign's partner is active."""
    return (
        sa_select(col(Partner.id))
        .where(col(Partner.id) == col(Campaign.partner_id), col(Partner.active) == True)  # noqa: E712
        .exists()
    )


def _has_pending(session: Session, campaign_id: int) -> bool:
    keys = _keys(session, campaign_id)
    if not keys:
        return False
    row = session.exec(
        select(col(OutboxMessage.id))
        .where(
            col(OutboxMessage.dedupe_key).in_(keys),
            col(OutboxMessage.status).in_(("pending", "sending")),
        )
        .limit(1)
    ).first()
    return row is not None


def _keys(session: Session, campaign_id: int) -> list[str]:
    return [
        k
        for k in session.exec(
            select(col(CampaignMember.dedupe_key)).where(col(CampaignMember.campaign_id) == campaign_id)
        ).all()
        if k
    ]


# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignStats:
    id: int
    status: str
    cells: list[str]
    template: str
    send_at: datetime | None
    sent_at: datetime | None
    audience: int  # owners picked at send time (treated + holdout); before: the preview count
    treated: int
    holdout: int
    sent: int
    pending: int
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (failed included)
    converted: int = 0
    holdout_converted: int = 0
    window_days: int = DEFAULT_WINDOW_DAYS  # a goal event counts only this long after the send
    min_group: int = DEFAULT_MIN_GROUP  # fewer owners in a group: "too few owners to tell"

    @property
    def rate(self) -> float | None:
        return self.converted / self.treated if self.treated else None

    @property
    def holdout_rate(self) -> float | None:
        return self.holdout_converted / self.holdout if self.holdout else None

    @property
    def comparison(self) -> Comparison:
        return Comparison(self.treated, self.converted, self.holdout, self.holdout_converted, self.min_group)

    @property
    def too_few(self) -> bool:
        """Either group is below the minimum size: no uplift is printed, only this."""
        return self.comparison.too_few

    @property
    def uplift(self) -> float | None:
        """Conversion rate of the treated minus the holdout's, in percentage points (``None``
        when either group is too small to tell)."""
        return self.comparison.uplift

    @property
    def uplift_ci(self) -> tuple[float, float] | None:
        """95 % interval of the uplift in points (Newcombe), ``None`` when too few."""
        return self.comparison.uplift_ci

    @property
    def rate_ci(self) -> tuple[float, float] | None:
        return self.comparison.rate_ci

    @property
    def holdout_ci(self) -> tuple[float, float] | None:
        return self.comparison.holdout_ci

    @property
    def cancellable(self) -> bool:
        return self.status in (CampaignStatus.draft, CampaignStatus.scheduled) or (
            self.status == CampaignStatus.done and self.pending > 0
        )


def stats(
    session: Session, campaign: Campaign, window_days: int = DEFAULT_WINDOW_DAYS, min_group: int = DEFAULT_MIN_GROUP
) -> CampaignStats:
    """Audience, what the outbox did with each push, and conversions (a goal event inside the
    conversion window, ``window_days`` after the send) of the treated against the holdout.
    Marks ``converted_at`` on members; a mark outside the window (an older rule's) does not count.
    The campaign's own window, when it has one, wins over ``window_days`` (the setting's)."""
    window_days = campaign.conversion_window_days or window_days
    cid = campaign.id or 0
    members = session.exec(select(CampaignMember).where(col(CampaignMember.campaign_id) == cid)).all()
    keys = [m.dedupe_key for m in members if m.dedupe_key]
    sent = pending = 0
    skipped: Counter[str] = Counter()
    if keys:
        for status, reason in session.exec(
            select(col(OutboxMessage.status), col(OutboxMessage.reason)).where(col(OutboxMessage.dedupe_key).in_(keys))
        ).all():
            if status == "sent":
                sent += 1
            elif status in ("pending", "sending"):
                pending += 1
            else:
                skipped[reason or status] += 1
    if campaign.sent_at is not None and members:
        _mark_conversions(session, campaign, members, window_days)
    window_end = campaign.sent_at + timedelta(days=window_days) if campaign.sent_at else None

    def counted(m: CampaignMember) -> bool:
        return m.converted_at is not None and window_end is not None and _aware(m.converted_at) < window_end

    treated = [m for m in members if not m.holdout]
    held = [m for m in members if m.holdout]
    size = len(members)
    if not members and campaign.status in (CampaignStatus.draft, CampaignStatus.scheduled):
        size = len(audience(session, campaign))
    return CampaignStats(
        id=cid,
        status=campaign.status,
        cells=list(campaign.cells),
        template=campaign.template or CUSTOM_TEMPLATE,
        send_at=campaign.send_at,
        sent_at=campaign.sent_at,
        audience=size,
        treated=len(treated),
        holdout=len(held),
        sent=sent,
        pending=pending,
        skipped=dict(skipped),
        converted=sum(1 for m in treated if counted(m)),
        holdout_converted=sum(1 for m in held if counted(m)),
        window_days=window_days,
        min_group=min_group,
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo("UTC"))


def _mark_conversions(
    session: Session, campaign: Campaign, members: Sequence[CampaignMember], window_days: int = DEFAULT_WINDOW_DAYS
) -> None:
    open_ids = {m.owner_id: m for m in members if m.converted_at is None}
    if not open_ids or campaign.sent_at is None:
        return
    rows = session.exec(
        select(col(Event.owner_id), col(Event.at))
        .where(
            col(Event.owner_id).in_(list(open_ids)),
            col(Event.kind).in_(campaign.goal_events),
            col(Event.at) >= campaign.sent_at,
            col(Event.at) < campaign.sent_at + timedelta(days=window_days),
        )
        .order_by(col(Event.at))
    ).all()
    for owner_id, at in rows:
        member = open_ids.get(owner_id or 0)
        if member is not None and member.converted_at is None:
            member.converted_at = at
    session.flush()


def list_stats(
    session: Session,
    partner_id: int,
    limit: int = 10,
    *,
    offset: int = 0,
    window_days: int = DEFAULT_WINDOW_DAYS,
    min_group: int = DEFAULT_MIN_GROUP,
) -> list[CampaignStats]:
    """The partner's latest campaigns, newest first (paged in SQL with ``offset``)."""
    rows = session.exec(
        select(Campaign)
        .where(col(Campaign.partner_id) == partner_id)
        .order_by(col(Campaign.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return [stats(session, c, window_days, min_group) for c in rows]


def send_due_job(renderer: Renderer) -> Any:
    """A fixed scheduler job (every minute): sends scheduled campaigns whose time has come.
    Idempotent, so it may run beside one-off ``SEND_TASK`` jobs or on a second scheduler."""

    def job(ctx: Any) -> list[SendResult]:
        with job_scope(ctx) as session:
            return send_due(session, renderer, ctx.now, commit_batches=True)

    job.__name__ = "send_due_campaigns_job"
    return job
