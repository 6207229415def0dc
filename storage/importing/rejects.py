"""The rejects file: one line per rejected row, with the reasons and the row as it was.

Columns: ``line`` (the row's line in the input file), ``column`` (the columns at fault, joined
by ``; ``), ``reason`` (one reason per column at fault, same order, joined by ``; ``), then the
input's own columns with the row's original values. One line per row (not per problem) so the
file can be corrected in a spreadsheet and imported again as it is: the importer recognises
the first three columns and ignores them.

Written as UTF-8 with a BOM so that Excel on a Chinese Windows opens it with the right
characters. Every cell passes ``storage.cells.safe_cell`` (a value such as ``=HYPERLINK(…)``
or ``+1+1`` is written ``'=HYPERLINK(…)``: text in a spreadsheet, never a formula); the importer
drops that apostrophe again (``fields.cell``), so the corrected file imports the values as they
were. Created on the first reject only; a run with no rejects removes a rejects file
that an earlier run left at the same path, so the file never describes an older run.
"""

from __future__ import annotations

import _csv  # the writer type (csv.writer() returns a _csv.Writer)
import csv
import os
from pathlib import Path
from typing import TextIO

from storage.cells import safe_row
from storage.importing.errors import ImportFileError
from storage.importing.fields import text
from storage.importing.headers import REJECT_COLUMNS

Problem = tuple[str, str]  # (column as written in the file, reason)
_SIGNATURE = ",".join(REJECT_COLUMNS)


def default_rejects_path(source: Path) -> Path:
    """``owners.csv`` → ``owners.rejects.csv`` beside it."""
    return source.with_name(f"{source.stem}.rejects.csv")


def check_target(path: Path, source: Path) -> None:
    """Refuse before importing anything when the rejects could not be written."""
    if path.resolve() == source.resolve():
        raise ImportFileError(f"the rejects file cannot be the input file: {path}")
    parent = path.parent
    if not parent.is_dir():
        raise ImportFileError(f"cannot write the rejects file: no directory {parent}")
    if path.is_dir():
        raise ImportFileError(f"cannot write the rejects file: {path} is a directory")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ImportFileError(f"cannot write the rejects file {path}: use --rejects PATH")


class RejectWriter:
    def __init__(self, path: Path, header: tuple[str, ...]) -> None:
        self.path = path
        self._header = header
        self._file: TextIO | None = None
        self._writer: _csv.Writer | None = None
        self.rows = 0

    def write(self, line: int, values: list[object], problems: list[Problem]) -> None:
        if self._writer is None:
            self._file = open(self.path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._file)
            self._writer.writerow(safe_row([*REJECT_COLUMNS, *self._header]))
        self._writer.writerow(
            safe_row(
                [
                    line,
                    "; ".join(column for column, _ in problems),
                    "; ".join(reason for _, reason in problems),
                    *(_original(value) for value in values),
                ]
            )
        )
        self.rows += 1

    def close(self) -> None:
        """Finish the file; with no rejects, remove a stale rejects file from an earlier run."""
        if self._file is not None:
            self._file.close()
            self._file = None
            return
        if self.path.is_file():
            with open(self.path, encoding="utf-8-sig", errors="replace") as old:
                first = old.readline().strip()
            if first.startswith(_SIGNATURE):
                self.path.unlink()


def _original(value: object) -> str:
    if value is None:
        return ""
    if type(value) is str:
        return value
    return text(value) or ""
