"""Import a telematics export (CSV/XLSX): one odometer reading per row — VIN, km, time, and
optional fault codes.

The same readings the bot's ``POST /telematics`` takes, from a file: cells are validated here
(a time without an offset is local to the configured time zone), and ``apply`` — the caller's,
``flows.service.telematics.TelematicsRowApplier`` — checks each reading against the car's other odometer
values, stores it and handles fault codes. Re-importing the same file changes nothing: a
reading is unique per (VIN, instant).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from storage.importing import fields
from storage.importing.batches import ProgressCallback
from storage.importing.headers import VIN_FIELD, ColumnMap, FieldSpec, HeaderSpec
from storage.importing.records import Apply, RecordParser, run_records
from storage.importing.rejects import Problem
from storage.importing.summary import RecordImportSummary

TELEMATICS_COLUMNS = HeaderSpec(
    (
        VIN_FIELD,
        FieldSpec(
            "odometer_km",
            "odometer km/里程",
            (
                "odometer",
                "odometer km",
                "km",
                "mileage",
                "mileage km",
                "total mileage",
                "里程",
                "总里程",
                "当前里程",
                "仪表里程",
                "累计里程",
            ),
        ),
        FieldSpec(
            "at",
            "time/时间",
            (
                "at",
                "time",
                "timestamp",
                "datetime",
                "reading time",
                "recorded at",
                "reported at",
                "时间",
                "采集时间",
                "上报时间",
                "记录时间",
            ),
        ),
        FieldSpec(
            "fault_codes",
            "fault codes/故障码",
            (
                "fault codes",
                "fault code",
                "faults",
                "dtc",
                "dtcs",
                "trouble codes",
                "故障码",
                "故障代码",
            ),
        ),
    ),
    ("vin", "odometer_km", "at"),
)


class TelematicsRow(NamedTuple):
    line: int
    values: list[object]
    vin: str
    odometer_km: int
    at: datetime  # aware UTC
    fault_codes: tuple[str, ...]


def telematics_parser(columns: ColumnMap, timezone: str) -> RecordParser[TelematicsRow]:
    tz = ZoneInfo(timezone)

    def build(line: int, values: list[object], out: dict[str, Any], problems: list[Problem]) -> TelematicsRow:
        return TelematicsRow(line, values, out["vin"], out["odometer_km"], out["at"], out.get("fault_codes") or ())

    return RecordParser(
        columns,
        {
            "vin": fields.parse_vin,
            "odometer_km": fields.parse_kilometres,
            "at": lambda value: fields.parse_instant(value, tz),
            "fault_codes": fields.parse_fault_codes,
        },
        TELEMATICS_COLUMNS.required,
        build,
    )


def import_telematics(
    engine: Engine,
    path: str | Path,
    apply: Apply[TelematicsRow],
    *,
    rejects_path: str | Path | None = None,
    batch_size: int = 500,
    timezone: str = "Asia/Shanghai",
    progress: ProgressCallback | None = None,
) -> RecordImportSummary:
    """Import ``path``; times without an offset are local to ``timezone``."""
    return run_records(
        engine,
        path,
        kind="telematics",
        spec=TELEMATICS_COLUMNS,
        make_parser=lambda columns: telematics_parser(columns, timezone),
        apply=apply,
        rejects_path=rejects_path,
        batch_size=batch_size,
        progress=progress,
    )
