"""One file row → one normalised owner-and-vehicle row, or the list of what is wrong with it.

Every problem of a row is collected (not only the first), each tied to the column as the
file names it. Required values: VIN, name and product line (the columns are required too,
see ``headers.REQUIRED``). Cross-field rules: a purchase or last-service date after
``today`` (the caller's calendar day, Asia/Shanghai by default) and a mileage below the last
service's are errors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import NamedTuple

from storage.importing import fields
from storage.importing.fields import FieldError
from storage.importing.headers import REQUIRED, ColumnMap

Problem = tuple[str, str]


class OwnerRow(NamedTuple):
    line: int
    values: list[object]  # the row as read, for the rejects file
    external_id: str | None
    name: str
    phone: str | None
    product_line: str
    dealer_code: str | None
    advisor_code: str | None
    attributes: dict[str, str]
    vin: str
    plate: str | None
    model: str | None
    purchase_date: date | None
    last_service_date: date | None
    last_service_km: int | None
    mileage_km: int | None


# Field order of OwnerRow after (line, values); the parser fills a list in this order.
_FIELD_ORDER = (
    "owner_id",
    "name",
    "phone",
    "product_line",
    "dealer_code",
    "advisor_code",
    None,
    "vin",
    "plate",
    "model",
    "purchase_date",
    "last_service_date",
    "last_service_km",
    "mileage_km",
)
# Parsers take a stripped, non-empty cell; None means "text as it is".
_PARSERS: dict[str, Callable[[object], object] | None] = {
    "owner_id": fields.parse_owner_id,
    "name": None,
    "phone": fields.parse_phone,
    "product_line": fields.parse_product_line,
    "dealer_code": fields.parse_code,
    "advisor_code": fields.parse_code,
    "vin": fields.parse_vin,
    "plate": fields.parse_plate,
    "model": None,
    "purchase_date": fields.parse_day,
    "last_service_date": fields.parse_day,
    "last_service_km": fields.parse_kilometres,
    "mileage_km": fields.parse_kilometres,
}
_BLANKS = fields.BLANKS
_POSITION = {key: position for position, key in enumerate(_FIELD_ORDER) if key is not None}
_ATTRIBUTES = _FIELD_ORDER.index(None)
_DATES = (_POSITION["purchase_date"], _POSITION["last_service_date"])
_SERVICE_KM = _POSITION["last_service_km"]
_MILEAGE = _POSITION["mileage_km"]


class RowParser:
    """Validates rows of one file; built once from its column map and the day of the run."""

    def __init__(self, columns: ColumnMap, today: date) -> None:
        self.columns = columns
        self.today = today
        self.width = len(columns.header)
        # (position in the output, column index, parser, column name) for each present field
        self._specs = tuple(
            (position, columns.fields[key], _PARSERS[key], columns.column_name(key))
            for position, key in enumerate(_FIELD_ORDER)
            if key is not None and key in columns.fields
        )
        self._required = tuple((_POSITION[key], columns.column_name(key)) for key in REQUIRED)
        self._extras = columns.extras
        self._column = {key: columns.column_name(key) for key in _PARSERS}
        self._order = {name: index for index, name in reversed(list(enumerate(columns.header)))}

    def parse(
        self, line: int, values: list[object], row_problem: str | None = None
    ) -> tuple[OwnerRow | None, list[Problem]]:
        problems: list[Problem] = []
        if row_problem:
            problems.append(("", row_problem))
        width = self.width
        if len(values) < width:
            values = values + [None] * (width - len(values))
        elif len(values) > width and any(fields.text(v) for v in values[width:]):
            problems.append(("", f"row has {len(values)} values but the header has {width} columns"))
        out: list[object] = [None] * len(_FIELD_ORDER)
        for position, index, parse, column in self._specs:
            value = values[index]
            if type(value) is str:  # the cell() rule, inline: this loop runs 13 times a row
                value = value.strip()
                if value[:1] == "'":
                    value = fields.unquote(value)
                if not value or (len(value) < 5 and value in _BLANKS):
                    continue
            elif value is None:
                continue
            if parse is None:
                out[position] = value if type(value) is str else fields.parse_text(value)
                continue
            try:
                out[position] = parse(value)
            except FieldError as exc:
                problems.append((column, str(exc)))
        for position, column in self._required:
            if out[position] is None and not any(c == column for c, _ in problems):
                problems.append((column, "required value is missing"))
        self._check_dates_and_km(out, problems)
        attributes: dict[str, str] = {}
        for index, name in self._extras:
            value = fields.text(values[index])
            if value is not None:
                attributes[name] = value
        out[_ATTRIBUTES] = attributes
        if problems:
            if len(problems) > 1:  # left to right, as the columns stand in the file
                problems.sort(key=lambda problem: self._order.get(problem[0], -1))
            return None, problems
        return OwnerRow._make((line, values, *out)), problems  # out: one parsed value per field, in order

    def _check_dates_and_km(self, out: list[object], problems: list[Problem]) -> None:
        today = self.today
        for position in _DATES:
            value = out[position]
            field_name = _FIELD_ORDER[position]
            if isinstance(value, date) and value > today and field_name is not None:
                column = self._column[field_name]
                problems.append((column, f"date {value} is in the future (today is {today})"))
        mileage, serviced_at = out[_MILEAGE], out[_SERVICE_KM]
        if isinstance(mileage, int) and isinstance(serviced_at, int) and mileage < serviced_at:
            problems.append(
                (
                    self._column["mileage_km"],
                    f"mileage {mileage} km is below the last service's {serviced_at} km",
                )
            )
