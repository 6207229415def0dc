"""Enqueue pushes, and decide at send time whether each may still go.

A push is anything that is not the immediate answer to the user's own action (partner
notices, churn alerts, reminders, campaigns): ``flows`` records it here, ``bot`` sends it.
The dedupe key makes planning idempotent: enqueueing the same key twice (a job run twice, a
second scheduler) creates one message.

The delivery rules (``flows.delivery.delivery_rules``) run twice: at enqueue to compute ``not_before``
(quiet hours, frequency cap) and again on the claimed rows just before sending (``screen``),
where opted-out, unreachable, expired, cancelled topics, a partner notice for a partner who
is no longer active or no longer on that account (``storage.outbox.partner_vetoes``) and any
registered suppression check can still stop a push. The policy comes from the caller, else
from the session's ``info["delivery_policy"]`` (the bot installs the configured one on its
sessions), else the defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from flows.delivery import best_hour
from flows.delivery.delivery_rules import (
    ANYONE,
    MARKETING,
    DeliveryPolicy,
    Plan,
    QuietHours,
    Recipient,
    effective_cap,
    plan,
)
from storage import outbox as store
from storage.clock import utcnow
from storage.db import session_scope, table_of
from storage.delivery_models import OwnerPreference
from storage.events import EventKind, record
from storage.models import MessageClass, OutboxMessage, OutboxStatus, Owner

log = logging.getLogger(__name__)

OUTBOX = table_of(OutboxMessage)
PRIORITY = {MessageClass.reply: 0, MessageClass.transactional: 10, MessageClass.marketing: 50}
POLICY_KEY = "delivery_policy"
_MARKETING = MessageClass.marketing


@dataclass(frozen=True)
class Push:
    """One message to deliver later. ``buttons``: rows of {"text", "url"|"callback_data"}.

    ``topic``/``subject`` say what the push is about (e.g. ``gift_reminder`` / ``gift:12``)
    so that a send-time check can drop it when that stops being true (gift redeemed,
    campaign cancelled, owner left the flow).
    """

    dedupe_key: str
    chat_id: int
    text: str
    message_class: MessageClass = MessageClass.transactional
    owner_id: int | None = None
    partner_id: int | None = None
    buttons: list[list[dict[str, Any]]] | None = None
    not_before: datetime | None = None
    expires_at: datetime | None = None
    priority: int | None = None
    parse_mode: str | None = "HTML"
    topic: str | None = None
    subject: str | None = None


def job_scope(ctx: Any) -> AbstractContextManager[Session]:
    """The unit of work of a scheduled job (``ctx`` has ``engine`` and ``policy``): pushes
    queued in it are planned under the deployment's delivery rules, not the defaults."""
    return session_scope(ctx.engine, info={POLICY_KEY: ctx.policy})


def policy_of(session: Session, policy: DeliveryPolicy | None = None) -> DeliveryPolicy:
    if policy is not None:
        return policy
    installed = session.info.get(POLICY_KEY)
    return installed if isinstance(installed, DeliveryPolicy) else DeliveryPolicy()


def enqueue(session: Session, push: Push, policy: DeliveryPolicy | None = None) -> bool:
    """Add the push unless its dedupe key exists; returns True when a row was created.

    A push the rules already rule out (expired, or deferred past its expiry) is stored as
    ``skipped`` with the reason, so that the key stays taken and the report counts it.
    """
    return enqueue_many(session, [push], policy) == 1


def enqueue_many(
    session: Session,
    pushes: Sequence[Push],
    policy: DeliveryPolicy | None = None,
    *,
    owners: Mapping[int, store.ChatOwner] | None = None,
) -> int:
    """Enqueue many pushes with a few queries; returns how many rows were created.

    Set-based: the keys, the chats' owners and preferences, the partners' chats, the cap's
    marketing pushes and the best hours are read once per call; each distinct situation
    (class, start, expiry, the owner's zone, quiet hours and cap, what the cap already holds)
    is planned once, since ``plan`` is a pure function of exactly those (it must not read the
    recipient's owner id, or the cache would hand one owner's decision to another); the rows
    go in per ``INSERT_CHUNK`` by ``storage.outbox.bulk_insert`` (``COPY`` on PostgreSQL, one
    DBAPI ``executemany`` on SQLite).

    ``owners``: the chats' owners (``storage.outbox.owners_by_chat``'s answer for every chat
    of ``pushes``) when the caller read them already with its audience, as a campaign does;
    a private chat missing from it has no owner. Else they are read here."""
    policy = policy_of(session, policy)
    now = utcnow()
    fresh = _untaken(session, pushes, [p.dedupe_key for p in pushes])
    if not fresh:
        return 0
    classes = [_cls(p) for p in fresh]
    decisions = _decide(
        session,
        policy,
        now,
        [p.chat_id for p in fresh],
        classes,
        [max(now, p.not_before) if p.not_before else now for p in fresh],
        [p.expires_at for p in fresh],
        owners,
    )
    rows: list[tuple[Any, ...]] = []
    last_cls, value, priority = None, "", 0
    for push, cls, decision in zip(fresh, classes, decisions, strict=True):
        if cls is not last_cls:  # an enum's .value and hash are Python-level: once per run of one class
            last_cls, value, priority = cls, cls.value, PRIORITY[cls]
        p = push
        rows.append(_row(p, p.dedupe_key, p.chat_id, p.owner_id, p.text, p.subject, value, priority, decision, now))
    return _insert(session, rows)


#: what differs between the pushes of one ``enqueue_alike``: dedupe key, chat id, text, owner id, subject
Varying = tuple[str, int, str, int | None, str | None]


def enqueue_alike(
    session: Session,
    template: Push,
    varying: Sequence[Varying],
    policy: DeliveryPolicy | None = None,
    *,
    owners: Mapping[int, store.ChatOwner] | None = None,
) -> int:
    """``enqueue_many`` of the pushes that are ``template`` but for their dedupe key, chat,
    text, owner and subject (``varying``, in that order), such as a campaign's one per owner:
    the same rows planned the same way, without making a ``Push`` for each."""
    policy = policy_of(session, policy)
    now = utcnow()
    fresh = _untaken(session, varying, [v[0] for v in varying])
    if not fresh:
        return 0
    cls, count, t = _cls(template), len(fresh), template
    asked = max(now, t.not_before) if t.not_before else now
    decisions = _decide(
        session, policy, now, [v[1] for v in fresh], [cls] * count, [asked] * count, [t.expires_at] * count, owners
    )
    value, priority = cls.value, PRIORITY[cls]
    rows = [
        _row(t, key, chat_id, owner_id, text, subject, value, priority, d, now)
        for (key, chat_id, text, owner_id, subject), d in zip(fresh, decisions, strict=True)
    ]
    return _insert(session, rows)


_Item = TypeVar("_Item")


def _untaken(session: Session, items: Sequence[_Item], keys: Sequence[str]) -> list[_Item]:
    """The items (``keys[i]`` is ``items[i]``'s dedupe key) whose key is neither in the outbox
    nor an earlier item's, in order."""
    taken = store.existing_keys(session, keys)
    fresh: list[_Item] = []
    for item, key in zip(items, keys, strict=True):
        if key not in taken:
            taken.add(key)
            fresh.append(item)
    return fresh


def _decide(
    session: Session,
    policy: DeliveryPolicy,
    now: datetime,
    chats: Sequence[int],
    classes: Sequence[MessageClass],
    asked: Sequence[datetime],
    expiries: Sequence[datetime | None],
    owners: Mapping[int, store.ChatOwner] | None,
) -> list[Plan]:
    """The plan of each push (its chat, class, asked start and expiry): the chats' owners
    (read here unless given), the partners' chats, the cap's marketing pushes and the best
    hours are read once; a marketing push planned to go counts against the cap of the later
    ones to the same chat."""
    if owners is None:
        owners = store.owners_by_chat(session, chats)
    staff = _staff(session, chats, policy)
    planned = store.marketing_times(
        session,
        {chat_id for chat_id, cls in zip(chats, classes, strict=True) if cls is _MARKETING},
        now - policy.cap_window,
        include_planned=True,
    )
    starts = _starts(session, chats, classes, asked, expiries, owners, now, policy)
    decide = _Planner(policy)
    decisions: list[Plan] = []
    last_cls, value = None, ""
    for chat_id, cls, start, asked_at, expires_at in zip(chats, classes, starts, asked, expiries, strict=True):
        if cls is not last_cls:
            last_cls, value = cls, cls.value
        owner = owners.get(chat_id)
        is_staff = chat_id in staff
        times = planned.get(chat_id, ())
        decision = decide(value, start, expires_at, owner, is_staff, times)
        if not decision.send and start != asked_at:  # the best hour would lose it: plain schedule
            decision = decide(value, asked_at, expires_at, owner, is_staff, times)
        if decision.send and cls is _MARKETING:
            planned.setdefault(chat_id, []).append(decision.at or start)
        decisions.append(decision)
    return decisions


class _Planner:
    """``plan`` for enqueue, once per distinct input: a campaign's thousands of pushes share a
    handful of (start, zone, quiet hours, cap, cap history) situations."""

    def __init__(self, policy: DeliveryPolicy) -> None:
        self.policy = policy
        self.seen: dict[tuple[Any, ...], Plan] = {}

    def __call__(
        self,
        value: str,
        start: datetime,
        expires_at: datetime | None,
        owner: store.ChatOwner | None,
        staff: bool,
        times: Sequence[datetime],
    ) -> Plan:
        """``value``: the push's class (``MessageClass.value``: a plain string hashes at C speed)."""
        prefs = (owner.timezone, owner.quiet_hours, owner.marketing_cap) if owner is not None else None
        key = (value, start, expires_at, prefs, staff, tuple(times) if times else ())
        found = self.seen.get(key)
        if found is None:
            # enqueue only plans: opted-out/unreachable may change before sending; `screen` decides
            recipient = replace(_recipient(owner, staff), opted_out=False, unreachable=False)
            found = plan(
                value, start, expires_at=expires_at, recipient=recipient, policy=self.policy, marketing_times=times
            )
            self.seen[key] = found
        return found


def _starts(
    session: Session,
    chats: Sequence[int],
    classes: Sequence[MessageClass],
    asked: Sequence[datetime],
    expiries: Sequence[datetime | None],
    owners: Mapping[int, store.ChatOwner],
    now: datetime,
    policy: DeliveryPolicy,
) -> Sequence[datetime]:
    """The planned start of each push: a marketing push to an owner may wait for the owner's
    best hour (``flows.delivery.best_hour``); every other push starts as ``asked``."""
    if not policy.best_hour.enabled:
        return asked
    marketing: list[int] = []
    owner_ids: list[int | None] = []
    partners: dict[int, int | None] = {}  # read with the owners: the best hour's circles need no second read
    for i, (chat_id, cls) in enumerate(zip(chats, classes, strict=True)):
        if cls is _MARKETING and (owner := owners.get(chat_id)) is not None:
            marketing.append(i)
            owner_ids.append(owner.owner_id)
            partners[owner.owner_id] = owner.partner_id
    if not marketing:
        return asked
    moved = best_hour.best_starts(
        session,
        owner_ids,
        [asked[i] for i in marketing],
        [expiries[i] for i in marketing],
        now,
        policy,
        partners,
    )
    starts = list(asked)
    for i, at in zip(marketing, moved, strict=True):
        starts[i] = at
    return starts


def _cls(push: Push) -> MessageClass:
    cls = push.message_class
    return cls if type(cls) is MessageClass else MessageClass(cls)  # callers may pass the enum or its value


ROW_COLUMNS = (
    "dedupe_key",
    "chat_id",
    "owner_id",
    "partner_id",
    "message_class",
    "priority",
    "text",
    "parse_mode",
    "buttons",
    "not_before",
    "expires_at",
    "attempts",
    "status",
    "reason",
    "topic",
    "subject",
    "created_at",
    "updated_at",
)


def _row(
    push: Push,
    key: str,
    chat_id: int,
    owner_id: int | None,
    text: str,
    subject: str | None,
    value: str,
    priority: int,
    decision: Plan,
    now: datetime,
) -> tuple[Any, ...]:
    """The outbox row, as values in ``ROW_COLUMNS`` order (inserted in bulk), of ``push`` with
    its key, chat, owner, text and subject as given (``enqueue_alike`` varies only those);
    ``value`` and ``priority``: its class's value and default priority."""
    send = decision.send
    return (
        key,
        chat_id,
        owner_id,
        push.partner_id,
        value,
        priority if push.priority is None else push.priority,
        text,
        push.parse_mode,
        push.buttons,
        (decision.at if send else None) or now,
        push.expires_at,
        0,
        _PENDING if send else _SKIPPED,
        decision.reason,
        push.topic,
        subject if push.topic else None,
        now,
        now,
    )


_PENDING, _SKIPPED = OutboxStatus.pending.value, OutboxStatus.skipped.value

INSERT_CHUNK = 5_000  # rows per bulk insert: bounded memory, one savepoint's worth of retries


def _insert(session: Session, rows: list[tuple[Any, ...]]) -> int:
    """All rows (``ROW_COLUMNS`` values) in one savepoint, by bulk inserts (``INSERT_CHUNK``
    rows each, topics on the rows themselves); if another process planned some key meanwhile,
    fall back to one savepoint per row so that the others still go in."""
    try:
        with session.begin_nested():
            for start in range(0, len(rows), INSERT_CHUNK):
                _insert_chunk(session, rows[start : start + INSERT_CHUNK])
        return len(rows)
    except IntegrityError:
        pass
    created = 0
    for row in rows:
        try:
            with session.begin_nested():
                _insert_chunk(session, [row])
            created += 1
        except IntegrityError:
            continue  # planned by someone else first
    return created


def _insert_chunk(session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
    store.bulk_insert(session, OUTBOX, ROW_COLUMNS, rows)


def _staff(session: Session, chat_ids: Iterable[int], policy: DeliveryPolicy) -> set[int]:
    chats = set(chat_ids)
    return store.partner_chats(session, chats) | (chats & policy.staff_chat_ids)


def _recipient(owner: store.ChatOwner | None, staff: bool = False) -> Recipient:
    if owner is None:
        return Recipient(staff=True) if staff else ANYONE
    quiet = None
    if owner.quiet_hours:
        try:
            quiet = QuietHours.parse(owner.quiet_hours)
        except ValueError:
            log.warning(
                "owner %s has unreadable quiet hours %r; using the default",
                owner.owner_id,
                owner.quiet_hours,
            )
    return Recipient(
        owner_id=owner.owner_id,
        timezone=owner.timezone,
        quiet_hours=quiet,
        marketing_cap=owner.marketing_cap,
        opted_out=owner.opted_out,
        unreachable=owner.unreachable,
        staff=staff,
    )


# --- send time ------------------------------------------------------------------------------

SuppressionCheck = Callable[[Session, Sequence["Candidate"]], dict[int, str]]


@dataclass(frozen=True)
class Candidate:
    """A claimed row as a suppression check sees it."""

    id: int
    chat_id: int
    owner_id: int | None
    message_class: str
    topic: str | None
    subject: str | None


@dataclass
class Suppressions:
    """Send-time vetoes by topic: ``check(session, candidates) -> {outbox id: reason}``.

    Later features plug in here, e.g. ``register("gift_reminder", gift_not_redeemed)``;
    cancelled topics/subjects (``cancel_topic``) are always checked.
    """

    checks: dict[str, list[SuppressionCheck]] = field(default_factory=dict)

    def register(self, topic: str, check: SuppressionCheck) -> None:
        self.checks.setdefault(topic, []).append(check)

    def run(self, session: Session, candidates: Sequence[Candidate]) -> dict[int, str]:
        vetoes = _cancelled(session, candidates)
        by_topic: dict[str, list[Candidate]] = {}
        for candidate in candidates:
            if candidate.topic and candidate.id not in vetoes:
                by_topic.setdefault(candidate.topic, []).append(candidate)
        for topic, group in by_topic.items():
            for check in self.checks.get(topic, []):
                for outbox_id, reason in check(session, group).items():
                    vetoes.setdefault(outbox_id, reason)
        return vetoes


def _cancelled(session: Session, candidates: Sequence[Candidate]) -> dict[int, str]:
    cancelled = store.suppressions_for(session, (c.topic for c in candidates if c.topic))
    vetoes: dict[int, str] = {}
    for c in candidates:
        if not c.topic:
            continue
        reason = cancelled.get((c.topic, c.subject or "")) or cancelled.get((c.topic, ""))
        if reason:
            vetoes[c.id] = reason
    return vetoes


@dataclass(frozen=True)
class Verdict:
    """``send``; else the row is skipped (``reason``) or put back until ``not_before``."""

    id: int
    send: bool
    reason: str | None = None
    not_before: datetime | None = None

    @property
    def skip(self) -> bool:
        return not self.send and self.not_before is None


def screen(
    session: Session,
    rows: Sequence[store.ClaimedMessage],
    now: datetime,
    policy: DeliveryPolicy,
    suppressions: Suppressions | None = None,
) -> list[Verdict]:
    """The send-time decision for claimed rows, in their order (earlier rows use the cap
    first)."""
    if not rows:
        return []
    owners = store.owners_by_chat(session, (r.chat_id for r in rows))
    staff = _staff(session, (r.chat_id for r in rows), policy)
    candidates = [Candidate(r.id, r.chat_id, r.owner_id, r.message_class, r.topic, r.subject) for r in rows]
    vetoes = (suppressions or Suppressions()).run(session, candidates)
    for outbox_id, reason in store.partner_vetoes(session, rows).items():
        vetoes.setdefault(outbox_id, reason)  # a partner notice for an inactive/unlinked partner
    marketing_chats = {r.chat_id for r in rows if r.message_class == MARKETING}
    sent = store.marketing_times(
        session,
        marketing_chats,
        now - policy.cap_window,
        include_planned=False,
        exclude_ids={r.id for r in rows},
    )
    verdicts = []
    for row in rows:
        if row.id in vetoes:
            verdicts.append(Verdict(row.id, False, reason=vetoes[row.id]))
            continue
        decision = plan(
            row.message_class,
            now,
            expires_at=row.expires_at,
            recipient=_recipient(owners.get(row.chat_id), row.chat_id in staff),
            policy=policy,
            marketing_times=sent.get(row.chat_id, ()),
        )
        if not decision.send:
            verdicts.append(Verdict(row.id, False, reason=decision.reason))
        elif decision.at is not None and decision.at > now:
            verdicts.append(Verdict(row.id, False, reason=decision.reason, not_before=decision.at))
        else:
            if row.message_class == MARKETING:
                sent.setdefault(row.chat_id, []).append(now)
            verdicts.append(Verdict(row.id, True))
    return verdicts


def cancel_topic(
    session: Session,
    topic: str,
    subject: str = "",
    reason: str = "cancelled",
    now: datetime | None = None,
) -> bool:
    """Stop every queued push about ``topic`` (and ``subject``; empty = all of the topic):
    they are skipped at send time with ``reason``. Idempotent."""
    return store.add_suppression(session, topic, subject, reason, now or utcnow())


# --- the owner's own choice -------------------------------------------------------------


@dataclass(frozen=True)
class OptResult:
    owner_id: int
    changed: bool
    marketing_cap: int  # in effect for this owner, per ``cap_days``
    cap_days: int


def set_marketing_opt_out(
    session: Session, owner_id: int, opted_out: bool, now: datetime, policy: DeliveryPolicy | None = None
) -> OptResult:
    """``/stop`` (True) ends marketing pushes; ``/resume`` (False) brings them back.
    Transactional pushes keep flowing either way. Queued marketing rows are not touched:
    the send-time screen reads the flag, so a quick stop-then-resume loses nothing."""
    policy = policy_of(session, policy)
    owner = session.get(Owner, owner_id)
    if owner is None:
        raise LookupError(f"owner {owner_id} not found")
    changed = bool(owner.opted_out) != opted_out
    owner.opted_out = opted_out
    owner.updated_at = now
    pref = session.get(OwnerPreference, owner_id)
    if pref is None:
        pref = OwnerPreference(owner_id=owner_id, updated_at=now)
        session.add(pref)
    if opted_out:
        pref.stopped_at = now
    else:
        pref.resumed_at = now
    pref.updated_at = now
    record(session, owner_id, EventKind.command, now, command="stop" if opted_out else "resume")
    session.flush()
    cap = effective_cap(policy.marketing_cap, pref.marketing_cap_per_week)
    return OptResult(owner_id, changed, cap, max(1, round(policy.cap_window / timedelta(days=1))))
