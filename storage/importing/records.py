"""Record imports (service history, telematics readings): read, validate, apply, reject.

The same rules as the owner import: rows stream from CSV or XLSX (``readers``), headers match
by aliases (a :class:`~storage.importing.headers.HeaderSpec`), every problem of a row is
collected and tied to its column, bad rows go to the rejects file with line, column and
reason, and a file that cannot be read stops the run before anything is written.

What a valid row *means* (which vehicle, whether it contradicts what is stored, who is told)
is the caller's ``apply`` function: it gets a session and one batch of parsed rows and returns
one :class:`RowOutcome` per row. The service and telematics imports pass functions from
``flows.service.due`` (storage never imports flows). Each batch is one transaction: a crash loses
at most the batch in flight, and the imports are idempotent, so running again finishes the job.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.db import session_scope
from storage.importing import fields
from storage.importing.batches import ProgressCallback, stream_batches
from storage.importing.fields import FieldError
from storage.importing.headers import ColumnMap, HeaderSpec
from storage.importing.readers import open_source
from storage.importing.rejects import Problem, RejectWriter, check_target, default_rejects_path
from storage.importing.summary import RecordImportSummary


class Status(str, enum.Enum):
    imported = "imported"
    updated = "updated"
    unchanged = "unchanged"
    rejected = "rejected"


@dataclass(frozen=True)
class RowOutcome:
    """What ``apply`` did with one row. ``problems`` name fields by key (``vin``, ``km``); the
    runner turns them into the file's column names. ``counts`` add to the summary's counters."""

    status: Status
    problems: tuple[Problem, ...] = ()
    counts: tuple[tuple[str, int], ...] = ()

    @classmethod
    def rejected(cls, field_key: str, reason: str, **counts: int) -> RowOutcome:
        return cls(Status.rejected, ((field_key, reason),), tuple(counts.items()))


class ParsedRow(Protocol):
    # read-only members, so that NamedTuple rows (whose fields cannot be set) satisfy it
    @property
    def line(self) -> int: ...
    @property
    def values(self) -> list[object]: ...


R = TypeVar("R", bound=ParsedRow)
Apply = Callable[[Session, Sequence[R]], Sequence[RowOutcome]]


class RecordParser(Generic[R]):
    """Validates the cells of one row by field; ``build`` turns the values into a row (and may
    add cross-field problems). Problems come out left to right as the columns stand."""

    def __init__(
        self,
        columns: ColumnMap,
        parsers: Mapping[str, Callable[[object], object]],
        required: Sequence[str],
        build: Callable[[int, list[object], dict[str, Any], list[Problem]], R],
    ) -> None:
        self.columns = columns
        self.width = len(columns.header)
        self._specs = tuple(
            (key, columns.fields[key], parse, columns.column_name(key))
            for key, parse in parsers.items()
            if key in columns.fields
        )
        self._required = tuple((key, columns.column_name(key)) for key in required)
        self._build = build
        self._order = {name: index for index, name in reversed(list(enumerate(columns.header)))}

    def parse(self, line: int, values: list[object], row_problem: str | None = None) -> tuple[R | None, list[Problem]]:
        problems: list[Problem] = [("", row_problem)] if row_problem else []
        width = self.width
        if len(values) < width:
            values = values + [None] * (width - len(values))
        elif len(values) > width and any(fields.text(v) for v in values[width:]):
            problems.append(("", f"row has {len(values)} values but the header has {width} columns"))
        out: dict[str, Any] = {}
        for key, index, parse, column in self._specs:
            value = fields.cell(values[index])
            if value is None:
                continue
            try:
                out[key] = parse(value)
            except FieldError as exc:
                problems.append((column, str(exc)))
        for key, column in self._required:
            if out.get(key) is None and not any(c == column for c, _ in problems):
                problems.append((column, "required value is missing"))
        row = None if problems else self._build(line, values, out, problems)
        if problems:
            problems.sort(key=lambda problem: self._order.get(problem[0], -1))
            return None, problems
        return row, problems


class DictRow(NamedTuple):
    """A parsed row as field values by key: what most record imports need (merchants, offers,
    tasks), whose ``apply`` reads the values by name."""

    line: int
    values: list[object]
    data: dict[str, Any]


def dict_parser(
    columns: ColumnMap, parsers: Mapping[str, Callable[[object], object]], required: Sequence[str]
) -> RecordParser[DictRow]:
    """A ``RecordParser`` whose rows are ``DictRow``."""

    def build(line: int, values: list[object], out: dict[str, Any], problems: list[Problem]) -> DictRow:
        return DictRow(line, values, out)

    return RecordParser(columns, parsers, required, build)


def run_records(
    engine: Engine,
    path: str | Path,
    *,
    kind: str,
    spec: HeaderSpec,
    make_parser: Callable[[ColumnMap], RecordParser[R]],
    apply: Apply[R],
    rejects_path: str | Path | None = None,
    batch_size: int = 500,
    progress: ProgressCallback | None = None,
) -> RecordImportSummary:
    """Import ``path`` batch by batch through ``apply``; see the module docstring."""
    started = time.perf_counter()
    batch_size = max(1, batch_size)
    source_path = Path(path)
    target = Path(rejects_path) if rejects_path is not None else default_rejects_path(source_path)
    statuses: Counter[Status] = Counter()
    counts: Counter[str] = Counter()
    with closing(open_source(source_path, spec.looks_like_header)) as source:
        columns = spec.map_columns(source.header)
        check_target(target, source_path)
        parser = make_parser(columns)
        rejects = RejectWriter(target, columns.header)

        def write_batch(rows: Sequence[R]) -> list[tuple[int, list[object], list[Problem]]]:
            return _apply_batch(engine, apply, rows, columns, statuses, counts)

        try:
            read = stream_batches(
                source,
                parser,
                rejects,
                write_batch,
                batch_size,
                progress,
            )
        finally:
            rejects.close()
    return RecordImportSummary(
        kind=kind,
        path=str(source_path),
        format=source.format,
        encoding=source.encoding,
        read=read,
        imported=statuses[Status.imported],
        updated=statuses[Status.updated],
        unchanged=statuses[Status.unchanged],
        rejected=rejects.rows,
        counts=tuple(sorted(counts.items())),
        ignored_columns=tuple(name for _, name in columns.extras),
        rejects_path=str(target) if rejects.rows else None,
        seconds=time.perf_counter() - started,
    )


def _apply_batch(
    engine: Engine,
    apply: Apply[R],
    rows: Sequence[R],
    columns: ColumnMap,
    statuses: Counter[Status],
    counts: Counter[str],
) -> list[tuple[int, list[object], list[Problem]]]:
    """One transaction; returns the rows ``apply`` rejected, with column names as written."""
    with session_scope(engine) as session:
        outcomes = list(apply(session, rows))
    if len(outcomes) != len(rows):
        raise RuntimeError(f"apply returned {len(outcomes)} outcomes for {len(rows)} rows")
    rejected = []
    for row, outcome in zip(rows, outcomes, strict=True):
        statuses[outcome.status] += 1
        for name, n in outcome.counts:
            counts[name] += n
        if outcome.status is Status.rejected:
            problems = [(columns.column_name(key) if key else "", reason) for key, reason in outcome.problems]
            rejected.append((row.line, row.values, problems))
    return rejected
