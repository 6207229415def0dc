"""Places as people type them ("广州/天河区", "深圳市 南山区", "上海") → adcode and coordinates.

Offline: ``cpca`` (a well-kept library of China's administrative divisions) turns the text
into an adcode; the coordinates come from the same package's ``resources/adcodes.csv``. No
network. A text that names no known place, or only a province, is an ``UnknownPlaceError``
with a reason a person can act on.
"""

from __future__ import annotations

import csv
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from flows.errors import InvalidInputError

#: Province-level cities: their province adcode is precise enough for a pickup.
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})
MAX_PLACE_CHARS = 40
_SEPARATORS = re.compile(r"[/／\\,，、\s·\-]+")
_lock = threading.Lock()


class UnknownPlaceError(InvalidInputError):
    """The text names no place we know (or too wide a one)."""


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


def _transform(text: str) -> tuple[str | None, str]:
    import cpca  # heavy (pandas, jieba-like tables): imported on first use only

    with _lock:  # cpca's matcher is shared state
        frame = cpca.transform([text])
    row = frame.iloc[0]
    code = row.get("adcode")
    if code is None or (isinstance(code, float) and code != code):
        return None, ""
    parts = [str(row.get(k)) for k in ("省", "市", "区") if isinstance(row.get(k), str) and row.get(k) != "市辖区"]
    return str(code)[:6], " ".join(parts)


@lru_cache(maxsize=4096)
def resolve(text: str) -> Place:
    """The place the text names, or ``UnknownPlaceError``."""
    raw = unicodedata.normalize("NFKC", text or "").strip()
    if not raw:
        raise UnknownPlaceError("the place is empty: write a city and district, e.g. 广州/天河区")
    if len(raw) > MAX_PLACE_CHARS:
        raise UnknownPlaceError(f"the place is longer than {MAX_PLACE_CHARS} characters")
    cleaned = "".join(_SEPARATORS.split(raw))
    code, name = _transform(cleaned)
    if code is None:
        raise UnknownPlaceError(f"unknown place {raw!r}: write a city and district, e.g. 广州/天河区")
    if code.endswith("0000") and code[:2] not in MUNICIPALITIES:
        raise UnknownPlaceError(f"{raw!r} is a whole province: name the city (and district)")
    table = coordinates()
    found = table.get(code) or table.get(code[:4] + "00") or table.get(code[:2] + "0000")
    if found is None:
        raise UnknownPlaceError(f"no coordinates for {raw!r}")
    _, lat, lon = found
    return Place(adcode=code, name=name or found[0], lat=lat, lon=lon)


def place_of_adcode(adcode: str) -> Place:
    """A place from a known adcode (imports, the benchmark)."""
    table = coordinates()
    found = table.get(adcode[:6])
    if found is None:
        raise UnknownPlaceError(f"unknown adcode {adcode!r}")
    name, lat, lon = found
    return Place(adcode=adcode[:6], name=name, lat=lat, lon=lon)
