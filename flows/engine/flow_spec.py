"""The flow language: what a flow file may say, validated with pydantic.

A flow is a scripted sequence an owner enters by a trigger: send, wait, branch, notify the
partner, set an attribute or tag, exit, and the steps capability packages register
(``flows.engine.registry``: ``grant_gift`` from growth, for one). Operations people write these
files, so the schema is strict (unknown keys are errors) and every error names the field.
"""

from __future__ import annotations

import enum
import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.engine import registry
from storage.segments import ACTIVITY_ORDER, MATURITY_ORDER

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MATURITIES = tuple(m.value for m in MATURITY_ORDER)  # the segment engine's own order
ACTIVITIES = tuple(a.value for a in ACTIVITY_ORDER)
CELLS = tuple(f"{m}/{a}" for m in MATURITIES for a in ACTIVITIES)
KEY = re.compile(r"^[a-z][a-z0-9_]{1,48}$")


def parse_duration(value: str | int) -> timedelta:
    """``30m``, ``12h``, ``3d``, ``2w`` (or plain seconds)."""
    if isinstance(value, int):
        return timedelta(seconds=value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30m, 12h, 3d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TriggerKind(str, enum.Enum):
    event = "event"
    cell_entered = "cell_entered"
    schedule = "schedule"
    date = "date"
    deep_link = "deep_link"


def _registered_fields(data: Any, known: frozenset[str]) -> Any:
    """Move the keys capabilities registered for this mapping (a goal's or a date trigger's
    ``gift_type``) into ``extension`` as sorted ``(name, value)`` pairs; a null value is no
    value. Other unknown keys stay, so the strict schema still names them."""
    if not isinstance(data, dict):
        return data
    if "extension" in data:  # the field that keeps them is not a key of the language
        raise WordError(("extension",), "Extra inputs are not permitted")
    pairs: list[tuple[str, str]] = []
    for name in sorted(known & data.keys()):
        value = data[name]
        if value is None:
            continue
        if not isinstance(value, str):
            raise WordError((name,), "Input should be a valid string")
        pairs.append((name, value))
    rest = {k: v for k, v in data.items() if k not in known}
    return {**rest, "extension": tuple(pairs)} if pairs else rest


class Extended(Strict):
    """A mapping of the flow language that capabilities may add string keys to."""

    extension: tuple[tuple[str, str], ...] = ()  # (name, value) of the registered keys given

    @property
    def options(self) -> dict[str, str]:
        """The registered keys this mapping gives (``{"gift_type": "newcomer"}``)."""
        return dict(self.extension)

    def option(self, name: str) -> str | None:
        return self.options.get(name)


class DateTrigger(Extended):
    """A date attribute with an offset: ``gift.expires_at`` minus three days; keys that
    capabilities register (growth's ``gift_type``) narrow who their date source enters."""

    attribute: str
    offset: str = "0d"

    @model_validator(mode="before")
    @classmethod
    def _registered(cls, data: Any) -> Any:
        return _registered_fields(data, registry.date_fields())

    @field_validator("offset")
    @classmethod
    def _offset(cls, value: str) -> str:
        text = value.strip()
        sign = -1 if text.startswith("-") else 1
        parse_duration(text.lstrip("+-"))
        return ("-" if sign < 0 else "") + text.lstrip("+-")

    @field_validator("attribute")
    @classmethod
    def _attribute(cls, value: str) -> str:
        known = date_attributes()
        if value not in known:
            raise ValueError(f"unknown date attribute {value!r}; known: {', '.join(sorted(known))}")
        return value


OWN_DATE_ATTRIBUTES = frozenset({"owner.verified_at"})  # the engine's own; the rest registered


def date_attributes() -> frozenset[str]:
    """Dates a trigger may name: the owner's verification, and what capabilities register."""
    return OWN_DATE_ATTRIBUTES | registry.date_attributes()


class Trigger(Strict):
    """Exactly one way in: an event, a cell entered, a schedule, a date, or a deep link."""

    event: str | None = None
    cell_entered: list[str] | None = None
    schedule: str | None = Field(
        default=None, description="cron: minute hour day month weekday, read in Settings.timezone"
    )
    date: DateTrigger | None = None
    deep_link: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        given = [k for k in TriggerKind if getattr(self, k.value) is not None]
        if len(given) != 1:
            raise ValueError("a trigger needs exactly one of: event, cell_entered, schedule, date, deep_link")
        return self

    @property
    def kind(self) -> TriggerKind:
        return next(k for k in TriggerKind if getattr(self, k.value) is not None)

    @field_validator("cell_entered")
    @classmethod
    def _cells(cls, value: list[str] | None) -> list[str] | None:
        for cell in value or []:
            _check_cell(cell)
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError("schedule is a cron line with five fields: minute hour day month weekday")
        return value


def _check_cell(cell: str) -> str:
    maturity, _, activity = cell.partition("/")
    if maturity not in (*MATURITIES, "*") or activity not in (*ACTIVITIES, "*"):
        raise ValueError(f"{cell!r} is not a cell like beginner/declining (or mature/*)")
    return cell


class EntryRules(Strict):
    """Who may enter again: never twice live; ``once`` ever; a cooldown; at most N times."""

    once: bool = False
    cooldown: str | None = None
    max_entries: int | None = Field(default=None, ge=1)

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


def _all_product_lines() -> list[Literal["passenger", "commercial"]]:
    return ["passenger", "commercial"]


class Audience(Strict):
    product_lines: list[Literal["passenger", "commercial"]] = Field(default_factory=_all_product_lines)
    cells: list[str] | None = None
    verified_only: bool = True

    @field_validator("cells")
    @classmethod
    def _cells(cls, value: list[str] | None) -> list[str] | None:
        for cell in value or []:
            _check_cell(cell)
        return value


class Button(Strict):
    """A button: its ``label`` is a template id rendered in the owner's language
    (``winback/button_price``); ``text`` is a literal label kept for older files."""

    label: str | None = None
    text: str | None = None
    url: str | None = None
    action: str | None = Field(default=None, description="an answer recorded as an event")

    @model_validator(mode="after")
    def _one(self) -> Button:
        if (self.url is None) == (self.action is None):
            raise ValueError("a button has either url or action")
        if (self.label is None) == (self.text is None):
            raise ValueError("a button has either label (a template id) or text")
        return self


class SendStep(Strict):
    template: str
    message_class: Literal["transactional", "marketing"] = Field(default="marketing", alias="class")
    buttons: list[list[Button]] = Field(default_factory=list)
    expires_after: str | None = None


class WaitStep(Strict):
    """Wait a duration, or until an event (with a timeout) and go to ``yes``/``no``."""

    duration: str | None = None
    until: str | None = None
    timeout: str | None = None
    yes: str | None = None
    no: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> WaitStep:
        if (self.duration is None) == (self.until is None):
            raise ValueError("wait needs either duration or until")
        if self.until is not None and self.timeout is None:
            raise ValueError("wait until an event needs a timeout")
        for value in (self.duration, self.timeout):
            if value is not None:
                parse_duration(value)
        return self


class Condition(Strict):
    """A test on the owner: ``field`` compared with ``equals``/``in``/``is_set``."""

    field: str
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    is_set: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        given = [x for x in (self.equals, self.in_, self.is_set) if x is not None]
        if len(given) != 1:
            raise ValueError("a condition has exactly one of: equals, in, is_set")
        known = CONDITION_FIELDS | registry.condition_fields()  # a capability's (member.level)
        if not (self.field in known or self.field.startswith(("attribute.", "tag."))):
            raise ValueError(
                f"unknown field {self.field!r}; use one of {', '.join(sorted(known))}, attribute.NAME or tag.NAME"
            )
        return self


CONDITION_FIELDS = frozenset(
    {"owner.familiarity", "owner.product_line", "owner.locale", "cell", "maturity", "activity", "owner.stage"}
)


class BranchStep(Strict):
    if_: Condition = Field(alias="if")
    then: str
    else_: str = Field(alias="else")


class NotifyPartnerStep(Strict):
    template: str


class SetStep(Strict):
    attribute: str | None = None
    tag: str | None = None
    value: Any = True

    @model_validator(mode="after")
    def _one(self) -> SetStep:
        if (self.attribute is None) == (self.tag is None):
            raise ValueError("set needs either attribute or tag")
        return self


class ExitStep(Strict):
    reason: str = "done"


class WordError(ValueError):
    """A mistake inside a registered step word's value; ``loc`` continues the step's path so
    the error names the field (``steps[1].grant_gift.type``) as for the engine's own words."""

    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        self.loc = tuple(loc)
        self.message = message.removeprefix("Value error, ")
        super().__init__(f"{'.'.join(str(p) for p in self.loc)}: {self.message}")


STEP_KINDS = ("send", "wait", "branch", "notify_partner", "set", "exit")  # the engine's own


def step_kinds() -> tuple[str, ...]:
    """Every step word a flow may use: the engine's own, then the registered ones."""
    return STEP_KINDS + tuple(sorted(registry.step_kinds()))


class Step(Strict):
    """One step: an ``id`` and exactly one action. Without a jump, the next step follows;
    ``next`` names another step to go to instead (to join branches again).

    A registered step word (``grant_gift: {type: newcomer}``) is validated with the model its
    capability registered and kept as ``extension`` = (word, value)."""

    id: str
    next: str | None = None
    send: SendStep | None = None
    wait: WaitStep | None = None
    branch: BranchStep | None = None
    notify_partner: NotifyPartnerStep | None = None
    set: SetStep | None = None
    exit: ExitStep | None = None
    extension: tuple[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _registered_words(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "extension" in data:
            raise ValueError("unknown field 'extension'")
        kinds = registry.step_kinds()
        words = [k for k in data if k in kinds]
        if not words:
            return data
        if len(words) > 1:
            raise ValueError(f"a step needs exactly one of: {', '.join(step_kinds())}")
        word = words[0]
        try:
            value = kinds[word].model.model_validate(data[word] if data[word] is not None else {})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise WordError((word, *first["loc"]), str(first.get("msg", "invalid"))) from None
        rest = {k: v for k, v in data.items() if k != word}
        return {**rest, "extension": (word, value)}

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(given) + (self.extension is not None) != 1:
            raise ValueError(f"a step needs exactly one of: {', '.join(step_kinds())}")
        return self

    @property
    def kind(self) -> str:
        if self.extension is not None:
            return str(self.extension[0])
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @property
    def action(self) -> Any:
        if self.extension is not None:
            return self.extension[1]
        return getattr(self, self.kind)


class Goal(Extended):
    """An event that ends the run as reached (a redeemed gift ends its reminders); keys that
    capabilities register with their goal filter (growth's ``gift_type``) narrow which
    events meet it."""

    event: str

    @model_validator(mode="before")
    @classmethod
    def _registered(cls, data: Any) -> Any:
        return _registered_fields(data, registry.goal_fields())


class FlowSpec(Strict):
    key: str
    title: str = ""
    trigger: Trigger
    entry: EntryRules = Field(default_factory=EntryRules)
    audience: Audience = Field(default_factory=Audience)
    goals: list[Goal] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not KEY.match(value):
            raise ValueError("key is lower-case letters, digits and _ (2–49 characters)")
        return value

    @model_validator(mode="after")
    def _jumps(self) -> FlowSpec:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"step ids repeat: {', '.join(duplicates)}")
        known = set(ids)
        for step in self.steps:
            for target in _targets(step):
                if target not in known:
                    raise ValueError(f"step {step.id!r} jumps to unknown step {target!r}")
        return self

    def index(self, step_id: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.id == step_id)


def _targets(step: Step) -> list[str]:
    targets = [step.next] if step.next else []
    if step.wait is not None:
        targets += [t for t in (step.wait.yes, step.wait.no) if t]
    if step.branch is not None:
        targets += [step.branch.then, step.branch.else_]
    return targets
