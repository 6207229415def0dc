"""A commercial owner's vehicle as capacity: class, payload, base place, radius, availability.

The class comes from the vehicle model in the import (``class_of_model``: keywords such as
冷藏 → refrigerated, 自卸 → tipper), or from the owner via ``/vehicle``. An import's extra
columns (kept in ``Owner.attributes``) may carry payload and base: ``sync_from_import``
creates the capacity rows of commercial owners from them, without changing the owner
importer's contract.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from flows.errors import InvalidInputError
from flows.opportunities import geo, places
from flows.opportunities.errors import InvalidValueError
from storage.models import Event, Owner, ProductLine, Vehicle
from storage.opportunity_models import Capacity, VehicleClass

#: Keywords in a model name → class, checked in this order (a 冷藏厢式货车 is refrigerated).
_MODEL_WORDS: tuple[tuple[VehicleClass, tuple[str, ...]], ...] = (
    (VehicleClass.refrigerated, ("冷藏", "冷链", "保温", "refrigerat", "reefer")),
    (VehicleClass.tipper, ("自卸", "翻斗", "渣土", "tipper", "dump")),
    (VehicleClass.heavy_truck, ("重卡", "重型", "牵引", "半挂", "heavy", "tractor")),
    (VehicleClass.light_truck, ("轻卡", "轻型", "小卡", "货车", "皮卡", "light truck", "pickup")),
    (VehicleClass.van, ("面包", "厢式", "依维柯", "全顺", "金杯", "五菱", "宏光", "van")),
)
#: What a class can carry at most (t) and a typical load when the import says nothing.
MAX_PAYLOAD_T = {
    VehicleClass.van: 3.0,
    VehicleClass.light_truck: 10.0,
    VehicleClass.heavy_truck: 49.0,
    VehicleClass.refrigerated: 30.0,
    VehicleClass.tipper: 40.0,
}
DEFAULT_PAYLOAD_T = {
    VehicleClass.van: 1.5,
    VehicleClass.light_truck: 3.0,
    VehicleClass.heavy_truck: 25.0,
    VehicleClass.refrigerated: 5.0,
    VehicleClass.tipper: 15.0,
}
MAX_VOLUME_M3 = 150.0
#: Recorded each time a vehicle is saved, so a flow can wait for it.
VEHICLE_SET_EVENT = "vehicle_set"
DEFAULT_RADIUS_KM = 100
MAX_RADIUS_KM = 300
_CLASS_WORDS = {
    "van": VehicleClass.van,
    "面包车": VehicleClass.van,
    "厢式车": VehicleClass.van,
    "light": VehicleClass.light_truck,
    "light_truck": VehicleClass.light_truck,
    "轻卡": VehicleClass.light_truck,
    "heavy": VehicleClass.heavy_truck,
    "heavy_truck": VehicleClass.heavy_truck,
    "重卡": VehicleClass.heavy_truck,
    "refrigerated": VehicleClass.refrigerated,
    "reefer": VehicleClass.refrigerated,
    "冷藏车": VehicleClass.refrigerated,
    "tipper": VehicleClass.tipper,
    "dump": VehicleClass.tipper,
    "自卸车": VehicleClass.tipper,
}


def class_of_model(model: str | None) -> VehicleClass | None:
    text = unicodedata.normalize("NFKC", model or "").lower()
    for cls, words in _MODEL_WORDS:
        if any(w in text for w in words):
            return cls
    return None


def parse_class(value: str) -> VehicleClass:
    key = unicodedata.normalize("NFKC", value or "").strip().lower()
    found = _CLASS_WORDS.get(key) or class_of_model(key)
    if found is None:
        raise InvalidValueError(
            f"unknown vehicle class {value!r}: use van, light_truck, heavy_truck, refrigerated or tipper",
            key="class_unknown",
            text=str(value or ""),
        )
    return found


def parse_payload(value: str) -> tuple[float, float]:
    """ "3t", "3.5 吨", "12m3", "3t 16m3" → (tonnes, cubic metres)."""
    text = unicodedata.normalize("NFKC", value or "").lower().replace("³", "3")
    if re.search(r"[-−]\s*\d", text):  # "-5t" is not 5 t
        raise InvalidValueError(f"payload {value!r} is negative", key="payload_negative")
    tonnes = volume = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(t|吨|m3|方|立方)?", text):
        amount = float(number)
        if unit in ("m3", "方", "立方"):
            volume = amount
        else:
            tonnes = amount
    if tonnes <= 0 and volume <= 0:
        raise InvalidValueError(
            f"payload {value!r} not understood: write tonnes and/or m³, e.g. 3t or 3t 16m3",
            key="payload_format",
            text=str(value or ""),
        )
    return tonnes, volume


def check_payload(cls: VehicleClass, tonnes: float, volume: float) -> None:
    if tonnes < 0 or volume < 0:
        raise InvalidValueError("payload cannot be negative", key="payload_negative")
    if tonnes > MAX_PAYLOAD_T[cls]:
        raise InvalidValueError(
            f"{tonnes:g} t is more than a {cls.value} carries (at most {MAX_PAYLOAD_T[cls]:g} t)",
            key="payload_too_heavy",
            tonnes=f"{tonnes:g}",
            cls=cls.value,
            limit=f"{MAX_PAYLOAD_T[cls]:g}",
        )
    if volume > MAX_VOLUME_M3:
        raise InvalidValueError(
            f"{volume:g} m³ is more than any vehicle holds (at most {MAX_VOLUME_M3:g} m³)",
            key="volume_too_big",
            volume=f"{volume:g}",
            limit=f"{MAX_VOLUME_M3:g}",
        )


@dataclass(frozen=True)
class CapacityView:
    owner_id: int
    vehicle_class: str
    payload_t: float
    volume_m3: float
    base: str
    radius_km: int
    available: bool
    busy_until: datetime | None
    place: str = ""  # the base as resolved: "广东省 广州市 天河区"


def view(cap: Capacity) -> CapacityView:
    return CapacityView(
        cap.owner_id,
        cap.vehicle_class,
        cap.payload_t,
        cap.volume_m3,
        cap.base_text,
        cap.radius_km,
        cap.available,
        cap.busy_until,
        places.describe(cap.base_adcode),
    )


def get(session: Session, owner_id: int) -> Capacity | None:
    return session.exec(select(Capacity).where(col(Capacity.owner_id) == owner_id)).first()


def set_vehicle(
    session: Session,
    owner_id: int,
    *,
    vehicle_class: str | VehicleClass,
    payload_t: float,
    volume_m3: float = 0.0,
    base: str,
    radius_km: int | None = None,
    now: datetime,
) -> Capacity:
    """Create or change the owner's capacity; only commercial owners have capacity."""
    owner = session.get(Owner, owner_id)
    if owner is None or owner.product_line != ProductLine.commercial.value:
        raise InvalidValueError("only commercial-vehicle owners can offer capacity", key="commercial_only")
    cls = vehicle_class if isinstance(vehicle_class, VehicleClass) else parse_class(vehicle_class)
    check_payload(cls, payload_t, volume_m3)
    place = places.resolve(base)
    radius = DEFAULT_RADIUS_KM if radius_km is None else radius_km
    if not 1 <= radius <= MAX_RADIUS_KM:
        raise InvalidValueError(f"working radius must be 1–{MAX_RADIUS_KM} km", key="radius_range", limit=MAX_RADIUS_KM)
    cap = get(session, owner_id) or Capacity(owner_id=owner_id, vehicle_class=cls.value)
    if cap.vehicle_id is None:
        cap.vehicle_id = session.exec(select(col(Vehicle.id)).where(col(Vehicle.owner_id) == owner_id)).first()
    cap.vehicle_class, cap.payload_t, cap.volume_m3 = cls.value, payload_t, volume_m3
    cap.base_text, cap.base_adcode, cap.lat, cap.lon = base.strip()[:40], place.adcode, place.lat, place.lon
    cap.h3_cell = geo.cell_of(place.lat, place.lon)
    cap.radius_km, cap.updated_at = radius, now
    session.add(cap)
    # the event a commercial flow waits for (flows.opportunities.flow_hooks)
    session.add(Event(owner_id=owner_id, kind=VEHICLE_SET_EVENT, at=now, data={"vehicle_class": cls.value}))
    session.flush()
    return cap


def set_available(session: Session, owner_id: int, now: datetime) -> Capacity:
    """Offers again from now: not busy, and no longer paused (``/available`` is what the
    commercial flow's "pause offers" answer tells the owner to send)."""
    cap = _require(session, owner_id)
    cap.available, cap.busy_until, cap.opted_out, cap.updated_at = True, None, False, now
    session.add(cap)
    return cap


def set_busy(session: Session, owner_id: int, until: datetime | None, now: datetime) -> Capacity:
    """Busy until a time (offers resume then), or indefinitely (``until`` None)."""
    cap = _require(session, owner_id)
    if until is not None and until <= now:
        raise InvalidValueError("that time has already passed", key="until_passed")
    cap.available, cap.busy_until, cap.updated_at = until is not None, until, now
    session.add(cap)
    return cap


def set_opted_out(session: Session, owner_id: int, opted_out: bool, now: datetime) -> Capacity:
    cap = _require(session, owner_id)
    cap.opted_out, cap.updated_at = opted_out, now
    session.add(cap)
    return cap


def _require(session: Session, owner_id: int) -> Capacity:
    cap = get(session, owner_id)
    if cap is None:
        raise InvalidValueError("set your vehicle first: /vehicle CLASS PAYLOAD BASE", key="vehicle_first")
    return cap


def parse_until(text: str, now: datetime, timezone: str) -> datetime:
    """ "18:00", "2026-12-05", "2026-12-05 18:00", "3d", "12h" → aware UTC."""
    zone = ZoneInfo(timezone)
    raw = unicodedata.normalize("NFKC", text or "").strip().lower().removeprefix("until").strip()
    local = now.astimezone(zone)
    if m := re.fullmatch(r"(\d+)\s*([dh天小时]+)", raw):
        amount, unit = int(m.group(1)), m.group(2)
        delta = timedelta(days=amount) if unit in ("d", "天") else timedelta(hours=amount)
        return now + delta
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=zone).astimezone(now.tzinfo)
        except ValueError:
            continue
    if (m := re.fullmatch(r"(\d{1,2}):(\d{2})", raw)) and int(m.group(1)) < 24 and int(m.group(2)) < 60:
        at = local.replace(hour=int(m.group(1)), minute=int(m.group(2)), second=0, microsecond=0)
        if at <= local:
            at += timedelta(days=1)
        return at.astimezone(now.tzinfo)
    raise InvalidValueError("write a time: /busy until 18:00, /busy until 2026-12-05, /busy 3d", key="until_format")


# --- from the import ------------------------------------------------------------------------

_PAYLOAD_KEYS = ("payload", "payload_t", "载重", "载重(吨)", "核定载重", "载重量")
_VOLUME_KEYS = ("volume", "volume_m3", "容积", "容积(方)")
_BASE_KEYS = ("base", "城市/区", "常驻地", "所在地", "城市")
_CLASS_KEYS = ("vehicle class", "vehicle_class", "车辆类型", "车型类别")


def _attr(attrs: dict[str, Any], keys: tuple[str, ...]) -> str:
    lowered = {str(k).strip().lower(): v for k, v in attrs.items()}
    for key in keys:
        value = lowered.get(key.lower())
        if value not in (None, ""):
            return str(value)
    return ""


def sync_from_import(session: Session, now: datetime) -> tuple[int, list[tuple[int, str]]]:
    """Capacity for commercial owners who have none yet, from the vehicle model and the
    import's extra columns (payload, base). Returns (created, [(owner id, why skipped)])."""
    have = set(session.exec(select(col(Capacity.owner_id))))
    created, skipped = 0, []
    rows = session.exec(
        select(Owner, Vehicle)
        .join(Vehicle, col(Vehicle.owner_id) == col(Owner.id))
        .where(col(Owner.product_line) == ProductLine.commercial.value)
        .order_by(col(Owner.id))
    )
    for owner, vehicle in rows:
        assert owner.id is not None
        if owner.id in have:
            continue
        attrs = owner.attributes or {}
        try:
            cls = parse_class(_attr(attrs, _CLASS_KEYS)) if _attr(attrs, _CLASS_KEYS) else class_of_model(vehicle.model)
            if cls is None:
                raise InvalidInputError(f"model {vehicle.model!r} names no vehicle class")
            base = _attr(attrs, _BASE_KEYS)
            if not base:
                raise InvalidInputError("no base place (column base/常驻地)")
            payload = _attr(attrs, _PAYLOAD_KEYS)
            tonnes, volume = parse_payload(payload) if payload else (DEFAULT_PAYLOAD_T[cls], 0.0)
            vol = _attr(attrs, _VOLUME_KEYS)
            if vol:
                volume = parse_payload(vol + "m3")[1]
            with session.begin_nested():
                set_vehicle(
                    session, owner.id, vehicle_class=cls, payload_t=tonnes, volume_m3=volume, base=base, now=now
                )
            have.add(owner.id)
            created += 1
        except InvalidInputError as exc:
            skipped.append((owner.id, str(exc)))
    return created, skipped
