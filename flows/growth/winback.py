"""Win-back: why owners left (the survey answers), who came back, and the owner's own
"too many messages" answer acted on at once.

The survey (``flows/library/winback.yaml``) stores each answer as a ``button`` event with
``action = winback.<reason>`` (``flows.engine.runner.record_button``). This module reads those events
for the churn-reasons report (``autocircle report churn-reasons``, partner ``/reasons``) and
counts as *won back* every win-back run the runner ended by a goal (renewed activity: a circle
message, a booking, a service visit).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from storage.delivery_models import OwnerPreference
from storage.events import EventKind, record
from storage.flow_models import FlowRun, FlowRunStatus
from storage.models import Dealer, Event, Owner, Partner

FLOW_KEY = "winback"
ACTION_PREFIX = "winback."
REASONS = ("price", "service", "moved", "sold", "too_many", "other")
TOO_MANY = "winback.too_many"
TOO_MANY_CAP_PER_WEEK = 1  # marketing pushes per cap window for an owner who said "too many"


def reason_of(action: str | None) -> str | None:
    """``winback.price`` -> ``price``; anything else (not a win-back answer) -> None."""
    if not action or not action.startswith(ACTION_PREFIX):
        return None
    reason = action[len(ACTION_PREFIX) :]
    return reason if reason in REASONS else "other"


def on_answer(session: Session, owner_id: int, action: str, now: datetime) -> bool:
    """Act on one survey answer when it is recorded. "Too many messages" lowers the owner's
    own marketing cap (never raises one that is already lower); True when a cap changed."""
    if action != TOO_MANY:
        return False
    pref = session.get(OwnerPreference, owner_id)
    if pref is None:
        pref = OwnerPreference(owner_id=owner_id, updated_at=now)
        session.add(pref)
    current = pref.marketing_cap_per_week
    if current is not None and current <= TOO_MANY_CAP_PER_WEEK:
        return False
    pref.marketing_cap_per_week = TOO_MANY_CAP_PER_WEEK
    pref.updated_at = now
    session.flush()
    return True


@dataclass(frozen=True)
class PartnerReasons:
    partner_id: int | None
    partner_name: str
    dealer_code: str
    reasons: dict[str, int]
    answered: int  # owners who answered at least once
    runs: int  # win-back runs started in the period
    won_back: int  # of those, ended by renewed activity


@dataclass(frozen=True)
class ChurnReasons:
    since: datetime | None
    until: datetime | None
    partners: list[PartnerReasons] = field(default_factory=list)
    other_texts: list[str] = field(default_factory=list)  # "other", in the owners' words

    @property
    def totals(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for row in self.partners:
            total.update(row.reasons)
        return {reason: total.get(reason, 0) for reason in REASONS}

    @property
    def answered(self) -> int:
        return sum(p.answered for p in self.partners)

    @property
    def runs(self) -> int:
        return sum(p.runs for p in self.partners)

    @property
    def won_back(self) -> int:
        return sum(p.won_back for p in self.partners)

    def as_dict(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "totals": self.totals,
            "answered": self.answered,
            "runs": self.runs,
            "won_back": self.won_back,
            "other_texts": self.other_texts,
            "partners": [
                {
                    "partner_id": p.partner_id,
                    "partner": p.partner_name,
                    "dealer": p.dealer_code,
                    "reasons": p.reasons,
                    "answered": p.answered,
                    "runs": p.runs,
                    "won_back": p.won_back,
                }
                for p in self.partners
            ],
        }


OTHER_TEXT_LIMIT = 500


def record_other_text(session: Session, owner_id: int, text: str, now: datetime) -> None:
    """The free text an owner gives after answering "other" (kept as written, trimmed)."""
    record(session, owner_id, EventKind.survey_text, now, flow=FLOW_KEY, text=text.strip()[:OTHER_TEXT_LIMIT])


def _other_texts(
    session: Session, partner_id: int | None, since: datetime | None, until: datetime | None, limit: int = 10
) -> list[str]:
    query = (
        select(col(Event.data))
        .join(Owner, col(Owner.id) == col(Event.owner_id))
        .where(col(Event.kind) == EventKind.survey_text.value)
    )
    if partner_id is not None:
        query = query.where(col(Owner.partner_id) == partner_id)
    if since is not None:
        query = query.where(col(Event.at) >= since)
    if until is not None:
        query = query.where(col(Event.at) < until)
    rows = session.exec(query.order_by(col(Event.at).desc()).limit(limit)).all()
    return [str((data or {}).get("text", "")) for data in rows if (data or {}).get("text")]


def churn_reasons(
    session: Session,
    partner_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ChurnReasons:
    """Reasons per partner (each owner counted once per reason), win-back runs started in the
    period and how many of them ended by renewed activity. ``partner_id``: that partner's
    owners only."""
    answers = (
        select(col(Event.owner_id), col(Event.data), col(Owner.partner_id))
        .join(
            Owner,
            col(Owner.id) == col(Event.owner_id),
        )
        .where(col(Event.kind) == EventKind.button.value)
    )
    runs = (
        select(col(FlowRun.status), col(Owner.partner_id))
        .join(
            Owner,
            col(Owner.id) == col(FlowRun.owner_id),
        )
        .where(col(FlowRun.flow_key) == FLOW_KEY)
    )
    if partner_id is not None:
        answers = answers.where(col(Owner.partner_id) == partner_id)
        runs = runs.where(col(Owner.partner_id) == partner_id)
    if since is not None:
        answers = answers.where(col(Event.at) >= since)
        runs = runs.where(col(FlowRun.entered_at) >= since)
    if until is not None:
        answers = answers.where(col(Event.at) < until)
        runs = runs.where(col(FlowRun.entered_at) < until)

    seen: dict[int | None, set[tuple[int | None, str]]] = {}
    for owner_id, data, owner_partner in session.exec(answers).all():
        reason = reason_of((data or {}).get("action"))
        if reason is not None:
            seen.setdefault(owner_partner, set()).add((owner_id, reason))
    started: Counter[int | None] = Counter()
    won: Counter[int | None] = Counter()
    for status, owner_partner in session.exec(runs).all():
        started[owner_partner] += 1
        if status == FlowRunStatus.goal_reached:
            won[owner_partner] += 1

    ids = set(seen) | set(started)
    names = _partner_names(session, {i for i in ids if i is not None})
    rows = []
    for pid in sorted(ids, key=lambda i: (i is None, i or 0)):
        pairs = seen.get(pid, set())
        counts = Counter(reason for _, reason in pairs)
        name, dealer = names.get(pid, ("—", "—")) if pid is not None else ("—", "—")
        rows.append(
            PartnerReasons(
                partner_id=pid,
                partner_name=name,
                dealer_code=dealer,
                reasons={reason: counts.get(reason, 0) for reason in REASONS},
                answered=len({owner for owner, _ in pairs}),
                runs=started[pid],
                won_back=won[pid],
            )
        )
    return ChurnReasons(since, until, rows, _other_texts(session, partner_id, since, until))


def _partner_names(session: Session, ids: set[int]) -> dict[int, tuple[str, str]]:
    if not ids:
        return {}
    rows = session.exec(
        select(col(Partner.id), col(Partner.name), col(Dealer.code))
        .join(Dealer, col(Dealer.id) == col(Partner.dealer_id))
        .where(col(Partner.id).in_(ids))
    ).all()
    return {pid: (name, code) for pid, name, code in rows if pid is not None}
