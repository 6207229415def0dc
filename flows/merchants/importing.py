"""``autocircle import merchants FILE``: the owner import's readers and rejects rules
(``storage.importing.records``), with merchant columns in English or Chinese."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from flows.errors import AutoCircleError
from flows.merchants.directory import add_merchant, parse_kind
from storage.importing import fields
from storage.importing.fields import FieldError
from storage.importing.headers import ColumnMap, FieldSpec, HeaderSpec
from storage.importing.records import DictRow, RecordParser, RowOutcome, Status, dict_parser, run_records
from storage.importing.summary import RecordImportSummary

MERCHANT_COLUMNS = HeaderSpec(
    (
        FieldSpec("code", "merchant code/商户编号", ("merchant code", "code", "商户编号", "商户代码", "编号")),
        FieldSpec("name", "name/商户名称", ("name", "merchant", "merchant name", "商户名称", "名称", "商户")),
        FieldSpec("kind", "kind/类型", ("kind", "type", "类型", "商户类型")),
        FieldSpec("category", "category/品类", ("category", "品类", "类别", "服务类别")),
        FieldSpec("city", "city/城市", ("city", "城市")),
        FieldSpec("district", "district/区县", ("district", "区县", "区")),
        FieldSpec(
            "dealers",
            "dealers/服务经销商",
            ("dealers", "dealer codes", "dealer code", "服务经销商", "经销商代码", "经销商"),
        ),
        FieldSpec("contact", "contact/联系方式", ("contact", "phone", "联系方式", "联系人", "电话")),
    ),
    ("code", "name", "kind"),
)


def _kind(value: object) -> str:
    try:
        return parse_kind(fields.parse_text(value))
    except AutoCircleError as exc:
        raise FieldError(str(exc)) from None


def merchant_parser(columns: ColumnMap) -> RecordParser[DictRow]:
    return dict_parser(
        columns,
        {
            "code": lambda v: fields.parse_code(v, 32),
            "name": fields.bounded_text(120),
            "kind": _kind,
            "category": fields.bounded_text(32),
            "city": fields.bounded_text(64),
            "district": fields.bounded_text(64),
            "dealers": fields.bounded_text(500),
            "contact": fields.bounded_text(120),
        },
        MERCHANT_COLUMNS.required,
    )


def apply_rows(session: Session, rows: Sequence[DictRow]) -> list[RowOutcome]:
    outcomes = []
    for row in rows:
        try:
            with session.begin_nested():
                _, created = add_merchant(
                    session,
                    update_existing=True,
                    **{
                        k: row.data.get(k) or ""
                        for k in ("code", "name", "kind", "category", "city", "district", "dealers", "contact")
                    },
                )
        except AutoCircleError as exc:
            outcomes.append(RowOutcome.rejected("", str(exc)))
            continue
        outcomes.append(RowOutcome(Status.imported if created else Status.updated))
    return outcomes


def import_merchants(
    engine: Engine, path: str | Path, *, rejects_path: str | Path | None = None, batch_size: int = 500
) -> RecordImportSummary:
    return run_records(
        engine,
        path,
        kind="merchants",
        spec=MERCHANT_COLUMNS,
        make_parser=merchant_parser,
        apply=apply_rows,
        rejects_path=rejects_path,
        batch_size=batch_size,
    )
