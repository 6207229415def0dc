"""``autocircle import offers FILE``: merchants' offers from a spreadsheet, with the owner
import's readers and rejects rules (``storage.importing.records``): CSV (UTF-8 or GBK) or XLSX,
headers in English or Chinese, every refused column of a row named with its reason in the
rejects file while the good rows are added.

An offer is identified by its ``key`` (the name flow files use): a row whose key exists already
is ``unchanged`` (the offer keeps its claims, stock and status; change those with ``offers
set-status``), so running the same file again adds nothing twice. A row without a key is
added each time the file is imported, as ``offers add`` would; give every row a key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from flows.errors import AutoCircleError
from flows.merchants import offers
from flows.merchants.money import parse_yuan
from storage.importing import fields
from storage.importing.fields import FieldError
from storage.importing.headers import ColumnMap, FieldSpec, HeaderSpec
from storage.importing.records import DictRow, RecordParser, RowOutcome, Status, dict_parser, run_records
from storage.importing.summary import RecordImportSummary

#: targeting columns: lists (``a|b``, ``a,b``, ``a、b``) and ranges (``MIN-MAX``)
LIST_COLUMNS = ("product_lines", "cells", "models", "cities", "dealers", "levels", "tags")
RANGE_COLUMNS = ("car_age_months", "mileage_km")

OFFER_COLUMNS = HeaderSpec(
    (
        FieldSpec("merchant", "merchant/商户编号", ("merchant", "merchant code", "商户编号", "商户代码", "商户")),
        FieldSpec("key", "key/优惠编号", ("key", "offer key", "优惠编号", "优惠代码", "编号")),
        FieldSpec("title", "title/标题", ("title", "标题", "优惠名称", "名称")),
        FieldSpec("text", "text/说明", ("text", "body", "description", "说明", "内容", "详情")),
        FieldSpec("text_en", "text_en/英文说明", ("text_en", "text en", "body_en", "english text", "英文说明")),
        FieldSpec("category", "category/品类", ("category", "品类", "类别")),
        FieldSpec("value", "value/优惠类型", ("value", "value kind", "kind", "优惠类型", "类型")),
        FieldSpec("amount", "amount/金额", ("amount", "金额", "立减金额", "价格")),
        FieldSpec("percent", "percent/折扣百分比", ("percent", "折扣百分比", "百分比")),
        FieldSpec("cap", "cap/封顶", ("cap", "封顶", "最高优惠")),
        FieldSpec("item", "item/赠品", ("item", "free item", "赠品", "免费项目")),
        FieldSpec("valid_from", "valid_from/开始日期", ("valid from", "valid_from", "开始日期", "生效日期")),
        FieldSpec("valid_until", "valid_until/截止日期", ("valid until", "valid_until", "截止日期", "结束日期")),
        FieldSpec(
            "valid_days", "valid_days/领取后有效天数", ("valid days", "valid_days", "领取后有效天数", "有效天数")
        ),
        FieldSpec("stock", "stock/库存", ("stock", "库存", "数量")),
        FieldSpec("per_owner", "per_owner/每人限领", ("per owner", "per_owner", "每人限领", "限领")),
        FieldSpec("points_price", "points_price/积分价", ("points price", "points_price", "积分价", "所需积分")),
        FieldSpec("product_lines", "product_lines/产品线", ("product lines", "product_lines", "产品线")),
        FieldSpec("cells", "cells/分群", ("cells", "分群", "车主分群")),
        FieldSpec("models", "models/车型", ("models", "车型")),
        FieldSpec("car_age_months", "car_age_months/车龄月数", ("car age months", "car_age_months", "车龄月数")),
        FieldSpec("mileage_km", "mileage_km/里程", ("mileage km", "mileage_km", "里程", "里程区间")),
        FieldSpec("cities", "cities/城市", ("cities", "城市")),
        FieldSpec("dealers", "dealers/经销商", ("dealers", "经销商", "经销商代码")),
        FieldSpec("levels", "levels/会员等级", ("levels", "会员等级", "等级")),
        FieldSpec("tags", "tags/标签", ("tags", "标签")),
        FieldSpec(
            "commission_fixed", "commission_fixed/固定佣金", ("commission fixed", "commission_fixed", "固定佣金")
        ),
        FieldSpec(
            "commission_percent",
            "commission_percent/佣金比例",
            ("commission percent", "commission_percent", "佣金比例"),
        ),
        FieldSpec("status", "status/状态", ("status", "状态")),
    ),
    ("merchant", "title", "value"),
)


def _whole(low: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        text = fields.parse_text(value).strip().replace(",", "")
        try:
            number = float(text)
        except ValueError:
            raise FieldError(f"not a whole number: {text!r}") from None
        if not number.is_integer():
            raise FieldError(f"not a whole number: {text!r}")
        if number < low:
            raise FieldError(f"must be at least {low}")
        return int(number)

    return parse


def _yuan(value: object) -> int:
    try:
        return parse_yuan(fields.parse_text(value))
    except AutoCircleError as exc:
        raise FieldError(str(exc)) from None


def _percent(value: object) -> float:
    text = fields.parse_text(value).strip().removesuffix("%")
    try:
        return float(text)
    except ValueError:
        raise FieldError(f"not a percent: {text!r}") from None


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = fields.parse_text(value).strip().replace("/", "-")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FieldError("a date, YYYY-MM-DD") from None


def _list(value: object) -> str:
    """``a|b``, ``a、b``, ``a;b`` or ``a,b`` as the comma list ``offers add`` takes."""
    text = fields.parse_text(value)
    for sep in ("|", "、", ";", "；", "，"):
        text = text.replace(sep, ",")
    return ",".join(part.strip() for part in text.split(",") if part.strip())


def offer_parser(columns: ColumnMap) -> RecordParser[DictRow]:
    parsers: dict[str, Callable[[object], Any]] = {
        "merchant": lambda v: fields.parse_code(v, 32),
        "key": fields.bounded_text(48),
        "title": fields.bounded_text(120),
        "text": fields.bounded_text(1500),
        "text_en": fields.bounded_text(1500),
        "category": fields.bounded_text(32),
        "value": lambda v: fields.bounded_text(16)(v).lower(),
        "amount": _yuan,
        "percent": _whole(1),
        "cap": _yuan,
        "item": fields.bounded_text(120),
        "valid_from": _day,
        "valid_until": _day,
        "valid_days": _whole(1),
        "stock": _whole(0),
        "per_owner": _whole(1),
        "points_price": _whole(1),
        "commission_fixed": _yuan,
        "commission_percent": _percent,
        "status": lambda v: fields.bounded_text(8)(v).lower(),
        **dict.fromkeys(LIST_COLUMNS, _list),
        **{name: fields.bounded_text(32) for name in RANGE_COLUMNS},
    }
    return dict_parser(columns, parsers, OFFER_COLUMNS.required)


def _at(day: date | None, timezone: str, end: bool = False) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day, time.max if end else time.min, tzinfo=ZoneInfo(timezone))


def _apply(timezone: str, now: datetime) -> Callable[[Session, Sequence[DictRow]], list[RowOutcome]]:
    def apply(session: Session, rows: Sequence[DictRow]) -> list[RowOutcome]:
        outcomes = []
        for row in rows:
            d = row.data
            if d.get("key"):
                try:
                    offers.clean_key(d["key"])
                except AutoCircleError as exc:
                    outcomes.append(RowOutcome.rejected("key", str(exc)))
                    continue
                if offers.offer_by_key(session, d["key"]) is not None:
                    outcomes.append(RowOutcome(Status.unchanged))
                    continue
            fixed, percent = d.get("commission_fixed"), d.get("commission_percent")
            targeting = {k: d[k] for k in (*LIST_COLUMNS, *RANGE_COLUMNS) if d.get(k)}
            try:
                with session.begin_nested():
                    offers.create_offer(
                        session,
                        merchant_code=d["merchant"],
                        key=d.get("key") or None,
                        title=d["title"],
                        body=d.get("text") or "",
                        body_en=d.get("text_en") or "",
                        category=d.get("category") or "",
                        value_kind=d["value"],
                        amount_fen=d.get("amount"),
                        percent=d.get("percent"),
                        cap_fen=d.get("cap"),
                        item=d.get("item") or "",
                        valid_from=_at(d.get("valid_from"), timezone),
                        valid_until=_at(d.get("valid_until"), timezone, end=True),
                        valid_days=d.get("valid_days"),
                        stock_total=d.get("stock"),
                        per_owner_limit=d.get("per_owner") or 1,
                        points_price=d.get("points_price"),
                        targeting=targeting,
                        commission_kind="fixed" if fixed else "percent" if percent else "none",
                        commission_fen=fixed,
                        commission_percent=percent,
                        status=d.get("status") or "draft",
                        now=now,
                    )
            except AutoCircleError as exc:
                outcomes.append(RowOutcome.rejected("", str(exc)))
                continue
            outcomes.append(RowOutcome(Status.imported))
        return outcomes

    return apply


def import_offers(
    engine: Engine,
    path: str | Path,
    *,
    timezone: str,
    now: datetime,
    rejects_path: str | Path | None = None,
    batch_size: int = 200,
) -> RecordImportSummary:
    """Add the file's offers (draft unless the row says live); see the module docstring."""
    return run_records(
        engine,
        path,
        kind="offers",
        spec=OFFER_COLUMNS,
        make_parser=offer_parser,
        apply=_apply(timezone, now),
        rejects_path=rejects_path,
        batch_size=batch_size,
    )
