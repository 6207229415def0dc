"""Pure validators and normalisers for one cell of an owner export.

Each function takes what a reader produced (a ``str`` from CSV; ``str``, ``int``, ``float``,
``date`` or ``datetime`` from XLSX), returns the normalised value or ``None`` for an empty
cell, and raises :class:`FieldError` with a short reason for a bad one. The importer runs them
on every row of files with millions of rows, so each has a fast path for the common, already
clean value and does the expensive work (Unicode normalisation, ``phonenumbers``) only when
that fails.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo

import phonenumbers

from storage.cells import FORMULA_PREFIXES

# Cells that mean "no value" in real exports.
BLANKS = frozenset({"-", "--", "/", "无", "null", "NULL", "None", "none", "N/A", "n/a", "#N/A"})

# Upper bound for kilometre values: a heavy truck may pass 2,000,000 km; ten million is a typo.
MAX_KM = 10_000_000

# Excel day 0 (1899-12-30 once the 1900 leap-year bug is accounted for) and its last day.
_EXCEL_EPOCH = date(1899, 12, 30)
_EXCEL_MAX_SERIAL = 2_958_465  # 9999-12-31
_MIN_YEAR = 1900


class FieldError(ValueError):
    """One cell's value is not acceptable; ``str(exc)`` is the reason shown in the rejects."""


def cell(value: object) -> object | None:
    """A cell with surrounding spaces removed; ``None`` when empty or a placeholder such as
    ``-`` or ``无``. Typed XLSX values (numbers, dates) pass through. The apostrophe that the
    product's own spreadsheets put before formula-like text (``'=x``, see ``storage.cells``) is
    dropped, so a rejects file or an export imports back the value as it was."""
    if type(value) is str:
        s = value.strip()
        if s[:1] == "'":
            s = unquote(s)
        return None if not s or (len(s) < 5 and s in BLANKS) else s
    return value


def unquote(s: str) -> str:
    """``'=x`` → ``=x``: undo ``storage.cells.safe_cell``; any other text unchanged."""
    return s[1:] if s[1:2] and s[1] in _QUOTED else s


_QUOTED = frozenset("".join(FORMULA_PREFIXES))


def text(value: object) -> str | None:
    """A cell as stripped text (an XLSX ``100001.0`` becomes ``100001``), or ``None``."""
    v = cell(value)
    return None if v is None else parse_text(v)


def parse_text(value: object) -> str:
    return value if type(value) is str else _cell_to_text(value)


def bounded_text(limit: int) -> Callable[[object], str]:
    """A parser for a free-text cell: its text without outer spaces, at most ``limit``
    characters (longer is refused, not cut: a cut name or note would import wrong)."""

    def parse(value: object) -> str:
        text = parse_text(value).strip()
        if len(text) > limit:
            raise FieldError(f"longer than {limit} characters")
        return text

    return parse


def _cell_to_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _fold(s: str) -> str:
    """Full-width letters, digits and punctuation to ASCII (``１２，３``→``12,3``)."""
    return unicodedata.normalize("NFKC", s)


# --- VIN ------------------------------------------------------------------------------------

_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_VIN_SEPARATORS = re.compile(r"[\s\-_.·]+")


def vin(value: object) -> str | None:
    """17 characters, letters and digits without I, O and Q; upper-cased, spaces removed."""
    v = cell(value)
    return None if v is None else parse_vin(v)


def parse_vin(s: object) -> str:
    if type(s) is str and _VIN.fullmatch(s):
        return s
    s = _VIN_SEPARATORS.sub("", _fold(parse_text(s))).upper()
    if _VIN.fullmatch(s):
        return s
    problems = []
    if len(s) != 17:
        problems.append(f"VIN has {len(s)} characters, needs 17")
    forbidden = sorted(set(s) & {"I", "O", "Q"})
    if forbidden:
        problems.append(f"VIN contains {', '.join(forbidden)} (I, O and Q are not used in VINs)")
    if not (s.isascii() and s.isalnum()):
        problems.append("VIN may contain only letters and digits")
    raise FieldError(" and ".join(problems))


# --- phone ----------------------------------------------------------------------------------

_MAINLAND_MOBILE = re.compile(r"(?:\+86|0086|86)?(1[3-9]\d{9})")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]+")


def phone(value: object, default_region: str = "CN") -> str | None:
    """E.164. Mainland mobiles (``13812345678``, ``+86 138…``, ``0086-138…``, ``86138…``)
    become ``+86…`` by a regex; anything else must be a valid number for ``phonenumbers``
    (with a country code, or a mainland landline such as ``021-64381234``)."""
    v = cell(value)
    return None if v is None else parse_phone(v, default_region)


def parse_phone(s: object, default_region: str = "CN") -> str:
    if type(s) is not str:
        s = _cell_to_text(s)
    # Fast path: the eleven digits of a mainland mobile, as nearly every row has.
    if len(s) == 11 and s[0] == "1" and s.isdigit() and s.isascii() and s[1] in "3456789":
        return "+86" + s
    if s.endswith(".0") and s[:-2].isdigit():  # a number that went through a spreadsheet
        s = s[:-2]
    s = _PHONE_SEPARATORS.sub("", _fold(s))
    m = _MAINLAND_MOBILE.fullmatch(s)
    if m:
        return "+86" + m.group(1)
    if s.startswith("00"):
        s = "+" + s[2:]
    try:
        parsed = phonenumbers.parse(s, None if s.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        raise FieldError("not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise FieldError("not a valid mobile or international (E.164) number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# --- licence plate --------------------------------------------------------------------------

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Province, issuing-authority letter, then 5 characters (ordinary) or 6 (new-energy, 8 in all),
# or 4 and a suffix (trailer, driving school, police, Hong Kong/Macau). No I or O on plates.
_PLATE = re.compile(rf"[{_PROVINCES}][A-HJ-NP-Z](?:[A-HJ-NP-Z0-9]{{5,6}}|[A-HJ-NP-Z0-9]{{4}}[挂学警港澳])")
_PLATE_SEPARATORS = re.compile(r"[\s\-_.·•・‧]+")


def plate(value: object) -> str | None:
    """Mainland plate, separators removed: ``粤B·D12345`` → ``粤BD12345``; 7 or 8 characters."""
    v = cell(value)
    return None if v is None else parse_plate(v)


def parse_plate(s: object) -> str:
    if type(s) is str and _PLATE.fullmatch(s):
        return s
    s = _PLATE_SEPARATORS.sub("", _fold(parse_text(s))).upper()
    if _PLATE.fullmatch(s):
        return s
    raise FieldError("not a mainland licence plate (e.g. 京A12345 or 粤BD12345)")


# --- dates ----------------------------------------------------------------------------------

_DATE = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
)
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_SERIAL = re.compile(r"\d{1,7}(?:\.\d+)?")
_date_cache: dict[str, date] = {}


def day(value: object) -> date | None:
    """``YYYY-MM-DD``, ``YYYY/M/D``, ``YYYY.M.D``, ``YYYY年M月D日``, ``YYYYMMDD``, an optional
    time after it, an Excel serial (``44927`` = 2023-01-01), or an XLSX date cell."""
    v = cell(value)
    return None if v is None else parse_day(v)


def parse_day(value: object) -> date:
    if type(value) is str:
        cached = _date_cache.get(value)
        if cached is not None:
            return cached
        parsed = _parse_day(value)
        if len(_date_cache) > 50_000:  # a few thousand distinct dates is normal; bound the rest
            _date_cache.clear()
        _date_cache[value] = parsed
        return parsed
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_serial(float(value))
    raise FieldError(f"not a date: {value}")


def _parse_day(s: str) -> date:
    folded = _fold(s)
    m = _DATE.fullmatch(folded) or _COMPACT_DATE.fullmatch(folded)
    if m:
        try:
            result = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            raise FieldError(f"not a real date: {s}") from None
        if result.year < _MIN_YEAR:
            raise FieldError(f"date before {_MIN_YEAR}: {s}")
        return result
    if _SERIAL.fullmatch(folded):
        return _from_serial(float(folded))
    raise FieldError(f"not a date: {s} (use YYYY-MM-DD)")


def _from_serial(serial: float) -> date:
    if not 1 <= serial <= _EXCEL_MAX_SERIAL:
        raise FieldError(f"not a date: {serial:g} is outside Excel's date range")
    result = _EXCEL_EPOCH + timedelta(days=int(serial))
    if result.year < _MIN_YEAR:
        raise FieldError(f"date before {_MIN_YEAR}: Excel serial {serial:g}")
    return result


# --- numbers --------------------------------------------------------------------------------

_NUMBER = re.compile(r"(-?)(\d+(?:\.\d*)?)(?:km|公里|千米)?", re.IGNORECASE)
_THOUSANDS = re.compile(r"[,\s_']")


def kilometres(value: object) -> int | None:
    """A non-negative whole number of km; ``12,345``, ``12，345``, ``12345.0``, ``12345 km``."""
    v = cell(value)
    return None if v is None else parse_kilometres(v)


def parse_kilometres(value: object) -> int:
    if type(value) is str:
        if value.isdigit() and value.isascii():
            number: float = int(value)
        else:
            plain = value.replace(",", "")
            if plain.isdigit() and plain.isascii():
                number = int(plain)
            else:
                m = _NUMBER.fullmatch(_THOUSANDS.sub("", _fold(value)))
                if not m:
                    raise FieldError(f"not a number: {value}")
                number = float(m.group(1) + m.group(2))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    else:
        raise FieldError(f"not a number: {value}")
    if number < 0:
        raise FieldError("must not be negative")
    if number > MAX_KM:
        raise FieldError(f"implausibly large (over {MAX_KM:,} km)")
    return number if type(number) is int else round(number)


# --- instants --------------------------------------------------------------------------------

_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?")


def parse_instant(value: object, tz: tzinfo) -> datetime:
    """An aware UTC instant from ISO 8601 (``2026-11-20T08:15:00+08:00``, ``…Z``), a date and a
    time as the date parser reads them (``2026/11/20 8:15``), a date alone (midnight), or an
    XLSX date/time cell. Without an offset the time is local to ``tz``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        s = _fold(parse_text(value)).strip()
        moment = _iso(s) or _loose_instant(s)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    if moment.year < _MIN_YEAR:
        raise FieldError(f"date before {_MIN_YEAR}: {value}")
    return moment.astimezone(UTC)


def parse_iso_instant(value: str) -> datetime:
    """Strict ISO 8601 with a time zone (``Z`` or ``+08:00``), as an API requires; aware UTC."""
    moment = _iso(value.strip()) if value.strip()[:4].isdigit() else None
    if moment is None:
        raise FieldError(f"not an ISO 8601 time: {value[:40]!r}")
    if moment.tzinfo is None:
        raise FieldError("needs a time zone (Z or +08:00)")
    return moment.astimezone(UTC)


def _iso(s: str) -> datetime | None:
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        return None


def _loose_instant(s: str) -> datetime:
    head, _, tail = s.replace("T", " ").partition(" ")
    day_ = _parse_day(head)
    tail = tail.strip()
    if not tail:
        return datetime(day_.year, day_.month, day_.day)
    m = _TIME.fullmatch(tail)
    if not m:
        raise FieldError(f"not a time: {s} (use YYYY-MM-DD HH:MM or ISO 8601)")
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    micro = int((m.group(4) or "0").ljust(6, "0"))
    try:
        return datetime(day_.year, day_.month, day_.day, hour, minute, second, micro)
    except ValueError:
        raise FieldError(f"not a real time: {s}") from None


# --- telematics fault codes and service items -------------------------------------------------

_FAULT_CODE = re.compile(r"[A-Z0-9][A-Z0-9:._\-]{1,15}")
_LIST_SEPARATORS = re.compile(r"[,;，；、|\n]+")
MAX_LIST_ITEMS = 50


def parse_fault_code(value: object) -> str:
    """A diagnostic trouble code such as ``P0301`` or a maker's ``U0100:87``: letters, digits
    and ``: . _ -``, 2 to 16 characters, upper-cased."""
    s = _fold(parse_text(value)).strip().upper()
    if not _FAULT_CODE.fullmatch(s):
        raise FieldError(f"not a fault code: {s[:20]!r} (e.g. P0301)")
    return s


def parse_fault_codes(value: object) -> tuple[str, ...]:
    """Codes separated by commas, semicolons, spaces or bars; repeats dropped, order kept."""
    parts = [p for p in re.split(r"[\s,;，；、|/]+", _fold(parse_text(value))) if p]
    if len(parts) > MAX_LIST_ITEMS:
        raise FieldError(f"more than {MAX_LIST_ITEMS} fault codes")
    return tuple(dict.fromkeys(parse_fault_code(p) for p in parts))


def parse_items(value: object) -> tuple[str, ...]:
    """Service items as written (``机油、机滤`` or ``oil; oil filter``), split on commas,
    semicolons, ``、`` and bars, each trimmed; repeats dropped, order kept."""
    parts = [p.strip() for p in _LIST_SEPARATORS.split(parse_text(value))]
    items = tuple(dict.fromkeys(p for p in parts if p))
    if len(items) > MAX_LIST_ITEMS:
        raise FieldError(f"more than {MAX_LIST_ITEMS} items")
    for item in items:
        if len(item) > 64:
            raise FieldError(f"item longer than 64 characters: {item[:20]}…")
    return items


# --- codes and choices ----------------------------------------------------------------------

PRODUCT_LINES = {
    "乘用车": "passenger",
    "乘用": "passenger",
    "passenger": "passenger",
    "pv": "passenger",
    "商用车": "commercial",
    "商用": "commercial",
    "commercial": "commercial",
    "cv": "commercial",
}


def product_line(value: object) -> str | None:
    """``乘用车``/``passenger`` → ``passenger``; ``商用车``/``commercial`` → ``commercial``."""
    v = cell(value)
    return None if v is None else parse_product_line(v)


def parse_product_line(s: object) -> str:
    found = PRODUCT_LINES.get(s) if isinstance(s, str) else None
    if found is not None:
        return found
    s = parse_text(s)
    found = PRODUCT_LINES.get(_fold(s).strip().lower())
    if found is None:
        raise FieldError(f"product line must be 乘用车/passenger or 商用车/commercial, got {s}")
    return found


def code(value: object, max_length: int = 32) -> str | None:
    """An identifier such as a dealer or advisor code: upper-cased, inner spaces removed."""
    v = cell(value)
    return None if v is None else parse_code(v, max_length)


def parse_code(s: object, max_length: int = 32) -> str:
    if type(s) is not str or not (s.isascii() and s.isalnum() and s.isupper()):
        s = "".join(_fold(parse_text(s)).split()).upper()
    if len(s) > max_length:
        raise FieldError(f"longer than {max_length} characters")
    return s


def owner_id(value: object) -> str | None:
    """The dealer system's owner id, as text (``100001`` from an XLSX number cell stays whole)."""
    v = cell(value)
    return None if v is None else parse_owner_id(v)


def parse_owner_id(s: object) -> str:
    if type(s) is not str:
        s = _cell_to_text(s)
    if len(s) > 64:
        raise FieldError("owner id longer than 64 characters")
    return s
