"""What capability packages teach the flow engine: step kinds, date triggers, button answers.

The engine knows the flow language's own words (send, wait, branch, set, notify the partner,
exit) and nothing about gifts, coupons or win-back. A capability package that gives flows a
word of its own registers it here when it is imported (``flows.growth`` registers
``grant_gift``, the ``gift.expires_at`` date trigger and win-back's answers); ``flows``'
``__init__`` imports those packages, so any use of the engine sees every registration.

Public face: ``register_step``, ``register_date_source``, ``register_answer_hook``,
``register_render_vars``, ``register_events``, ``register_vocabulary``,
``register_condition_field``, ``register_goal_filter``, ``register_date_fields``, and the lookups the engine and the flow check
use (``step_kind``, ``step_kinds``, ``date_source``, ``date_attributes``, ``known_actions``,
``namespace_actions``, ``known_events``, ``answer``, ``render_vars``, ``goal_fields``,
``goal_accepts``, ``date_fields``). ``STOP`` is what a step handler returns when
the run waits or has ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel
from sqlmodel import Session

if TYPE_CHECKING:  # the engine's own types, for the handler signatures only
    from flows.engine.flow_spec import DateTrigger, FlowSpec, Step
    from flows.templating import Renderer
    from storage.flow_models import FlowRun
    from storage.models import Owner

STOP = object()  # a step handler's "the run waits or has ended"


class StepContext(Protocol):
    """What a registered step handler may use of the runner's pass."""

    session: Session
    now: datetime
    renderer: Renderer | None  # None only where no step renders (the flow check, some tests)

    def log(
        self, run: FlowRun, owner_id: int, flow_key: str, outcome: str, reason: str | None, step_id: str | None = None
    ) -> None: ...


@dataclass(frozen=True)
class CheckContext:
    """What the flow check knows about the deployment (``autocircle flows check``)."""

    locales: tuple[str, ...] = ("zh", "en")
    template_exists: Callable[[str, str], bool] = lambda _template, _locale: True


StepHandler = Callable[["StepContext", "FlowRun", "FlowSpec", "Owner", "Step", Any], Any]
StepCheck = Callable[[Any, CheckContext], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class StepKind:
    """A step word a capability adds: its YAML shape, what it does, what the check verifies.

    ``check`` yields ``(field, message)`` for each mistake in one step's value (``type``,
    "unknown gift type 'newcommer'"), so the flow check can name file, line and field.
    """

    name: str
    model: type[BaseModel]
    handler: StepHandler
    check: StepCheck | None = None


@dataclass(frozen=True)
class DateEntry:
    """One owner a date trigger is due for: the unique entry key and the run's context."""

    owner_id: int
    key: str
    context: dict[str, Any]


DateSource = Callable[[Session, timedelta, datetime, "DateTrigger"], Iterable[DateEntry]]
TopicRule = Callable[[Mapping[str, Any]], dict[str, str] | None]
AnswerHook = Callable[[Session, int, str, datetime], None]
RenderVars = Callable[[Mapping[str, Any], str], dict[str, Any]]
ConditionProvider = Callable[["Owner"], Any]  # the owner row (attached to the pass's session)
# (the goal's registered fields, the event's data, the run's context) -> may the event meet it
GoalFilter = Callable[[Mapping[str, str], Mapping[str, Any], Mapping[str, Any]], bool]


@dataclass(frozen=True)
class DateKind:
    """A date a flow can be triggered by (``gift.expires_at``): who is due, and what a send
    from such a run is about (so the outbox drops it once its subject is done)."""

    attribute: str
    source: DateSource
    topic: TopicRule | None = None
    looks_ahead_only: bool = True  # "N days after the date" has no source


@dataclass(frozen=True)
class AnswerKind:
    """A capability's button answers: the hook that acts on them as they are recorded and the
    actions it knows (``winback.price``, ...), as the capability registered them. The first
    part of each action (``winback``) is a namespace the capability owns: the flow check
    accepts a button in that namespace only when its action is one the hook knows exactly."""

    hook: AnswerHook
    actions: frozenset[str]

    def known_actions(self) -> frozenset[str]:
        return self.actions

    def namespaces(self) -> frozenset[str]:
        return frozenset(_namespace(a) for a in self.actions)


def _namespace(action: str) -> str:
    return action.split(".", 1)[0]


@dataclass
class _Registry:
    steps: dict[str, StepKind] = field(default_factory=dict)
    dates: dict[str, DateKind] = field(default_factory=dict)
    answers: list[AnswerKind] = field(default_factory=list)
    render: list[RenderVars] = field(default_factory=list)
    events: set[str] = field(default_factory=set)
    vocabularies: dict[str, frozenset[str]] = field(default_factory=dict)
    conditions: dict[str, ConditionProvider] = field(default_factory=dict)
    goal_filters: list[tuple[GoalFilter, frozenset[str]]] = field(default_factory=list)
    date_fields: set[str] = field(default_factory=set)


_REGISTRY = _Registry()


def register_step(name: str, model: type[BaseModel], handler: StepHandler, check: StepCheck | None = None) -> None:
    """Teach flows the step word ``name`` (its value validated as ``model``)."""
    _REGISTRY.steps[name] = StepKind(name, model, handler, check)


def register_date_source(attribute: str, source: DateSource, topic: TopicRule | None = None) -> None:
    """Teach the ``date`` trigger the attribute ``attribute`` and who is due for it."""
    _REGISTRY.dates[attribute] = DateKind(attribute, source, topic)


def register_answer_hook(hook: AnswerHook, actions: Iterable[str]) -> None:
    """Call ``hook`` for each recorded button answer; ``actions`` are the answers it
    understands (the flow check accepts buttons offering them). Registering the same hook
    again replaces its actions."""
    _REGISTRY.answers[:] = [kind for kind in _REGISTRY.answers if kind.hook is not hook]
    _REGISTRY.answers.append(AnswerKind(hook, frozenset(actions)))


def register_render_vars(provider: RenderVars) -> None:
    """Template variables a capability derives from a run's context (in the message locale)."""
    if provider not in _REGISTRY.render:
        _REGISTRY.render.append(provider)


def register_events(names: Iterable[str]) -> None:
    """Event names recorded outside ``storage.events.EventKind`` that flows may wait for."""
    _REGISTRY.events.update(names)


def register_vocabulary(name: str, values: Iterable[str]) -> None:
    """The values a capability defines for a name the flow language keeps (``gift_type``)."""
    _REGISTRY.vocabularies[name] = frozenset(values)


def register_condition_field(name: str, provider: ConditionProvider) -> None:
    """A field flow conditions may test (``{field: member.level, in: [gold, black]}``);
    ``provider(owner)`` reads its value for the owner (``sqlalchemy.orm.object_session(owner)``
    is the pass's session)."""
    _REGISTRY.conditions[name] = provider


def register_goal_filter(accepts: GoalFilter, fields: Iterable[str] = ()) -> None:
    """A capability's say on whether an event meets a run's goal: ``accepts(goal_fields,
    event_data, run_context)`` is False to refuse it (a reminder about one gift is met only by
    that gift's redemption). ``fields`` are the goal keys it adds to the flow language
    (``{event: gift_redeemed, gift_type: newcomer}``), strings. Registering the same filter
    again replaces its fields."""
    _REGISTRY.goal_filters[:] = [(f, names) for f, names in _REGISTRY.goal_filters if f is not accepts]
    _REGISTRY.goal_filters.append((accepts, frozenset(fields)))


def register_date_fields(fields: Iterable[str]) -> None:
    """Keys a capability adds to the ``date`` trigger (``gift_type``), strings; its date
    source reads them from ``trigger.option(name)``."""
    _REGISTRY.date_fields.update(fields)


def goal_fields() -> frozenset[str]:
    return frozenset(name for _, names in _REGISTRY.goal_filters for name in names)


def date_fields() -> frozenset[str]:
    return frozenset(_REGISTRY.date_fields)


def goal_accepts(fields: Mapping[str, str], data: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """Every registered goal filter lets this event meet the goal."""
    return all(accepts(fields, data, context) for accepts, _ in _REGISTRY.goal_filters)


def condition_fields() -> frozenset[str]:
    return frozenset(_REGISTRY.conditions)


def condition_value(owner: Owner, name: str) -> Any:
    provider = _REGISTRY.conditions.get(name)
    return provider(owner) if provider is not None else None


def vocabulary(name: str) -> frozenset[str] | None:
    return _REGISTRY.vocabularies.get(name)


def step_kind(name: str) -> StepKind | None:
    return _REGISTRY.steps.get(name)


def step_kinds() -> Mapping[str, StepKind]:
    return dict(_REGISTRY.steps)


def date_source(attribute: str) -> DateKind | None:
    return _REGISTRY.dates.get(attribute)


def date_attributes() -> frozenset[str]:
    return frozenset(_REGISTRY.dates)


def known_actions() -> frozenset[str]:
    return frozenset(a for kind in _REGISTRY.answers for a in kind.known_actions())


def namespace_actions(action: str) -> frozenset[str] | None:
    """The actions the capabilities owning ``action``'s namespace know (``winback.prise`` ->
    win-back's ``winback.price``, ...), or None when no registered answer hook owns it."""
    namespace = _namespace(action)
    owners = [kind for kind in _REGISTRY.answers if namespace in kind.namespaces()]
    if not owners:
        return None
    return frozenset(a for kind in owners for a in kind.known_actions())


def known_events() -> frozenset[str]:
    from storage.events import EventKind

    return frozenset({k.value for k in EventKind} | _REGISTRY.events)


def answer(session: Session, owner_id: int, action: str, now: datetime) -> None:
    """Let every capability act on a button answer as it is recorded."""
    for kind in _REGISTRY.answers:
        kind.hook(session, owner_id, action, now)


def render_vars(context: Mapping[str, Any], locale: str) -> dict[str, Any]:
    """The registered template variables for a run's context, merged in registration order."""
    out: dict[str, Any] = {}
    for provider in _REGISTRY.render:
        out.update(provider(context, locale))
    return out
