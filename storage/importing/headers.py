"""Which column is which: English and Chinese header aliases, matched forgivingly.

A :class:`HeaderSpec` is one kind of file (its fields with aliases, the required ones);
``OWNERS`` is the owner export, and the module-level functions are its methods. The service
and telematics imports declare their own specs from the same pieces (``VIN_FIELD``).

A header is folded before lookup: Unicode NFKC (full-width ``（ｋｍ）`` → ``(km)``), BOM and
zero-width characters dropped, lower case, spaces/underscores/hyphens/dots removed, a trailing
``*`` or ``:`` dropped. A trailing parenthesis is tried twice: first as a unit (``Mileage (km)``
→ ``mileagekm``), then without it (``购车日期(YYYY-MM-DD)`` → ``购车日期``). Columns that match
no field are kept: their values go to ``Owner.attributes`` under the header as written.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from storage.importing.errors import ImportFileError
from storage.importing.fields import unquote


@dataclass(frozen=True)
class FieldSpec:
    key: str
    label: str  # how messages name the field when the file has no such column
    aliases: tuple[str, ...]


VIN_FIELD = FieldSpec(
    "vin",
    "VIN/车架号",
    (
        "vin",
        "vin no",
        "vin code",
        "vin number",
        "chassis no",
        "chassis number",
        "车架号",
        "车辆识别代号",
        "车辆识别码",
        "vin码",
        "底盘号",
    ),
)

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "owner_id",
        "owner id/车主编号",
        (
            "owner id",
            "owner no",
            "owner number",
            "owner code",
            "customer id",
            "customer no",
            "client id",
            "车主编号",
            "车主id",
            "车主代码",
            "车主号",
            "客户编号",
            "客户id",
            "客户代码",
        ),
    ),
    FieldSpec(
        "name",
        "name/姓名",
        (
            "name",
            "owner name",
            "customer name",
            "full name",
            "姓名",
            "车主姓名",
            "客户姓名",
            "车主名称",
            "客户名称",
            "车主",
        ),
    ),
    FieldSpec(
        "phone",
        "phone/手机号",
        (
            "phone",
            "mobile",
            "mobile phone",
            "phone number",
            "mobile no",
            "mobile number",
            "tel",
            "telephone",
            "cell",
            "cellphone",
            "手机号",
            "手机",
            "手机号码",
            "电话",
            "联系电话",
            "电话号码",
            "联系方式",
        ),
    ),
    VIN_FIELD,
    FieldSpec(
        "plate",
        "plate/车牌号",
        (
            "plate",
            "plate no",
            "plate number",
            "license plate",
            "licence plate",
            "registration",
            "车牌号",
            "车牌",
            "车牌号码",
        ),
    ),
    FieldSpec(
        "model",
        "model/车型",
        (
            "model",
            "vehicle model",
            "car model",
            "车型",
            "车型名称",
            "车辆型号",
        ),
    ),
    FieldSpec(
        "product_line",
        "product line/产品线",
        (
            "product line",
            "business line",
            "产品线",
            "业务线",
        ),
    ),
    FieldSpec(
        "purchase_date",
        "purchase date/购车日期",
        (
            "purchase date",
            "date of purchase",
            "purchased",
            "purchased on",
            "buy date",
            "sale date",
            "sales date",
            "购车日期",
            "购买日期",
            "购车时间",
            "开票日期",
            "销售日期",
        ),
    ),
    FieldSpec(
        "dealer_code",
        "dealer code/经销商代码",
        (
            "dealer code",
            "dealer",
            "dealer id",
            "dealer no",
            "经销商代码",
            "经销商编号",
            "经销商编码",
            "门店代码",
            "门店编号",
        ),
    ),
    FieldSpec(
        "advisor_code",
        "advisor code/顾问编号",
        (
            "advisor code",
            "advisor",
            "advisor id",
            "advisor no",
            "consultant code",
            "sales advisor code",
            "顾问编号",
            "顾问代码",
            "顾问编码",
            "销售顾问编号",
            "服务顾问编号",
        ),
    ),
    FieldSpec(
        "last_service_date",
        "last service date/最近保养日期",
        (
            "last service date",
            "last service",
            "last service on",
            "last maintenance date",
            "最近保养日期",
            "上次保养日期",
            "最后保养日期",
        ),
    ),
    FieldSpec(
        "last_service_km",
        "last service km/最近保养里程",
        (
            "last service km",
            "last service mileage",
            "last service odometer",
            "last maintenance km",
            "最近保养里程",
            "上次保养里程",
            "最后保养里程",
        ),
    ),
    FieldSpec(
        "mileage_km",
        "mileage km/当前里程",
        (
            "mileage km",
            "mileage",
            "odometer",
            "odometer km",
            "current mileage",
            "current km",
            "km",
            "当前里程",
            "里程",
            "行驶里程",
            "总里程",
            "公里数",
        ),
    ),
)

# A row must name its vehicle (the VIN also identifies the owner when there is no owner id),
# its owner and the product line that decides which circle the owner belongs in.
REQUIRED: tuple[str, ...] = ("vin", "name", "product_line")

# The first three columns of a rejects file; such a file, corrected, can be imported again.
REJECT_COLUMNS: tuple[str, ...] = ("line", "column", "reason")

_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060\xa0"), " ")
_NOISE = re.compile(r"[\s_\-.·/]+")
_TRAILING_PAREN = re.compile(r"[(\[【]([^()\[\]【】]*)[)\]】]$")
_UNITS = {"km": "km", "公里": "km", "千米": "km", "kilometres": "km", "kilometers": "km"}


def fold(header: object) -> str:
    """The comparable form of a header (see the module docstring)."""
    s = unicodedata.normalize("NFKC", str(header or "")).translate(_INVISIBLE).strip()
    s = s.lower().rstrip("*:： ").lstrip("*")
    return _NOISE.sub("", s)


@dataclass(frozen=True)
class ColumnMap:
    """Where each field sits in a row, and which columns are kept as attributes."""

    header: tuple[str, ...]
    fields: dict[str, int]  # field key -> column index
    extras: tuple[tuple[int, str], ...]  # (column index, attribute name)
    ignored: frozenset[int]  # a rejects file's own columns
    labels: dict[str, str] = field(default_factory=dict)  # the spec's labels

    def column_name(self, field: str) -> str:
        """The header as written in the file, for messages and the rejects file."""
        index = self.fields.get(field)
        return self.header[index] if index is not None else self.labels.get(field, field)


def clean_header(value: object) -> str:
    """A header as written, without invisible characters or the apostrophe a rejects file put
    before a formula-like header (``storage.cells.safe_cell``)."""
    return unquote(str(value if value is not None else "").translate(_INVISIBLE).strip())


class HeaderSpec:
    """The columns of one kind of file: fields with aliases, and the required ones."""

    def __init__(self, fields: tuple[FieldSpec, ...], required: tuple[str, ...]) -> None:
        self.fields = fields
        self.required = required
        self.labels: dict[str, str] = {spec.key: spec.label for spec in fields}
        self._aliases: dict[str, str] = {}
        for spec in fields:
            for alias in (spec.key, *spec.aliases):
                self._aliases.setdefault(fold(alias), spec.key)

    def field_for(self, header: object) -> str | None:
        """The field a header names, or ``None`` for a column the spec does not know."""
        folded = fold(header)
        if not folded:
            return None
        aliases = self._aliases
        found = aliases.get(folded)
        if found is not None:
            return found
        m = _TRAILING_PAREN.search(folded)
        if m:
            inner = m.group(1)
            base = folded[: m.start()]
            unit = _UNITS.get(inner)
            if unit and (base + unit) in aliases:
                return aliases[base + unit]
            return aliases.get(base)
        return None

    def map_columns(self, raw_header: list[object]) -> ColumnMap:
        """Match a header row to the fields; a file without the required columns is refused."""
        header = tuple(clean_header(h) for h in raw_header)
        ignored: set[int] = set()
        if tuple(fold(h) for h in header[:3]) == REJECT_COLUMNS:
            ignored = {0, 1, 2}
        fields: dict[str, int] = {}
        extras: list[tuple[int, str]] = []
        used_names: set[str] = set()
        labels = self.labels
        for index, name in enumerate(header):
            if index in ignored:
                continue
            key = self.field_for(name)
            if key is None:
                attribute = name or f"column {index + 1}"
                while attribute in used_names:
                    attribute += "'"
                used_names.add(attribute)
                extras.append((index, attribute))
            elif key in fields:
                first = header[fields[key]]
                raise ImportFileError(f"columns {first!r} and {name!r} both mean {labels[key]}: keep one of them")
            else:
                fields[key] = index
        missing = [labels[key] for key in self.required if key not in fields]
        if missing:
            found = ", ".join(h for h in header if h)[:200] or "none"
            raise ImportFileError(
                f"missing required column{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
                f"(columns found: {found})"
            )
        return ColumnMap(header, fields, tuple(extras), frozenset(ignored), labels)

    def looks_like_header(self, row: list[object]) -> bool:
        """True when a row names every required field (to skip title rows above the header)."""
        keys = {self.field_for(cell) for cell in row}
        return all(key in keys for key in self.required)


OWNERS = HeaderSpec(FIELDS, REQUIRED)
LABELS: dict[str, str] = OWNERS.labels
field_for = OWNERS.field_for
map_columns = OWNERS.map_columns
looks_like_header = OWNERS.looks_like_header
