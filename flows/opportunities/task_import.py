"""``autocircle tasks import FILE``: tasks from the demand side's own spreadsheet, with the owner
import's readers and rejects rules (``storage.importing.records``): CSV in any of the encodings
Excel writes (UTF-8, GBK), or XLSX; headers in English or Chinese; a bad row goes to the
rejects file with its line, column and reason while the good rows are posted.

Running the same file again posts nothing twice: each row is keyed by its ``ref`` column (the
sender's own task number) or, without one, by its content, and the key is kept as the task's
``posted_by`` (``import:<key>``), so a row already posted for that account is ``unchanged``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from flows.errors import AutoCircleError
from flows.opportunities import capacity, demand, places, tasks
from storage.db import pk
from storage.importing import fields
from storage.importing.headers import ColumnMap, FieldSpec, HeaderSpec
from storage.importing.records import DictRow, RecordParser, RowOutcome, Status, dict_parser, run_records
from storage.importing.rejects import Problem
from storage.importing.summary import RecordImportSummary
from storage.opportunity_models import Task

TASK_COLUMNS = HeaderSpec(
    (
        FieldSpec("account", "account/需求方编号", ("account", "account code", "需求方编号", "需求方", "客户编号")),
        FieldSpec("pickup", "pickup/装货地", ("pickup", "from", "装货地", "提货地", "起点", "出发地")),
        FieldSpec("dropoff", "dropoff/卸货地", ("dropoff", "drop-off", "to", "卸货地", "送货地", "终点", "目的地")),
        FieldSpec("window", "window/时间窗", ("window", "time window", "时间窗", "用车时间", "装货时间", "日期")),
        FieldSpec("class", "class/车型", ("class", "vehicle class", "vehicle", "车型", "车辆类型")),
        FieldSpec("payload", "payload/载重", ("payload", "load", "载重", "货重", "重量", "体积")),
        FieldSpec("price", "price/运价", ("price", "运价", "价格", "运费")),
        FieldSpec("notes", "notes/备注", ("notes", "note", "remarks", "备注", "说明")),
        FieldSpec("ref", "ref/任务编号", ("ref", "reference", "task no", "任务编号", "单号", "编号")),
    ),
    ("account", "pickup", "dropoff", "window", "class", "payload"),
)
IMPORT_ACTOR = "import:"


def task_parser(columns: ColumnMap) -> RecordParser[DictRow]:
    return dict_parser(
        columns,
        {
            "account": lambda v: fields.parse_code(v, 32),
            "pickup": fields.bounded_text(40),
            "dropoff": fields.bounded_text(40),
            "window": fields.bounded_text(60),
            "class": fields.bounded_text(32),
            "payload": fields.bounded_text(32),
            "price": fields.bounded_text(32),
            "notes": fields.bounded_text(tasks.MAX_NOTES),
            "ref": fields.bounded_text(40),
        },
        TASK_COLUMNS.required,
    )


def row_key(data: dict[str, Any]) -> str:
    """The row's identity for re-runs: the sender's reference, else a digest of its content."""
    if data.get("ref"):
        return f"{IMPORT_ACTOR}ref:{data['ref']}"[:64]
    content = "\x1f".join(str(data.get(k) or "") for k in ("pickup", "dropoff", "window", "class", "payload", "price"))
    return f"{IMPORT_ACTOR}{hashlib.sha256(content.encode()).hexdigest()[:24]}"


def _field_problems(data: dict[str, Any], now: datetime, timezone: str) -> tuple[Problem, ...]:
    """Every column of the row that the task rules refuse, each with its reason (a row with a
    bad place and a past window names both)."""
    checks: tuple[tuple[str, Callable[[], object]], ...] = (
        ("pickup", lambda: places.resolve(data["pickup"])),
        ("dropoff", lambda: places.resolve(data["dropoff"])),
        ("window", lambda: tasks.check_window(*tasks.parse_window(data["window"], now, timezone), now)),
        ("price", lambda: tasks.parse_price(data.get("price") or "")),
    )
    found = []
    for name, check in checks:
        try:
            check()
        except AutoCircleError as exc:
            found.append((name, str(exc)))
    return tuple(found)


def _apply(timezone: str, now: datetime) -> Any:
    def apply(session: Session, rows: Sequence[DictRow]) -> list[RowOutcome]:
        outcomes = []
        for row in rows:
            data = row.data
            key = row_key(data)
            try:
                account = demand.find_account(session, data["account"])
            except AutoCircleError as exc:
                outcomes.append(RowOutcome.rejected("account", str(exc)))
                continue
            posted = session.exec(
                select(col(Task.id)).where(col(Task.demand_id) == pk(account), col(Task.posted_by) == key)
            ).first()
            if posted is not None:
                outcomes.append(RowOutcome(Status.unchanged))
                continue
            found = _field_problems(data, now, timezone)
            if found:
                outcomes.append(RowOutcome(Status.rejected, found))
                continue
            try:
                start, end = tasks.parse_window(data["window"], now, timezone)
                field_key = "payload"
                tonnes, volume = capacity.parse_payload(data["payload"])
                field_key = "class"
                draft = tasks.TaskDraft(
                    data["pickup"],
                    data["dropoff"],
                    start,
                    end,
                    data["class"],
                    tonnes,
                    volume,
                    tasks.parse_price(data.get("price") or ""),
                    data.get("notes") or "",
                )
                with session.begin_nested():
                    tasks.post_task(session, pk(account), draft, actor=key, now=now)
            except AutoCircleError as exc:
                outcomes.append(RowOutcome.rejected(field_key, str(exc)))
                continue
            outcomes.append(RowOutcome(Status.imported))
        return outcomes

    return apply


def import_tasks(
    engine: Engine,
    path: str | Path,
    *,
    timezone: str,
    now: datetime,
    rejects_path: str | Path | None = None,
    batch_size: int = 200,
) -> RecordImportSummary:
    """Post the file's tasks (each ``open``; the wave job offers them); see the module docstring."""
    return run_records(
        engine,
        path,
        kind="tasks",
        spec=TASK_COLUMNS,
        make_parser=task_parser,
        apply=_apply(timezone, now),
        rejects_path=rejects_path,
        batch_size=batch_size,
    )
