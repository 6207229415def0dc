"""The playbook file and the checks that hold the flow library together.

``flows/library/playbook.yaml`` maps matrix cells (per product line) and named events to flow
keys. Checked against the flows: every key exists; a flow under a cell is a ``cell_entered``
flow that accepts that cell; a flow under an event is triggered by that event. ``check_library``
also checks every name a flow uses against the code (``flows.engine.flow_check``: events,
actions, templates in every locale, gift types). Problems carry file,
line and field like the flow files' own (``flows check`` prints them one a line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.engine.flow_check import check_references
from flows.engine.flow_files import (
    FLOWS_DIR,
    FlowFileError,
    FlowProblem,
    LoadedFlow,
    _dotted,
    _line_of,  # the same line finder as the flow files' errors
    _Loader,
    load_flows,
    load_model,
)
from flows.engine.flow_rules import any_cell_matches
from flows.engine.flow_spec import TriggerKind
from flows.engine.playbook_spec import Playbook
from flows.templating import TEMPLATES_DIR

PLAYBOOK_NAME = "playbook.yaml"


@dataclass(frozen=True)
class Library:
    flows: dict[str, LoadedFlow]
    playbook: Playbook | None


def load_playbook(path: Path) -> Playbook:
    playbook, _ = load_model(path, Playbook)
    return playbook


def check_playbook(playbook: Playbook, flows: dict[str, LoadedFlow], path: Path) -> list[FlowProblem]:
    """Every playbook entry names a flow that can be entered the way the playbook says."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
    problems: list[FlowProblem] = []

    def problem(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(FlowProblem(str(path), _line_of(node, loc), _dotted(loc), message))

    for line in ("passenger", "commercial"):
        for cell, keys in getattr(playbook, line).items():
            for i, key in enumerate(keys):
                flow = flows.get(key)
                if flow is None:
                    problem((line, cell, i), f"no flow has the key {key!r}")
                elif flow.spec.trigger.kind is not TriggerKind.cell_entered:
                    problem((line, cell, i), f"flow {key!r} is not triggered by cell_entered")
                elif not any_cell_matches(flow.spec.trigger.cell_entered or [], cell):
                    problem((line, cell, i), f"flow {key!r} does not accept cell {cell} in its trigger")
    for event, keys in playbook.events.items():
        for i, key in enumerate(keys):
            flow = flows.get(key)
            if flow is None:
                problem(("events", event, i), f"no flow has the key {key!r}")
            elif flow.spec.trigger.event != event:
                problem(("events", event, i), f"flow {key!r} is not triggered by event {event}")
    return problems


def check_library(folder: Path = FLOWS_DIR, templates: Path = TEMPLATES_DIR) -> list[FlowProblem]:
    """Every problem in a flow folder (flows, playbook, templates); empty when all is well."""
    return _read_library(folder, templates)[1]


def load_library(folder: Path = FLOWS_DIR, templates: Path = TEMPLATES_DIR) -> Library:
    """The flows and the playbook, checked; raises ``FlowFileError`` listing every problem."""
    library, problems = _read_library(folder, templates)
    if problems or library is None:
        raise FlowFileError(problems)
    return library


def _read_library(folder: Path, templates: Path) -> tuple[Library | None, list[FlowProblem]]:
    """Read the folder once: the library (when the flows load) and every problem found."""
    try:
        flows = load_flows(folder)
    except FlowFileError as exc:
        return None, list(exc.problems)
    problems = check_references(flows, templates)
    playbook = None
    path = folder / PLAYBOOK_NAME
    if path.is_file():
        try:
            playbook = load_playbook(path)
            problems += check_playbook(playbook, flows, path)
        except FlowFileError as exc:
            problems += exc.problems
    return Library(flows, playbook), problems
