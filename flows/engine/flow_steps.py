"""Running a flow's steps for one run: send, wait, branch, set, notify the partner, exit, and
the steps capabilities register (``flows.engine.registry``). ``StepRunner`` is the half of a runner pass (``flows.engine.runner``) that moves live
runs forward; the other half (triggers, entering) lives in ``flows.engine.runner``.

A run advances step by step until a wait or the end, within one claimed transaction. Every
message goes to the outbox with the dedupe key ``flow:<key>:<run_id>:<step_id>`` (so a step
visited twice by a loop sends once) and a topic for send-time suppression; what the outbox
planned (queued, deferred by quiet hours or the cap, suppressed) is written to the run's log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import yaml
from jinja2 import TemplateError
from sqlalchemy import insert, tuple_, update
from sqlmodel import Session, col, select

from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import Push, enqueue_many
from flows.engine import registry
from flows.engine.flow_files import LoadedFlow, _Loader  # the same YAML 1.2 reading as the files
from flows.engine.flow_rules import TAGS_KEY, OwnerView, condition_holds, event_names
from flows.engine.flow_spec import FlowSpec, Step, parse_duration
from flows.engine.playbook_spec import Playbook
from flows.templating import Renderer
from storage import outbox as store
from storage.db import pk, table_of
from storage.events import EventKind
from storage.flow_models import FlowRun, FlowRunLog, FlowRunStatus
from storage.models import Event, MessageClass, OutboxStatus, Owner, Partner

log = logging.getLogger(__name__)

MAX_STEPS = 50  # per run and pass: a branch loop without a wait cannot spin forever
CLAIM_CHUNK = 500  # (id, rev) pairs per claiming UPDATE
CALLBACK_PREFIX = "fl"  # matches an aiogram CallbackData(prefix="fl") with run_id, action
PUSH_TOPIC = "flow_run"

Flows = Mapping[str, LoadedFlow]


@dataclass
class RunnerResult:
    """What one pass did (summed over its batches)."""

    entered: int = 0
    skipped: int = 0
    steps: int = 0
    queued: int = 0
    ended: int = 0
    more: bool = False  # a batch limit was hit: the next pass continues

    def add(self, other: RunnerResult) -> None:
        self.entered += other.entered
        self.skipped += other.skipped
        self.steps += other.steps
        self.queued += other.queued
        self.ended += other.ended
        self.more = self.more or other.more


def callback_data(run_id: int, action: str) -> str:
    return f"{CALLBACK_PREFIX}:{run_id}:{action}"


_SPECS: dict[str, FlowSpec] = {}


def spec_from_source(source: str) -> FlowSpec:
    """The spec a run started with, from the YAML text it keeps (cached by text)."""
    spec = _SPECS.get(source)
    if spec is None:
        spec = FlowSpec.model_validate(yaml.load(source, Loader=_Loader))
        if len(_SPECS) > 256:
            _SPECS.clear()
        _SPECS[source] = spec
    return spec


_STOP = registry.STOP  # a step handler's "the run waits or ended"


@dataclass
class _PendingPush:
    push: Push
    line: dict[str, Any]  # its why-log line, outcome filled in when the batch's pushes are planned


@dataclass
class StepRunner:
    """One pass's unit of work on one session: moves due runs forward."""

    session: Session
    renderer: Renderer | None
    flows: Flows
    playbook: Playbook | None
    now: datetime
    policy: DeliveryPolicy | None
    batch: int
    result: RunnerResult = field(default_factory=RunnerResult)
    ended: set[int] = field(default_factory=set)
    pending: list[_PendingPush] = field(default_factory=list)  # this batch's pushes, planned at its end
    timezone: str = "UTC"  # schedules' cron lines read in this zone (Settings.timezone)
    #: why-log lines as column values, written in one INSERT by ``finish`` (an ORM object per
    #: line cost more than the step itself)
    lines: list[dict[str, Any]] = field(default_factory=list)
    #: the batch's owners and partners, held: the session's identity map keeps only objects
    #: someone references, so a preload without these would be read again row by row
    owners: dict[int, Owner] = field(default_factory=dict)
    partners: dict[int, Partner] = field(default_factory=dict)

    def finish(self) -> None:
        """Before the unit of work commits: plan what is still pending and write the why-log."""
        self._plan_pushes()
        if self.lines:
            lines, self.lines = self.lines, []
            self.session.execute(insert(table_of(FlowRunLog)), lines)

    # phase 5: advancing -------------------------------------------------------------------
    def advance_due(self) -> bool:
        """One batch of due runs: claimed with one UPDATE, loaded with their owners and
        partners in three SELECTs, then advanced one by one (each in its own savepoint)."""
        due = self.session.exec(
            select(col(FlowRun.id), col(FlowRun.rev))
            .where(col(FlowRun.status) == FlowRunStatus.live, col(FlowRun.next_at) <= self.now)
            .order_by(col(FlowRun.next_at), col(FlowRun.id))
            .limit(self.batch)
        ).all()
        if not due:
            return False
        claimed = self._claim(list(due))
        runs = {
            run.id: run
            for run in self.session.exec(
                select(FlowRun).where(col(FlowRun.id).in_(claimed)).execution_options(populate_existing=True)
            ).all()
        }
        self._preload(runs.values())
        batch = [runs[run_id] for run_id, _rev in due if run_id in runs]  # others: another pass has them
        before = (replace(self.result), len(self.pending), len(self.lines), set(self.ended))
        try:
            # the whole batch in one savepoint and one flush: the common case, no step raises
            with self.session.begin_nested():
                for run in batch:
                    self.advance(run)
                self.session.flush()
        except Exception:  # noqa: BLE001 - the run-by-run pass below logs which run and why
            # a step raised: nothing of the batch stays; again run by run, so only that one fails
            self.result, pending, lines, self.ended = before
            del self.pending[pending:], self.lines[lines:]
            self._advance_one_by_one([pk(run) for run in batch])
        self._plan_pushes()
        return len(due) == self.batch

    def _advance_one_by_one(self, run_ids: list[int]) -> None:
        """Each run in its own savepoint: a run whose step raises ends with the reason, the
        others advance."""
        for run_id in run_ids:
            run = self.session.get(FlowRun, run_id)
            if run is None or run.status != FlowRunStatus.live:
                continue
            pending, lines = len(self.pending), len(self.lines)
            try:
                with self.session.begin_nested():
                    self.advance(run)
                    self.session.flush()
            except Exception as exc:
                del self.pending[pending:], self.lines[lines:]  # they went with its rolled-back step
                log.exception("flow run %s (%s) failed at step %s", run_id, run.flow_key, run.step_id)
                self._fail(run_id, f"error: {type(exc).__name__}")

    def _claim(self, due: list[Any]) -> list[int]:
        """Bump ``rev`` of the due runs still at the read ``rev`` (a concurrent pass that got
        one first leaves it out); returns the ids this pass now owns."""
        claimed: list[int] = []
        for start in range(0, len(due), CLAIM_CHUNK):
            chunk = due[start : start + CLAIM_CHUNK]
            claimed += (
                self.session.execute(
                    update(FlowRun)
                    .where(
                        col(FlowRun.id).in_([i for i, _r in chunk]),  # the primary key leads the search
                        tuple_(col(FlowRun.id), col(FlowRun.rev)).in_([(i, r) for i, r in chunk]),
                        col(FlowRun.status) == FlowRunStatus.live,
                    )
                    .values(rev=col(FlowRun.rev) + 1)
                    .returning(col(FlowRun.id))
                    .execution_options(synchronize_session=False)  # the batch is loaded fresh next
                )
                .scalars()
                .all()
            )
        return claimed

    def _preload(self, runs: Any) -> None:
        """Owners and partners of the batch into the session (``session.get`` then finds them
        without a query each)."""
        owner_ids = {run.owner_id for run in runs}
        if not owner_ids:
            return
        owners = self.session.exec(select(Owner).where(col(Owner.id).in_(owner_ids))).all()
        self.owners.update((pk(o), o) for o in owners)
        partner_ids = {o.partner_id for o in owners if o.partner_id is not None}
        if partner_ids:
            partners = self.session.exec(select(Partner).where(col(Partner.id).in_(partner_ids))).all()
            self.partners.update((pk(p), p) for p in partners)

    def _owner(self, owner_id: int) -> Owner | None:
        return self.owners.get(owner_id) or self.session.get(Owner, owner_id)

    def _partner(self, partner_id: int | None) -> Partner | None:
        if partner_id is None:
            return None
        return self.partners.get(partner_id) or self.session.get(Partner, partner_id)

    def _fail(self, run_id: int, reason: str) -> None:
        """End a run whose step raised (its step's work was rolled back), with the reason."""
        self.session.expire_all()
        run = self.session.get(FlowRun, run_id)
        assert run is not None
        self._finish(run, FlowRunStatus.exited, reason)

    def advance(self, run: FlowRun) -> None:
        try:
            spec = spec_from_source(run.flow_source)
        except Exception as exc:
            log.exception("flow run %s: stored flow text does not load", run.id)
            self._finish(run, FlowRunStatus.exited, f"flow text does not load: {type(exc).__name__}")
            return
        owner = self._owner(run.owner_id)
        if owner is None:
            self._finish(run, FlowRunStatus.exited, "owner gone")
            return
        for _ in range(MAX_STEPS):
            if run.step_index >= len(spec.steps):
                self._finish(run, FlowRunStatus.done, "end of flow")
                return
            step = spec.steps[run.step_index]
            run.step_id = step.id
            outcome = self._do(run, spec, owner, step)
            self.result.steps += 1
            if outcome is _STOP:
                run.updated_at = self.now
                return
            target = outcome if isinstance(outcome, str) else step.next
            run.step_index = spec.index(target) if target else run.step_index + 1
        self._finish(run, FlowRunStatus.exited, f"more than {MAX_STEPS} steps without a wait")

    def _do(self, run: FlowRun, spec: FlowSpec, owner: Owner, step: Step) -> Any:
        """One step: the engine's own word, or the handler its capability registered."""
        if step.extension is None:
            return getattr(self, f"_step_{step.kind}")(run, spec, owner, step)
        kind = registry.step_kind(step.kind)
        if kind is None:  # a stored run names a word no capability registers any more
            self._finish(run, FlowRunStatus.exited, f"unknown step {step.kind}")
            return _STOP
        return kind.handler(self, run, spec, owner, step, step.action)

    def log(
        self, run: FlowRun, owner_id: int, flow_key: str, outcome: str, reason: str | None, step_id: str | None = None
    ) -> None:
        """The why-log line a registered step writes (``registry.StepContext``)."""
        self._log(run, owner_id, flow_key, outcome, reason, step_id)

    def _step_send(self, run: FlowRun, spec: FlowSpec, owner: Owner, step: Step) -> Any:
        send = step.send
        assert send is not None
        if owner.telegram_user_id is None:
            self._log(run, owner.id, spec.key, "skipped", "no Telegram account", step.id)
            return None
        text = self._render(run, send.template, owner.locale, owner)
        if text is None:
            return _STOP
        labels = self._labels(run, send, owner)
        if labels is None:
            return _STOP
        buttons = [
            [
                {"text": labels[id(b)], "url": b.url}
                if b.url
                else {"text": labels[id(b)], "callback_data": callback_data(run.id or 0, b.action or "")}
                for b in row
            ]
            for row in send.buttons
        ]
        # issue 7 part B: rows the trigger computed (booking slots), after the file's own
        buttons += (run.context.get("facts") or {}).get("buttons") or []
        expires = self.now + parse_duration(send.expires_after) if send.expires_after else None
        topic = _topic(run, spec)
        self._push(
            run,
            owner,
            spec.key,
            step.id,
            Push(
                dedupe_key=_dedupe_key(spec.key, run, step.id),
                chat_id=owner.telegram_user_id,
                text=text,
                message_class=MessageClass(send.message_class),
                owner_id=owner.id,
                partner_id=owner.partner_id,
                buttons=buttons or None,
                expires_at=expires,
                topic=topic.get("topic"),
                subject=topic.get("subject"),
            ),
        )
        return None

    def _step_notify_partner(self, run: FlowRun, spec: FlowSpec, owner: Owner, step: Step) -> Any:
        notify = step.notify_partner
        assert notify is not None
        partner = self._partner(owner.partner_id)
        if partner is None or partner.telegram_user_id is None:
            self._log(run, owner.id, spec.key, "skipped", "no partner chat", step.id)
            return None
        text = self._render(run, notify.template, None, owner)
        if text is None:
            return _STOP
        self._push(
            run,
            owner,
            spec.key,
            step.id,
            Push(
                dedupe_key=_dedupe_key(spec.key, run, step.id),
                chat_id=partner.telegram_user_id,
                text=text,
                message_class=MessageClass.transactional,
                partner_id=partner.id,
            ),
        )
        return None

    def _step_wait(self, run: FlowRun, spec: FlowSpec, owner: Owner, step: Step) -> Any:
        wait = step.wait
        assert wait is not None
        state = run.context.get("wait") or {}
        if state.get("step") != step.id:
            deadline = self.now + parse_duration(wait.duration or wait.timeout or "0s")
            run.context = {
                **run.context,
                "wait": {
                    "step": step.id,
                    "until": wait.until,
                    "since": self.now.isoformat(),
                    "deadline": deadline.isoformat(),
                },
            }
            run.next_at = deadline
            self._log(
                run,
                owner.id,
                spec.key,
                "waiting",
                f"until {wait.until}" if wait.until else f"for {wait.duration}",
                step.id,
            )
            return _STOP
        deadline = datetime.fromisoformat(state["deadline"])
        answered = wait.until is not None and self._answered(
            pk(owner), wait.until, datetime.fromisoformat(state["since"])
        )
        if not answered and self.now < deadline:
            run.next_at = deadline
            return _STOP
        context = dict(run.context)
        context.pop("wait", None)
        run.context = context
        if wait.until is None:
            return None
        self._log(run, owner.id, spec.key, "answered" if answered else "timeout", wait.until, step.id)
        return (wait.yes if answered else wait.no) or None

    def _step_branch(self, run: FlowRun, spec: FlowSpec, owner: Owner, step: Step) -> Any:
        branch = step.branch
        assert branch is not None
        return branch.then if condition_holds(branch.if_, owner_view(owner)) else branch.else_

    def _step_set(self, run: FlowRun, spec: FlowSpec, owner: Owner, step: Step) -> Any:
        action = step.set
        assert action is not None
        attributes = dict(owner.attributes or {})
        if action.attribute is not None:
            attributes[action.attribute] = action.value
            what = f"attribute {action.attribute}={action.value!r}"
        else:
            tags = [t for t in attributes.get(TAGS_KEY) or [] if t != action.tag]
            if action.value not in (False, None):
                tags.append(action.tag)
            attributes[TAGS_KEY] = tags
            what = f"tag {action.tag}" + ("" if action.value not in (False, None) else " removed")
        owner.attributes = attributes
        owner.updated_at = self.now
        self._log(run, owner.id, spec.key, "set", what, step.id)
        return None

    def _step_exit(self, run: FlowRun, spec: FlowSpec, owner: Owner, step: Step) -> Any:
        self._finish(run, FlowRunStatus.exited, step.exit.reason if step.exit else "exit")
        return _STOP

    # helpers ----------------------------------------------------------------------------------
    def _answered(self, owner_id: int, name: str, since: datetime) -> bool:
        """Whether the owner did ``name`` (an event kind or a button action) since ``since``."""
        events = self.session.exec(
            select(col(Event.kind), col(Event.data)).where(
                col(Event.owner_id) == owner_id,
                col(Event.at) >= since,
                col(Event.kind).in_([name, EventKind.button.value]),
            )
        ).all()
        return any(name in event_names(kind, data) for kind, data in events)

    def _last_answer(self, run: FlowRun) -> str:
        """The run's latest button answer (``winback.price``), from the event log."""
        rows = self.session.exec(
            select(col(Event.data))
            .where(
                col(Event.owner_id) == run.owner_id,
                col(Event.kind) == EventKind.button.value,
                col(Event.at) >= run.entered_at,
            )
            .order_by(col(Event.id).desc())
        ).all()
        return next((str(d.get("action")) for d in rows if d.get("run_id") == run.id), "")

    def _render(self, run: FlowRun, template: str, locale: str | None, owner: Owner) -> str | None:
        assert self.renderer is not None
        partner = self._partner(owner.partner_id)
        locale = self.renderer.locale_for(locale)
        try:
            return self.renderer.render(
                template,
                locale,
                owner_name=owner.name or "",
                owner_phone=owner.phone or "",
                owner_id=owner.id,
                cell=f"{owner.maturity}/{owner.activity}",
                partner_name=partner.name if partner else "",
                # a query per message: only for the texts that show the answer
                answer=self._last_answer(run) if self.renderer.uses(template, locale, "answer") else "",
                flow=run.flow_key,
                facts=run.context.get("facts") or {},  # issue 7 part B: the trigger's facts
                **registry.render_vars(run.context, locale),  # a capability's (the gift, in this language)
            )
        except TemplateError as exc:
            log.error("flow %s run %s: template %s failed: %s", run.flow_key, run.id, template, exc)
            self._finish(run, FlowRunStatus.exited, f"template {template}: {exc}"[:200])
            return None

    def _labels(self, run: FlowRun, send: Any, owner: Owner) -> dict[int, str] | None:
        """Each button's label in the owner's language (``label`` is a template id; ``text``
        a literal from an older file); None when a label template fails (the run ended)."""
        labels: dict[int, str] = {}
        for row in send.buttons:
            for button in row:
                if button.label is None:
                    labels[id(button)] = button.text or ""
                    continue
                text = self._render(run, button.label, owner.locale, owner)
                if text is None:
                    return None
                labels[id(button)] = text.strip()
        return labels

    def _push(self, run: FlowRun, owner: Owner, key: str, step_id: str, push: Push) -> None:
        """Queue a step's push: planned with the batch's others in one ``enqueue_many`` at the
        end of the batch (``_plan_pushes``). Its why-log line is written now, in step order,
        and gets its outcome then."""
        self._log(run, pk(owner), key, "queued", None, step_id)
        self.pending.append(_PendingPush(push, self.lines[-1]))

    def _plan_pushes(self) -> None:
        """Plan the batch's pushes together (quiet hours, the cap and dedupe keys as one by
        one: ``enqueue_many`` counts earlier pushes of the same batch) and fill in their
        log lines: already in the outbox, suppressed, deferred or queued."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        keys = [p.push.dedupe_key for p in pending]
        taken = store.existing_keys(self.session, keys)
        enqueue_many(self.session, [p.push for p in pending], self.policy)
        rows = store.planned_rows(self.session, keys)
        for item in pending:
            key = item.push.dedupe_key
            row = rows.get(key)
            line = item.line
            if row is None or key in taken:
                line["reason"] = "already in the outbox"
                continue
            taken.add(key)  # a second push of the same key in this batch was not created
            status, reason, not_before = row
            if status == OutboxStatus.skipped.value:
                line["outcome"], line["reason"] = "suppressed", reason and reason[:300]
            elif reason:
                line["outcome"] = "deferred"
                line["reason"] = f"{reason} until {not_before:%Y-%m-%d %H:%M}"[:300]
                self.result.queued += 1
            else:
                self.result.queued += 1

    def _finish(self, run: FlowRun, status: str, reason: str) -> None:
        run.status = status
        run.ended_at = self.now
        run.updated_at = self.now
        run.next_at = None
        run.end_reason = reason[:200]
        self._log(
            run, run.owner_id, run.flow_key, "done" if status == FlowRunStatus.done else status, reason, run.step_id
        )
        self.result.ended += 1

    def _log(
        self,
        run: FlowRun | None,
        owner_id: int | None,
        flow_key: str,
        outcome: str,
        reason: str | None,
        step_id: str | None = None,
        *,
        entry_key: str | None = None,
    ) -> None:
        assert owner_id is not None
        self.lines.append(
            {
                "run_id": run.id if run else None,
                "owner_id": owner_id,
                "flow_key": flow_key,
                "step_id": step_id,
                "entry_key": entry_key,
                "outcome": outcome,
                "reason": (reason or None) and reason[:300],
                "at": self.now,
            }
        )


def owner_view(owner: Owner) -> OwnerView:
    return OwnerView(
        product_line=owner.product_line,
        maturity=owner.maturity,
        activity=owner.activity,
        stage=owner.stage,
        familiarity=owner.familiarity or owner.segment_familiarity,
        locale=owner.locale,
        attributes=owner.attributes,
        lookup=lambda name: registry.condition_value(owner, name),  # member.level and the like
    )


def _topic(run: FlowRun, spec: FlowSpec) -> dict[str, str]:
    """What a send is about, for send-time suppression: a run started by a registered date
    says its subject (a reminder about one gift is dropped the moment that gift is redeemed);
    any other send is dropped when its run reaches a goal."""
    if spec.trigger.date is not None:
        kind = registry.date_source(spec.trigger.date.attribute)
        topic = kind.topic(run.context) if kind is not None and kind.topic is not None else None
        if topic:
            return topic
    return {"topic": PUSH_TOPIC, "subject": f"run:{run.id}"}


def _dedupe_key(flow_key: str, run: FlowRun, step_id: str) -> str:
    return step_dedupe_key(flow_key, run.id, step_id)


def step_dedupe_key(flow_key: str, run_id: int | None, step_id: str) -> str:
    """The outbox key of a run's step: one message per run and step, however often a pass runs."""
    return f"flow:{flow_key}:{run_id}:{step_id}"
