"""Places as people type them ("广州/天河区", "深圳市 南山区", "上海") → adcode and coordinates.

Offline: ``cpca`` (a well-kept library of China's administrative divisions) turns the text
into an adcode; the coordinates come from the same package's ``resources/adcodes.csv``. No
network. A text that names no known place, or only a province, is an ``UnknownPlaceError``
with a reason a person can act on; so is a district named alone whose name several cities
have (朝阳区 is in Beijing and in Changchun, 鼓楼区 in four cities): the person is asked to
name the city too (北京市朝阳区) rather than being given whichever one cpca happens to pick.
``describe`` says a resolved place in full (广东省 广州市 天河区), so replies can echo it.
"""

from __future__ import annotations

import csv
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from flows.opportunities.errors import InvalidValueError

#: Province-level cities: their province adcode is precise enough for a pickup.
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})
MAX_PLACE_CHARS = 40
_SEPARATORS = re.compile(r"[/／\\,，、\s·\-]+")
_lock = threading.Lock()


class UnknownPlaceError(InvalidValueError):
    """The text names no place we know (or too wide a one, or one of several)."""


@dataclass(frozen=True)
class Place:
    adcode: str  # six digits
    name: str  # "广东省 广州市 天河区"
    lat: float
    lon: float

    @property
    def province(self) -> str:
        return self.adcode[:2]

    @property
    def city_adcode(self) -> str:
        return self.adcode[:4] + "00"


@lru_cache(maxsize=1)
def coordinates() -> dict[str, tuple[str, float, float]]:
    """adcode (6 digits) → (name, lat, lon) from cpca's own table."""
    table: dict[str, tuple[str, float, float]] = {}
    path = resources.files("cpca").joinpath("resources/adcodes.csv")
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            code = row["adcode"][:6]
            if row["adcode"][6:].strip("0"):
                continue  # below district level
            try:
                table[code] = (row["name"], float(row["latitude"]), float(row["longitude"]))
            except (TypeError, ValueError):
                continue
    return table


#: Names of the levels above a district that say nothing (a municipality's districts sit
#: under 市辖区 / 县 in the table).
_NO_NAME = frozenset({"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"})


def _is_district(code: str) -> bool:
    return not code.endswith("00")


@lru_cache(maxsize=1)
def districts_named() -> dict[str, tuple[str, ...]]:
    """District name → the adcodes of every district with that name (most have one)."""
    named: dict[str, list[str]] = {}
    for code, (name, _, _) in coordinates().items():
        if _is_district(code):
            named.setdefault(name, []).append(code)
    return {name: tuple(sorted(codes)) for name, codes in named.items()}


def _levels(adcode: str) -> list[str]:
    """The names of the province, city and district of ``adcode`` that mean something."""
    table = coordinates()
    codes = [adcode[:2] + "0000", adcode[:4] + "00", adcode]
    names: list[str] = []
    for code in dict.fromkeys(codes):  # a province's or city's own code appears once
        found = table.get(code)
        if found is not None and found[0] not in _NO_NAME and found[0] not in names:
            names.append(found[0])
    return names


def describe(adcode: str | None) -> str:
    """ "广东省 广州市 天河区", "北京市 朝阳区": the place of ``adcode`` in full ("" if unknown)."""
    return " ".join(_levels(adcode)) if adcode else ""


def _short(adcode: str) -> str:
    """ "北京市朝阳区", "长春市朝阳区": a district with its city, as a person would type it."""
    return "".join(_levels(adcode)[-2:])


def _transform(text: str) -> tuple[str | None, bool]:
    """(adcode, whether the text named only a district: no province, no city)."""
    import cpca  # heavy (pandas, jieba-like tables): imported on first use only

    with _lock:  # cpca's matcher is shared state
        frame = cpca.transform([text], pos_sensitive=True)
    row = frame.iloc[0]
    code = row.get("adcode")
    if code is None or (isinstance(code, float) and code != code):
        return None, False
    alone = int(row.get("省_pos", -1)) < 0 and int(row.get("市_pos", -1)) < 0 and int(row.get("区_pos", -1)) >= 0
    return str(code)[:6], alone


@lru_cache(maxsize=4096)
def resolve(text: str) -> Place:
    """The place the text names, or ``UnknownPlaceError``."""
    raw = unicodedata.normalize("NFKC", text or "").strip()
    if not raw:
        raise UnknownPlaceError("the place is empty: write a city and district, e.g. 广州/天河区", key="place_empty")
    if len(raw) > MAX_PLACE_CHARS:
        raise UnknownPlaceError(
            f"the place is longer than {MAX_PLACE_CHARS} characters", key="place_too_long", limit=MAX_PLACE_CHARS
        )
    cleaned = "".join(_SEPARATORS.split(raw))
    code, alone = _transform(cleaned)
    if code is None:
        raise UnknownPlaceError(
            f"unknown place {raw!r}: write a city and district, e.g. 广州/天河区", key="place_unknown", text=raw
        )
    if code.endswith("0000") and code[:2] not in MUNICIPALITIES:
        raise UnknownPlaceError(
            f"{raw!r} is a whole province: name the city (and district)", key="place_province", text=raw
        )
    table = coordinates()
    if alone and _is_district(code):
        namesakes = districts_named().get(table[code][0] if code in table else "", ())
        if len(namesakes) > 1:
            choices = [_short(c) for c in namesakes]
            raise UnknownPlaceError(
                f"{raw!r} is a district of several cities ({', '.join(choices)}): name the city too, e.g. {choices[0]}",
                key="place_ambiguous",
                text=raw,
                choices=choices,
            )
    found = table.get(code) or table.get(code[:4] + "00") or table.get(code[:2] + "0000")
    if found is None:
        raise UnknownPlaceError(f"no coordinates for {raw!r}", key="place_no_coordinates", text=raw)
    _, lat, lon = found
    return Place(adcode=code, name=describe(code) or found[0], lat=lat, lon=lon)


def place_of_adcode(adcode: str) -> Place:
    """A place from a known adcode (imports, the benchmark)."""
    table = coordinates()
    found = table.get(adcode[:6])
    if found is None:
        raise UnknownPlaceError(f"unknown adcode {adcode!r}", key="place_unknown", text=adcode)
    _, lat, lon = found
    return Place(adcode=adcode[:6], name=describe(adcode[:6]), lat=lat, lon=lon)
