"""The flow runner: owners enter flows by their triggers and move through the steps.

One pass (``run_due_flows``, every minute from the scheduler) reads what happened since the
last pass and does the due work, in bounded batches, each committed on its own:

1. new events (cursor ``events``): goals end live runs, runs waiting for the event wake up
   (they read the answer from the event log), event triggers enter owners;
2. new segment transitions (cursor ``transitions``): ``cell_entered`` triggers, as the
   playbook maps cells to flows per product line;
3. date triggers (``owner.verified_at``, and the dates capabilities register in
   ``flows.engine.registry``, such as growth's ``gift.expires_at``);
4. schedules (cron read in the deployment's time zone, ``Settings.timezone``: "0 9 * * 6"
   is Saturday 09:00 where the partners are; one cursor per flow);
5. due runs (``status = live and next_at <= now``) advance step by step until a wait or the end
   (``flows.engine.flow_steps.StepRunner``): claimed and loaded per batch in a few statements,
   batch after batch until none is due or ``ADVANCE_BUDGET_S`` is spent.

All state is in the database (``storage.flow_models``), so a restart resumes where it stopped.
Running a pass twice creates nothing twice: entering is unique per cause (``entry_key``), a
run is claimed by bumping its ``rev``, and every send is an outbox row with the dedupe key
``flow:<key>:<run_id>:<step_id>``. A run keeps the YAML text it started with, so an edited flow
file leaves live runs on their version. Why an owner got or did not get a step is written
to ``flow_run_log`` (``autocircle flows runs``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import cancel_topic
from flows.engine import registry
from flows.engine.flow_files import LoadedFlow
from flows.engine.flow_rules import (
    PastRun,
    any_cell_matches,
    audience_refusal,
    entry_refusal,
    event_names,
    goal_reached,
    signed_offset,
)
from flows.engine.flow_spec import TriggerKind
from flows.engine.flow_steps import (
    CALLBACK_PREFIX,
    PUSH_TOPIC,
    RunnerResult,
    StepRunner,
    callback_data,
    owner_view,
    spec_from_source,
)
from flows.engine.playbook_spec import Playbook
from flows.templating import Renderer
from storage.db import pk, rowcount
from storage.events import EventKind, record
from storage.flow_models import FlowCursor, FlowRun, FlowRunLog, FlowRunStatus
from storage.models import Event, Owner, SegmentTransition

__all__ = [
    "RunnerResult",
    "callback_data",
    "enter_deep_link",
    "flows_job",
    "parse_callback",
    "record_button",
    "run_due_flows",
    "spec_from_source",
]

log = logging.getLogger(__name__)

Flows = Mapping[str, LoadedFlow]

BATCH = 200
#: Due runs per advancing batch (one claim, three loads, one flush, one planning of pushes):
#: larger than ``BATCH`` because each batch's fixed cost is a few statements, and its
#: transaction stays well under a second (benchmarks/bench_flows.py)
ADVANCE_BATCH = 1_000
MAX_BATCHES = 10  # per phase and pass (entering); the next pass (a minute later) takes the rest
#: Due runs are advanced batch after batch until none is due, for at most this long per pass
#: (the pass runs every minute; past the budget the next pass goes on). At the measured
#: ~1-3 ms per run (benchmarks/bench_flows.py) that is 15,000-40,000 runs a pass, not 2,000.
ADVANCE_BUDGET_S = 40.0
FIRST_PASS_LOOKBACK = timedelta(days=1)  # a fresh database does not replay old history
DATE_LOOKBACK = timedelta(days=2)


def run_due_flows(
    engine: Engine,
    renderer: Renderer,
    flows: Flows,
    playbook: Playbook | None,
    now: datetime,
    *,
    policy: DeliveryPolicy | None = None,
    batch: int = BATCH,
    advance_batch: int = ADVANCE_BATCH,
    max_batches: int = MAX_BATCHES,
    timezone: str = "UTC",
    advance_budget_s: float = ADVANCE_BUDGET_S,
) -> RunnerResult:
    """One pass of the runner (see the module docstring); safe to run twice or concurrently."""
    total = RunnerResult()
    phases: list[Callable[[_Pass], bool]] = [
        _Pass.read_events,
        _Pass.read_transitions,
        _Pass.enter_dates,
        _Pass.enter_schedules,
        _Pass.advance_due,
    ]
    started = time.monotonic()
    for phase in phases:
        advancing = phase is _Pass.advance_due
        done = 0
        while True:
            with Session(engine, expire_on_commit=False) as session:
                size = advance_batch if advancing else batch
                work = _Pass(session, renderer, flows, playbook, now, policy, size, timezone=timezone)
                full = phase(work)
                work.finish()
                session.commit()
            total.add(work.result)
            done += 1
            if not full:
                break
            # due runs: batch after batch (each its own short transaction) until none is due
            # or the pass's time budget is spent; the other phases keep their batch count
            if (advancing and time.monotonic() - started >= advance_budget_s) or (
                not advancing and done >= max_batches
            ):
                total.more = True
                break
    return total


def flows_job(
    renderer: Renderer, flows: Flows, playbook: Playbook | None, timezone: str = "UTC"
) -> Callable[[Any], RunnerResult]:
    """A scheduler job (``ctx`` has ``engine``, ``now``, ``policy``): one pass per call."""

    def job(ctx: Any) -> RunnerResult:
        return run_due_flows(ctx.engine, renderer, flows, playbook, ctx.now, policy=ctx.policy, timezone=timezone)

    job.__name__ = "run_due_flows_job"
    return job


# --- entry points for the bot ------------------------------------------------------------


def enter_deep_link(session: Session, flows: Flows, owner_id: int, param: str, now: datetime) -> FlowRun | None:
    """``/start <param>``: enter the flow whose trigger is ``deep_link: <param>``; the next
    pass advances it. ``None`` when no flow matches or a rule refuses (logged)."""
    owner = session.get(Owner, owner_id)
    if owner is None:
        return None
    for flow in flows.values():
        if flow.spec.trigger.deep_link == param:
            work = _Pass(session, None, flows, None, now, None, BATCH)
            run = work.try_enter(flow, owner, entry_key=None, context={"deep_link": param})
            work.finish()
            return run
    return None


def parse_callback(data: str) -> tuple[int, str] | None:
    prefix, _, rest = data.partition(":")
    run_id, _, action = rest.partition(":")
    if prefix != CALLBACK_PREFIX or not run_id.isdigit() or not action:
        return None
    return int(run_id), action


def record_button(session: Session, run_id: int, action: str, telegram_user_id: int, now: datetime) -> bool:
    """An owner pressed a flow button: record it as a ``button`` event (the survey answer
    that reports read; the next pass wakes a run waiting for it). False, and nothing
    recorded, unless the run is this user's, still live, and waiting right now for this
    answer (its current step is a wait the action answers, reached after the send that
    carried the button), and the wait has no answer yet: callback data is not checked by
    Telegram, so a forged run id, an old survey or a second tap counts for nothing."""
    run = session.get(FlowRun, run_id)
    if run is None or run.status != FlowRunStatus.live:
        return False
    owner = session.get(Owner, run.owner_id)
    if owner is None or owner.telegram_user_id != telegram_user_id:
        return False
    steps = spec_from_source(run.flow_source).steps
    if not 0 <= run.step_index < len(steps):
        return False
    current = steps[run.step_index]
    waiting = run.context.get("wait") or {}
    if current.wait is None or not current.wait.until or waiting.get("step") != current.id:
        return False
    if current.wait.until not in event_names(EventKind.button.value, {"action": action}):
        return False
    offered = {
        button.action
        for step in steps[: run.step_index]
        if step.send is not None
        for row in step.send.buttons
        for button in row
        if button.action
    }
    if action not in offered:
        return False
    since = datetime.fromisoformat(waiting["since"])
    answered = session.exec(
        select(col(Event.data)).where(
            col(Event.owner_id) == run.owner_id,
            col(Event.kind) == EventKind.button.value,
            col(Event.at) >= since,
        )
    ).all()
    if any((data or {}).get("run_id") == run.id for data in answered):
        return False
    record(session, run.owner_id, EventKind.button, now, action=action, run_id=run.id, flow=run.flow_key)
    # capabilities act on an answer as it is recorded (win-back's "too many messages" lowers
    # the owner's marketing cap at once)
    registry.answer(session, run.owner_id, action, now)
    return True


# --- one pass: triggers and entering (advancing is ``StepRunner``) ---------------------------


@lru_cache(maxsize=64)
def _cron(expr: str, timezone: str) -> CronTrigger:
    """A schedule's trigger, parsed once per process rather than on every pass."""
    return CronTrigger.from_crontab(expr, timezone=ZoneInfo(timezone))


class _Pass(StepRunner):
    # phase 1: events ------------------------------------------------------------------
    def read_events(self) -> bool:
        cursor = self._cursor("events", Event)
        events = self.session.exec(
            select(Event).where(col(Event.id) > cursor.position).order_by(col(Event.id)).limit(self.batch)
        ).all()
        owner_ids = {e.owner_id for e in events if e.owner_id is not None}
        live: dict[int, list[FlowRun]] = {}
        if owner_ids:
            for run in self.session.exec(
                select(FlowRun)
                .where(
                    col(FlowRun.owner_id).in_(owner_ids),
                    col(FlowRun.status) == FlowRunStatus.live,
                )
                .order_by(col(FlowRun.id))
            ).all():
                live.setdefault(run.owner_id, []).append(run)
        for event in events:
            if event.owner_id is not None:
                self._on_event(event, live.setdefault(event.owner_id, []))
            cursor.position = pk(event)
        return len(events) == self.batch

    def _on_event(self, event: Event, live: list[FlowRun]) -> None:
        """Goals first (they end runs), then wake runs that may wait for this event, then
        entries. Only events from the run's own time count. Runs are changed with guarded
        UPDATEs (never a stale ORM write), so a run that another scheduler is advancing right
        now keeps its step; a waiting run reads its answer from the event log when it wakes."""
        names = event_names(event.kind, event.data)
        for run in live:
            if run.id in self.ended or event.at < run.entered_at:
                continue
            spec = spec_from_source(run.flow_source)
            goal = goal_reached(spec.goals, event.kind, event.data, run.context)
            if goal is not None:
                self._end_by_goal(run, f"goal {goal.event}")
            elif names & {s.wait.until for s in spec.steps if s.wait and s.wait.until}:
                self.session.execute(
                    update(FlowRun)
                    .where(col(FlowRun.id) == run.id, col(FlowRun.status) == FlowRunStatus.live)
                    .values(next_at=self.now)
                )
        owner = None
        for flow in self.flows.values():
            trigger = flow.spec.trigger
            if trigger.kind is TriggerKind.event and trigger.event in names:
                owner = owner or self.session.get(Owner, event.owner_id)
                if owner is not None:
                    # issue 7 part B: an event's ``facts`` (e.g. maintenance_due's checklist and
                    # booking buttons, flows.service.bookings.scan_due) become the run's context
                    facts = (event.data or {}).get("facts")
                    context = {"facts": facts} if isinstance(facts, dict) else {}
                    entered = self.try_enter(flow, owner, f"event:{event.id}", context)
                    if entered is not None:
                        live.append(entered)

    # phase 2: cells ----------------------------------------------------------------------
    def read_transitions(self) -> bool:
        cursor = self._cursor("transitions", SegmentTransition)
        rows = self.session.exec(
            select(SegmentTransition)
            .where(col(SegmentTransition.id) > cursor.position)
            .order_by(col(SegmentTransition.id))
            .limit(self.batch)
        ).all()
        cell_flows = [f for f in self.flows.values() if f.spec.trigger.kind is TriggerKind.cell_entered]
        ids = {row.owner_id for row in rows}
        owners = {o.id: o for o in self.session.exec(select(Owner).where(col(Owner.id).in_(ids))).all()} if ids else {}
        for row in rows:
            cursor.position = pk(row)
            cell = f"{row.to_maturity}/{row.to_activity}"
            owner = owners.get(row.owner_id)
            if owner is None:
                continue
            for flow in cell_flows:
                if self._cell_picks(flow, owner.product_line, cell):
                    self.try_enter(flow, owner, f"cell:{row.id}", {"cell": cell})
        return len(rows) == self.batch

    def _cell_picks(self, flow: LoadedFlow, product_line: str, cell: str) -> bool:
        """The playbook decides which flows a cell gets; without one, the flow's trigger."""
        if self.playbook is not None:
            return flow.spec.key in self.playbook.flows_for(product_line, cell)
        return any_cell_matches(flow.spec.trigger.cell_entered or [], cell)

    # phase 3: dates -------------------------------------------------------------------------
    def enter_dates(self) -> bool:
        full = False
        for flow in self.flows.values():
            trigger = flow.spec.trigger.date
            if trigger is None:
                continue
            offset = signed_offset(trigger.offset)
            if trigger.attribute == "owner.verified_at":
                full = self._enter_verified(flow, offset) or full
                continue
            kind = registry.date_source(trigger.attribute)
            if kind is None:
                log.warning(
                    "date attribute %s is registered by no capability; flow %s waits", trigger.attribute, flow.spec.key
                )
                continue
            full = self._enter_registered(flow, kind, offset) or full
        return full

    def _enter_registered(self, flow: LoadedFlow, kind: registry.DateKind, offset: timedelta) -> bool:
        """Owners a capability's date source says are due (``-3d``: three days before)."""
        if offset > timedelta(0) and kind.looks_ahead_only:
            return False  # "after the date" has no source: the sources look ahead
        trigger = flow.spec.trigger.date
        assert trigger is not None
        entered = 0
        for entry in kind.source(self.session, -offset, self.now, trigger):
            owner = self.session.get(Owner, entry.owner_id)
            if owner is None:
                continue
            if self.try_enter(flow, owner, f"{entry.key}:{trigger.offset}", entry.context) is not None:
                entered += 1
            if entered >= self.batch:
                return True
        return False

    def _enter_verified(self, flow: LoadedFlow, offset: timedelta) -> bool:
        latest = self.now - offset
        owners = self.session.exec(
            select(Owner)
            .where(col(Owner.verified_at) <= latest, col(Owner.verified_at) > latest - DATE_LOOKBACK)
            .order_by(col(Owner.id))
            .limit(self.batch)
        ).all()
        for owner in owners:
            self.try_enter(flow, owner, f"date:verified:{owner.id}", {})
        return False

    # phase 4: schedules ---------------------------------------------------------------------
    def enter_schedules(self) -> bool:
        full = False
        for flow in self.flows.values():
            expr = flow.spec.trigger.schedule
            if expr is None:
                continue
            cursor = self._cursor(f"schedule:{flow.spec.key}", None)
            if cursor.at is None:
                cursor.at = self.now  # a new schedule starts now; no backfill
                continue
            slot = _cron(expr, self.timezone).get_next_fire_time(None, cursor.at + timedelta(seconds=1))
            if slot is None or slot > self.now:
                continue
            slot = slot.astimezone(UTC)  # keys and the cursor stay in UTC
            audience = flow.spec.audience
            query = select(Owner).where(
                col(Owner.id) > cursor.position,
                col(Owner.telegram_user_id).is_not(None),
                col(Owner.product_line).in_(audience.product_lines),
            )
            if audience.verified_only:
                query = query.where(col(Owner.stage) == "verified")
            owners = self.session.exec(query.order_by(col(Owner.id)).limit(self.batch)).all()
            for owner in owners:
                self.try_enter(flow, owner, f"schedule:{slot:%Y%m%dT%H%M}", {})
            if len(owners) == self.batch:
                cursor.position = pk(owners[-1])
                full = True
            else:
                cursor.at, cursor.position = slot, 0
        return full

    # entering ---------------------------------------------------------------------------
    def try_enter(
        self, flow: LoadedFlow, owner: Owner, entry_key: str | None, context: dict[str, Any]
    ) -> FlowRun | None:
        key = flow.spec.key
        if entry_key is not None and self._seen(key, pk(owner), entry_key):
            return None
        past = [
            PastRun(entered_at, status)
            for entered_at, status in self.session.exec(
                select(col(FlowRun.entered_at), col(FlowRun.status)).where(
                    col(FlowRun.owner_id) == owner.id, col(FlowRun.flow_key) == key
                )
            ).all()
        ]
        refusal = audience_refusal(flow.spec.audience, owner_view(owner)) or entry_refusal(
            flow.spec.entry, past, self.now
        )
        if refusal is not None:
            self._log(None, owner.id, key, "skipped", refusal, entry_key=entry_key)
            self.result.skipped += 1
            return None
        run = FlowRun(
            owner_id=pk(owner),
            flow_key=key,
            flow_version=flow.version,
            flow_source=flow.source,
            entry_key=entry_key,
            step_index=0,
            step_id=flow.spec.steps[0].id,
            status=FlowRunStatus.live,
            next_at=self.now,
            context=context,
            entered_at=self.now,
            updated_at=self.now,
        )
        try:
            with self.session.begin_nested():
                self.session.add(run)
                self.session.flush()
        except IntegrityError:  # entered meanwhile by another pass: same cause or a live run
            return None
        self._log(run, owner.id, key, "entered", entry_key, entry_key=entry_key)
        self.result.entered += 1
        return run

    def _seen(self, flow_key: str, owner_id: int, entry_key: str) -> bool:
        if any(
            line["entry_key"] == entry_key and line["owner_id"] == owner_id and line["flow_key"] == flow_key
            for line in self.lines
        ):
            return True  # logged in this batch, not yet written
        run = self.session.exec(
            select(col(FlowRun.id)).where(
                col(FlowRun.owner_id) == owner_id,
                col(FlowRun.flow_key) == flow_key,
                col(FlowRun.entry_key) == entry_key,
            )
        ).first()
        if run is not None:
            return True
        logged = self.session.exec(
            select(col(FlowRunLog.id)).where(
                col(FlowRunLog.flow_key) == flow_key,
                col(FlowRunLog.owner_id) == owner_id,
                col(FlowRunLog.entry_key) == entry_key,
            )
        ).first()
        return logged is not None

    def _end_by_goal(self, run: FlowRun, reason: str) -> None:
        ended = rowcount(
            self.session.execute(
                update(FlowRun)
                .where(col(FlowRun.id) == run.id, col(FlowRun.status) == FlowRunStatus.live)
                .values(
                    status=FlowRunStatus.goal_reached,
                    ended_at=self.now,
                    updated_at=self.now,
                    next_at=None,
                    end_reason=reason,
                    rev=col(FlowRun.rev) + 1,
                )
            )
        )
        if ended != 1:
            return
        self.ended.add(run.id or 0)  # later events in this batch leave it alone
        self._log(run, run.owner_id, run.flow_key, FlowRunStatus.goal_reached, reason, run.step_id)
        self.result.ended += 1
        cancel_topic(self.session, PUSH_TOPIC, f"run:{run.id}", "goal reached", self.now)

    def _cursor(self, name: str, table: Any) -> FlowCursor:
        cursor = self.session.get(FlowCursor, name)
        if cursor is None:
            position = 0
            if table is not None:  # start a day back, not at the beginning of history
                column = table.at
                position = (
                    self.session.exec(select(func.max(table.id)).where(column < self.now - FIRST_PASS_LOOKBACK)).first()
                    or 0
                )
            cursor = FlowCursor(name=name, position=position)
            try:
                with self.session.begin_nested():
                    self.session.add(cursor)
                    self.session.flush()
            except IntegrityError:  # created meanwhile by a concurrent pass
                cursor = self.session.get(FlowCursor, name)
                assert cursor is not None
        return cursor
