"""Flow files checked against what the code knows: events, actions, templates, capability words.

A typo such as ``until: bookng`` or ``grant_gift: {type: newcommer}`` is valid YAML and a valid
flow shape, yet the flow would silently never fire. This check compares every name a flow
uses with the registries: event names (trigger, wait-until, goals) with ``EventKind`` and the
events capabilities register, plus the answers buttons offer; every button action with a
wait, goal or trigger that listens for it or a capability that handles it, and an action in a
namespace a capability's answer hook owns (``winback.``) with the actions that hook knows
exactly; every template id (messages, partner notices, button labels) in every locale; every
registered step's own check (a gift type against the catalogue). Each mistake names file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from flows.engine import registry
from flows.engine.flow_files import FlowProblem, LoadedFlow, _dotted, _line_of, _Loader
from flows.engine.flow_spec import FlowSpec
from flows.templating import LOCALES, TEMPLATES_DIR

Loc = tuple[str | int, ...]


def _prefixes(action: str) -> set[str]:
    """``winback.price`` answers to ``winback.price`` and ``winback`` (as the runner reads it)."""
    parts = action.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def _actions(spec: FlowSpec) -> Iterable[tuple[Loc, str]]:
    for i, step in enumerate(spec.steps):
        if step.send is None:
            continue
        for r, row in enumerate(step.send.buttons):
            for b, button in enumerate(row):
                if button.action:
                    yield ("steps", i, "send", "buttons", r, b, "action"), button.action


def _listened(spec: FlowSpec) -> Iterable[tuple[Loc, str]]:
    """Every event name the flow waits for: its trigger, its waits, its goals."""
    if spec.trigger.event:
        yield ("trigger", "event"), spec.trigger.event
    for i, step in enumerate(spec.steps):
        if step.wait is not None and step.wait.until:
            yield ("steps", i, "wait", "until"), step.wait.until
    for g, goal in enumerate(spec.goals):
        yield ("goals", g, "event"), goal.event


def _templates(spec: FlowSpec) -> Iterable[tuple[Loc, str]]:
    for i, step in enumerate(spec.steps):
        if step.send is not None:
            yield ("steps", i, "send", "template"), step.send.template
            for r, row in enumerate(step.send.buttons):
                for b, button in enumerate(row):
                    if button.label:
                        yield ("steps", i, "send", "buttons", r, b, "label"), button.label
        if step.notify_partner is not None:
            yield ("steps", i, "notify_partner", "template"), step.notify_partner.template


def check_references(
    flows: dict[str, LoadedFlow], templates: Path = TEMPLATES_DIR, locales: Iterable[str] = LOCALES
) -> list[FlowProblem]:
    """Every name the flows use that the code does not know, with file, line and field."""
    locales = tuple(locales)
    events = registry.known_events()
    handled = registry.known_actions()
    offered = {p for flow in flows.values() for _, a in _actions(flow.spec) for p in _prefixes(a)}
    listened = {name for flow in flows.values() for _, name in _listened(flow.spec)}
    context = registry.CheckContext(
        locales=locales, template_exists=lambda t, loc: (templates / loc / f"{t}.j2").is_file()
    )
    problems: list[FlowProblem] = []
    for flow in flows.values():
        node = yaml.compose(flow.source, Loader=_Loader)

        def problem(loc: Loc, message: str, path: str = flow.path, root: yaml.Node | None = node) -> None:
            problems.append(FlowProblem(path, _line_of(root, loc), _dotted(loc), message))

        for loc, name in _listened(flow.spec):
            if name not in events and name not in offered and name not in handled:
                problem(loc, f"unknown event {name!r}: no such event kind, and no button offers that answer")
        for loc, action in _actions(flow.spec):
            owned = registry.namespace_actions(action)
            if owned is not None and action not in owned:
                namespace = action.split(".", 1)[0]
                problem(loc, f"unknown action {action!r} for {namespace!r}; known: {', '.join(sorted(owned))}")
            elif not (_prefixes(action) & (listened | handled)):
                problem(loc, f"action {action!r} is awaited by no wait, goal or trigger and handled by no capability")
        for loc, template in _templates(flow.spec):
            missing = [loc_ for loc_ in locales if not context.template_exists(template, loc_)]
            if missing:
                problem(loc, f"template {template!r} is missing for {', '.join(missing)}")
        for i, step in enumerate(flow.spec.steps):
            kind = registry.step_kind(step.kind) if step.extension is not None else None
            if kind is None or kind.check is None:
                continue
            for field, message in kind.check(step.action, context):
                problem(("steps", i, step.kind, field), message)
        for loc, value in _vocabulary_uses(flow.spec):
            known = registry.vocabulary(loc[-1] if isinstance(loc[-1], str) else "")
            if known is not None and value not in known:
                problem(loc, f"unknown {loc[-1]} {value!r}; known: {', '.join(sorted(known))}")
    return problems


def _vocabulary_uses(spec: FlowSpec) -> Iterable[tuple[Loc, str]]:
    """Names the flow language keeps for a capability to define (a goal's gift type): the
    registered keys of the date trigger and the goals, checked against the vocabulary of
    the same name."""
    if spec.trigger.date is not None:
        for name, value in spec.trigger.date.extension:
            yield ("trigger", "date", name), value
    for g, goal in enumerate(spec.goals):
        for name, value in goal.extension:
            yield ("goals", g, name), value
