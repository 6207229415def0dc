"""Import a service history export (CSV/XLSX): one visit per row — VIN, day, km, items.

Cells are validated here like the owner import's (VIN, dates not in the future, km); what a
visit means for the car (is it consistent with the car's other odometer values, does it
become the last service, the ``service_visit`` event) is decided by ``apply``, which the
caller passes (``flows.service.due.ServiceRowApplier``). Unknown columns are ignored and listed in
the summary. Re-importing the same file changes nothing: a visit is unique per (VIN, day, km).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from storage.clock import utcnow
from storage.importing import fields
from storage.importing.batches import ProgressCallback
from storage.importing.headers import VIN_FIELD, ColumnMap, FieldSpec, HeaderSpec
from storage.importing.records import Apply, RecordParser, run_records
from storage.importing.rejects import Problem
from storage.importing.summary import RecordImportSummary

SERVICE_COLUMNS = HeaderSpec(
    (
        VIN_FIELD,
        FieldSpec(
            "date",
            "service date/保养日期",
            (
                "service date",
                "date",
                "visit date",
                "serviced on",
                "repair date",
                "保养日期",
                "维修日期",
                "进厂日期",
                "服务日期",
                "日期",
                "结算日期",
            ),
        ),
        FieldSpec(
            "km",
            "km/进厂里程",
            (
                "km",
                "mileage",
                "odometer",
                "service km",
                "mileage km",
                "odometer km",
                "里程",
                "进厂里程",
                "保养里程",
                "公里数",
                "行驶里程",
            ),
        ),
        FieldSpec(
            "items",
            "items/保养项目",
            (
                "items",
                "service items",
                "work",
                "work done",
                "operations",
                "保养项目",
                "项目",
                "维修项目",
                "服务项目",
                "作业项目",
            ),
        ),
    ),
    ("vin", "date", "km"),
)


class ServiceRow(NamedTuple):
    line: int
    values: list[object]
    vin: str
    date: date
    km: int
    items: tuple[str, ...]


def service_parser(columns: ColumnMap, today: date) -> RecordParser[ServiceRow]:
    """Rows of a service export; a visit dated after ``today`` is refused."""
    date_column = columns.column_name("date")

    def build(line: int, values: list[object], out: dict[str, Any], problems: list[Problem]) -> ServiceRow:
        if out["date"] > today:
            problems.append((date_column, f"date {out['date']} is in the future (today is {today})"))
        return ServiceRow(line, values, out["vin"], out["date"], out["km"], out.get("items") or ())

    return RecordParser(
        columns,
        {
            "vin": fields.parse_vin,
            "date": fields.parse_day,
            "km": fields.parse_kilometres,
            "items": fields.parse_items,
        },
        SERVICE_COLUMNS.required,
        build,
    )


def import_services(
    engine: Engine,
    path: str | Path,
    apply: Apply[ServiceRow],
    *,
    rejects_path: str | Path | None = None,
    batch_size: int = 500,
    timezone: str = "Asia/Shanghai",
    progress: ProgressCallback | None = None,
) -> RecordImportSummary:
    """Import ``path``; ``timezone`` names the calendar that decides "in the future"."""
    today = utcnow().astimezone(ZoneInfo(timezone)).date()
    return run_records(
        engine,
        path,
        kind="services",
        spec=SERVICE_COLUMNS,
        make_parser=lambda columns: service_parser(columns, today),
        apply=apply,
        rejects_path=rejects_path,
        batch_size=batch_size,
        progress=progress,
    )
