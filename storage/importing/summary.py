"""What an import reports: progress while it runs, a frozen summary when it is done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ImportProgress:
    """Handed to the progress callback after each batch."""

    rows: int  # data rows read so far
    done: int  # bytes (CSV) or sheet rows (XLSX) consumed so far
    total: int | None  # file size or the sheet's declared rows; None when unknown
    unit: str  # "bytes" or "rows"


@dataclass(frozen=True)
class ImportSummary:
    """One run of the owner import.

    Every data row read is counted exactly once: ``read == imported + updated + unchanged +
    rejected``. ``imported`` rows added a vehicle (and its owner when new); ``updated`` rows
    changed an existing owner or vehicle; ``unchanged`` rows matched the database (including
    an exact repeat of an earlier row). ``unassigned`` rows carry no advisor code or one no
    partner has; ``unknown_advisor_codes`` lists the latter with their row counts.
    """

    path: str
    format: str
    encoding: str | None
    read: int
    imported: int
    updated: int
    unchanged: int
    rejected: int
    owners_created: int
    unassigned: int
    unknown_advisor_codes: tuple[tuple[str, int], ...]
    dealers_created: tuple[str, ...]
    extra_columns: tuple[str, ...]
    rejects_path: str | None
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``; the advisor codes become an object ``{code: rows}``."""
        return {
            "path": self.path,
            "format": self.format,
            "encoding": self.encoding,
            "read": self.read,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "owners_created": self.owners_created,
            "unassigned": self.unassigned,
            "unknown_advisor_codes": dict(self.unknown_advisor_codes),
            "dealers_created": list(self.dealers_created),
            "extra_columns": list(self.extra_columns),
            "rejects_path": self.rejects_path,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
        }


@dataclass(frozen=True)
class RecordImportSummary:
    """One run of a record import (service history, telematics readings).

    ``read == imported + updated + unchanged + rejected``. ``counts`` holds what the kind of
    record adds (e.g. ``unknown_vins``, ``new_faults``, ``alerts``); ``ignored_columns`` are
    columns the import does not know.
    """

    kind: str
    path: str
    format: str
    encoding: str | None
    read: int
    imported: int
    updated: int
    unchanged: int
    rejected: int
    counts: tuple[tuple[str, int], ...]
    ignored_columns: tuple[str, ...]
    rejects_path: str | None
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def count(self, name: str) -> int:
        return dict(self.counts).get(name, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "format": self.format,
            "encoding": self.encoding,
            "read": self.read,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            **dict(self.counts),
            "ignored_columns": list(self.ignored_columns),
            "rejects_path": self.rejects_path,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
        }
