"""Reading flow and playbook files: YAML in, validated specs out, errors with file and line.

An operations person edits these files; a mistake must say where it is ("newcomer.yaml:14:
steps[2].wait.timeout: wait until an event needs a timeout"), not dump a traceback.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from flows.engine.flow_spec import FlowSpec, WordError
from flows.errors import InvalidFileError

FLOWS_DIR = Path(__file__).resolve().parents[1] / "library"


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. ``yes: done`` is a key, not ``True: done``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list(_first),
    )


@dataclass(frozen=True)
class FlowProblem:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class FlowFileError(InvalidFileError):
    """One or more problems in flow files; ``problems`` lists each with its line."""

    def __init__(self, problems: list[FlowProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedFlow:
    spec: FlowSpec
    path: str
    version: str  # content hash: a changed file is a new version; live runs keep theirs
    source: str


M = TypeVar("M", bound=BaseModel)


def load_model(path: Path, model: type[M]) -> tuple[M, str]:
    """Parse ``path`` as YAML and validate it as ``model``; errors carry lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowFileError([FlowProblem(str(path), 1, "", f"cannot read: {exc}")]) from None
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise FlowFileError([FlowProblem(str(path), line, "", f"not valid YAML: {problem}")]) from None
    if not isinstance(data, dict):
        raise FlowFileError([FlowProblem(str(path), 1, "", "a flow file is a mapping (key: value)")])
    try:
        return model.model_validate(data), text
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = _message(error)
            inner = (error.get("ctx") or {}).get("error")
            if isinstance(inner, WordError):  # a registered step word's own field
                loc, message = loc + inner.loc, inner.message
            problems.append(FlowProblem(str(path), _line_of(node, loc), _dotted(loc), message))
        raise FlowFileError(problems) from None


def load_flow(path: Path) -> LoadedFlow:
    spec, text = load_model(path, FlowSpec)
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return LoadedFlow(spec=spec, path=str(path), version=version, source=text)


def load_flows(folder: Path = FLOWS_DIR) -> dict[str, LoadedFlow]:
    """Every ``*.yaml`` flow in the folder, by key; all problems are reported together."""
    flows: dict[str, LoadedFlow] = {}
    problems: list[FlowProblem] = []
    for path in sorted(folder.glob("*.y*ml")):
        if path.name.startswith("playbook"):
            continue
        try:
            flow = load_flow(path)
        except FlowFileError as exc:
            problems.extend(exc.problems)
            continue
        if flow.spec.key in flows:
            problems.append(
                FlowProblem(str(path), 1, "key", f"{flow.spec.key!r} is also the key of {flows[flow.spec.key].path}")
            )
            continue
        flows[flow.spec.key] = flow
    if problems:
        raise FlowFileError(problems)
    return flows


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(error: ErrorDetails) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The line of the deepest YAML node the error path reaches (1-based)."""
    best = node
    current = node
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            found = None
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    found = value
                    best = key
                    break
            if found is None:
                break
            current = found
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and part < len(current.value):
            current = current.value[part]
            best = current
        else:
            break
    return (best.start_mark.line + 1) if best is not None else 1
