"""The loop every file import shares: parse each row, write the good ones batch by batch,
put the bad ones — the parser's and the writer's — in the rejects file in file order, and
report progress after each batch. What a batch write does is the caller's (owners upsert
through ``owners._OwnerStore``, service visits and telematics through ``records.Apply``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from storage.importing.readers import RowSource
from storage.importing.rejects import Problem, RejectWriter
from storage.importing.summary import ImportProgress

R = TypeVar("R")
Reject = tuple[int, list[object], list[Problem]]  # (file line, values as read, problems)
ProgressCallback = Callable[[ImportProgress], None]


def stream_batches(
    source: RowSource,
    parser: Any,
    rejects: RejectWriter,
    write_batch: Callable[[Sequence[R]], list[Reject]],
    batch_size: int,
    progress: ProgressCallback | None,
) -> int:
    """Run the whole file through ``write_batch`` (which returns the rows it refused);
    returns how many data rows were read."""
    read = 0
    good: list[R] = []
    bad: list[Reject] = []

    def flush() -> None:
        found = write_batch(good) if good else []
        for line, values, problems in sorted(bad + found, key=lambda r: r[0]):
            rejects.write(line, values, problems)
        good.clear()
        bad.clear()
        if progress is not None:
            progress(ImportProgress(read, source.done(), source.total, source.unit))

    for line, values, row_problem in source.rows():
        read += 1
        row, problems = parser.parse(line, values, row_problem)
        if row is None:
            bad.append((line, values, problems))
        else:
            good.append(row)
        if len(good) + len(bad) >= batch_size:
            flush()
    flush()
    return read
