"""Service moments end to end: the real bot polling the sandbox, and the telematics endpoint
over real HTTP on the same database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlmodel import col

from storage.clock import utcnow
from storage.models import OutboxMessage, Owner, Vehicle
from storage.service_models import OdometerReading, ServiceRecord
from tests.support.harness import BotHarness

pytestmark = pytest.mark.e2e

SECRET = "e2e-telematics-secret"
PARTNER_TG, OTHER_PARTNER_TG = 5001, 5002
OWNER_TG, OTHER_OWNER_TG = 6001, 6002
VIN, OTHER_VIN = "LSVAB2BJ7MN123456", "LFV2A21K8E3123456"


@pytest.fixture
async def harness(sandbox, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BotHarness]:
    """The bot with a telematics secret and no quiet hours, so pushes go out whatever the
    time of day."""
    monkeypatch.setenv("AUTOCIRCLE_DELIVERY__QUIET_HOURS", "off")
    bot_harness = BotHarness(sandbox, sqlite_url, service={"telematics_secret": SECRET})
    await bot_harness.start()
    try:
        yield bot_harness
    finally:
        await bot_harness.stop()


@pytest.fixture
async def endpoint(harness: BotHarness) -> AsyncIterator[TestClient]:
    from bot.runtime import delivery_policy
    from bot.telematics import telematics_app

    web_app = telematics_app(
        harness.app, policy=delivery_policy(harness.app.settings), on_enqueued=harness.runtime.sender.wake
    )
    async with TestClient(TestServer(web_app)) as client:
        yield client


async def _owner_online(harness: BotHarness, external_id: str, tg: int, vin: str, advisor: str | None = "A101") -> int:
    """An imported owner who verified on the bot (English), with a car bought 120 days ago."""
    bought = utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=120)
    owner_id = await harness.add_owner(
        external_id,
        name=f"Owner {external_id}",
        vin=vin,
        advisor_code=advisor,
        purchase_date=bought,
        telegram_user_id=tg,
        locale="en",
    )
    await harness.sandbox.add_user(tg, first_name=external_id)
    await harness.sandbox.send_text(tg, tg, "/help")  # the owner has talked to the bot before
    await harness.sandbox.wait_for_bot_message(tg)
    return owner_id


def _add_car(harness: BotHarness, owner_id: int, vin: str, plate: str) -> int:
    with harness.session() as session:
        car = Vehicle(owner_id=owner_id, vin=vin, plate=plate, model="Model Y")
        session.add(car)
        session.commit()
        return car.id


def _vehicle(harness: BotHarness, vin: str) -> Vehicle:
    with harness.session() as session:
        return session.execute(select(Vehicle).where(col(Vehicle.vin) == vin)).scalar_one()


def _readings(harness: BotHarness) -> int:
    with harness.session() as session:
        return session.execute(select(func.count()).select_from(OdometerReading)).scalar_one()


# --- /mileage ---------------------------------------------------------------------------------


async def test_mileage_is_saved_with_the_next_service_and_bad_values_get_clear_replies(harness) -> None:
    sb = harness.sandbox
    await _owner_online(harness, "C0001", OWNER_TG, VIN, advisor=None)

    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage")
    await sb.wait_for_bot_message(OWNER_TG, contains="e.g. /mileage 12345")
    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage twelve")
    reply = await sb.wait_for_bot_message(OWNER_TG, contains="is not a kilometre reading")
    assert "“twelve”" in reply["text"]

    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage 4,000")
    saved = await sb.wait_for_bot_message(OWNER_TG, contains="Noted: 4,000 km")
    assert "Next service (the first one): at 5,000 km or by " in saved["text"]
    assert "1,000 km to go, about 30 days" in saved["text"]  # 4,000 km in 120 days
    assert await harness.eventually(lambda: _vehicle(harness, VIN).mileage_km == 4_000)

    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage 3900")
    backwards = await sb.wait_for_bot_message(OWNER_TG, contains="less than the 4,000 km already recorded")
    assert "only goes up" in backwards["text"]

    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage 9000")
    await sb.wait_for_bot_message(OWNER_TG, contains="more than 1,500 km a day")

    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage 5,200")
    due = await sb.wait_for_bot_message(OWNER_TG, contains="Noted: 5,200 km")
    assert "service is due now" in due["text"]
    assert await harness.eventually(lambda: _vehicle(harness, VIN).mileage_km == 5_200)
    assert _readings(harness) == 2


async def test_mileage_is_not_for_people_who_are_not_verified_owners(harness) -> None:
    sb = harness.sandbox
    await sb.add_user(OWNER_TG, first_name="Stranger")
    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage 1000")
    await sb.wait_for_bot_message(OWNER_TG, contains="/help")
    assert _readings(harness) == 0


# --- /serviced --------------------------------------------------------------------------------


async def test_partner_records_a_service_for_own_owner_only(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Wang")
    other_code = await harness.add_partner("B202", name="Zhao")
    await harness.register_partner(PARTNER_TG, code)
    await harness.register_partner(OTHER_PARTNER_TG, other_code, first_name="Other")
    owner_id = await _owner_online(harness, "C0001", OWNER_TG, VIN)
    await _owner_online(harness, "C0002", OTHER_OWNER_TG, OTHER_VIN, advisor="B202")

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/serviced")
    await sb.wait_for_bot_message(PARTNER_TG, contains="Usage: /serviced OWNER_ID")
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/serviced C0001")
    await sb.wait_for_bot_message(PARTNER_TG, contains="mileage is not known yet")

    second_car = await asyncio.to_thread(_add_car, harness, owner_id, "LGBH52E09KY123456", "沪A12345")
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/serviced C0001 5,100")
    which = await sb.wait_for_bot_message(PARTNER_TG, contains="This owner has several cars")
    assert "沪A12345" in which["text"] and "…123456" in which["text"]
    assert "e.g. /serviced C0001 5100 MN123456" in which["text"]
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/serviced C0001 5,100 MN123456")
    done = await sb.wait_for_bot_message(PARTNER_TG, contains="Service recorded")
    assert "Owner C0001" in done["text"] and "5,100 km" in done["text"]
    assert "Next service: at 15,100 km" in done["text"]

    def visits() -> int:
        with harness.session() as session:
            return session.get(Owner, owner_id).service_visits

    assert await harness.eventually(visits) == 1
    car = _vehicle(harness, VIN)
    assert (car.last_service_km, car.mileage_km) == (5_100, 5_100)

    assert _vehicle(harness, "LGBH52E09KY123456").last_service_km is None  # the other car: untouched
    assert second_car

    with harness.session() as session:
        planned = session.execute(select(col(ServiceRecord.items))).scalar_one()
    assert "engine_oil" in planned  # the checklist that was due is what the visit did

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/serviced C0001 MN123456")  # same day, known mileage
    await sb.wait_for_bot_message(PARTNER_TG, contains="already recorded")
    with harness.session() as session:
        assert session.execute(select(col(ServiceRecord.items))).scalar_one() == planned
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/serviced C0001 4000 MN123456")
    await sb.wait_for_bot_message(PARTNER_TG, contains="Not recorded: 4,000 km is below")

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/serviced C0002 3000")
    await sb.wait_for_bot_message(PARTNER_TG, contains="C0002")
    with harness.session() as session:
        assert session.execute(select(func.count()).select_from(ServiceRecord)).scalar_one() == 1
        assert session.get(Owner, owner_id).service_visits == 1

    await sb.send_text(OWNER_TG, OWNER_TG, "/serviced C0001 6000")
    await sb.wait_for_bot_message(OWNER_TG, contains="partners only")


# --- POST /telematics ---------------------------------------------------------------------------


def _body(readings: list[dict]) -> bytes:
    return json.dumps({"readings": readings}).encode()


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    from bot.telematics import sign

    return {"X-AutoCircle-Signature": sign(secret, body), "Content-Type": "application/json"}


def _now_iso(minutes_ago: int = 5) -> str:
    return (utcnow() - timedelta(minutes=minutes_ago)).isoformat()


async def test_signed_batch_is_applied_and_a_fault_code_tells_owner_and_partner(harness, endpoint) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Wang")
    await harness.register_partner(PARTNER_TG, code)
    await _owner_online(harness, "C0001", OWNER_TG, VIN)
    body = _body(
        [
            {"vin": VIN, "odometer_km": 8000, "at": _now_iso(60)},
            {"vin": VIN, "odometer_km": 8042.4, "at": _now_iso(5), "fault_codes": ["p0301"]},
            {"vin": "LGXCE4CB5M0123456", "odometer_km": 10, "at": _now_iso(5)},
            {"vin": VIN, "odometer_km": 7000, "at": _now_iso(1)},
        ]
    )
    response = await endpoint.post("/telematics", data=body, headers=_signed(body))
    assert response.status == 200, await response.text()
    result = await response.json()
    assert {k: result[k] for k in ("received", "applied", "rejected", "unknown_vin", "new_faults", "alerts")} == {
        "received": 4,
        "applied": 2,
        "rejected": 1,
        "unknown_vin": 1,
        "new_faults": 1,
        "alerts": 2,
    }
    assert [item["status"] for item in result["items"]] == ["applied", "applied", "unknown_vin", "rejected"]
    assert "below the 8042 km" in result["items"][3]["reason"]
    assert _vehicle(harness, VIN).mileage_km == 8_042

    owner_alert = await sb.wait_for_bot_message(OWNER_TG, contains="P0301")
    assert "fault code" in owner_alert["text"]
    partner_alert = await sb.wait_for_bot_message(PARTNER_TG, contains="P0301")
    assert "Owner C0001" in partner_alert["text"] and "The owner was told too" in partner_alert["text"]

    again = await endpoint.post("/telematics", data=body, headers=_signed(body))
    assert (await again.json())["unchanged"] == 2 and (await again.json())["alerts"] == 0


async def test_unsigned_badly_signed_and_malformed_requests_change_nothing(harness, endpoint) -> None:
    await _owner_online(harness, "C0001", OWNER_TG, VIN, advisor=None)
    good = _body([{"vin": VIN, "odometer_km": 1000, "at": _now_iso(), "fault_codes": ["P0301"]}])

    unsigned = await endpoint.post("/telematics", data=good)
    assert unsigned.status == 401 and "X-AutoCircle-Signature" in (await unsigned.json())["error"]
    wrong_secret = await endpoint.post("/telematics", data=good, headers=_signed(good, "not-the-secret"))
    assert wrong_secret.status == 403
    tampered = good.replace(b"1000", b"9000")
    assert (await endpoint.post("/telematics", data=tampered, headers=_signed(good))).status == 403

    not_json = b'{"readings": [ {"vin": '
    response = await endpoint.post("/telematics", data=not_json, headers=_signed(not_json))
    assert response.status == 400 and "not valid JSON" in (await response.json())["error"]

    wrong_shape = b"[1, 2, 3]"
    response = await endpoint.post("/telematics", data=wrong_shape, headers=_signed(wrong_shape))
    assert response.status == 400 and '"readings" array' in (await response.json())["error"]

    # one good reading and one bad: all or nothing
    mixed = _body(
        [
            {"vin": VIN, "odometer_km": 1000, "at": _now_iso(), "fault_codes": ["P0301"]},
            {"vin": VIN, "odometer_km": "1,100", "at": "2026-11-26 10:00"},
        ]
    )
    response = await endpoint.post("/telematics", data=mixed, headers=_signed(mixed))
    assert response.status == 400
    error = await response.json()
    assert error["error"].startswith("malformed readings: readings[1].odometer_km: required, a number of km")
    assert {(p["index"], p["field"]) for p in error["problems"]} == {(1, "odometer_km"), (1, "at")}
    assert "time zone" in next(p["reason"] for p in error["problems"] if p["field"] == "at")

    assert _readings(harness) == 0 and _vehicle(harness, VIN).mileage_km is None
    with harness.session() as session:
        assert session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() == 0

    response = await endpoint.post("/telematics", data=good, headers=_signed(good))
    assert response.status == 200 and (await response.json())["applied"] == 1


async def test_webhook_mode_can_share_one_application(harness) -> None:
    from aiohttp import web

    from bot.telematics import add_telematics_routes

    web_app = web.Application()
    add_telematics_routes(web_app, harness.app)
    async with TestClient(TestServer(web_app)) as client:
        body = _body([])
        response = await client.post("/telematics", data=body, headers=_signed(body))
        assert response.status == 200 and (await response.json())["received"] == 0


# --- replay, nesting and size (issue 11, item 8) ----------------------------------------------


def _refusals(harness: BotHarness) -> list[str]:
    from storage.audit import AuditKind, audit_entries

    with harness.session() as session:
        return [e.subject for e in audit_entries(session, kinds=[AuditKind.telematics_refused])]


async def test_a_signature_without_a_fresh_timestamp_is_refused_as_a_replay(harness, endpoint) -> None:
    import hashlib
    import hmac
    import time

    from bot.telematics import sign

    await _owner_online(harness, "C0001", OWNER_TG, VIN, advisor=None)
    body = _body([{"vin": VIN, "odometer_km": 1000, "at": _now_iso()}])
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}

    # The old scheme, HMAC over the body alone: no time in it, so replayable for ever.
    old = await endpoint.post(
        "/telematics", data=body, headers={**headers, "X-AutoCircle-Signature": f"sha256={digest}"}
    )
    assert old.status == 401 and "timestamp" in (await old.json())["error"]
    # Signed six minutes ago (a captured request sent again), or as far ahead.
    for skew in (-360, 360):
        stale = await endpoint.post(
            "/telematics",
            data=body,
            headers={**headers, "X-AutoCircle-Signature": sign(SECRET, body, time.time() + skew)},
        )
        assert stale.status == 401 and "replay" in (await stale.json())["error"]
    # The timestamp is inside the signature: moving it forward breaks the signature.
    captured = sign(SECRET, body, time.time() - 360)
    _t, rest = captured.split(",", 1)
    moved = await endpoint.post(
        "/telematics", data=body, headers={**headers, "X-AutoCircle-Signature": f"t={int(time.time())},{rest}"}
    )
    assert moved.status == 403
    assert _readings(harness) == 0

    # Fresh: four minutes old is still within the default five.
    ok = await endpoint.post(
        "/telematics", data=body, headers={**headers, "X-AutoCircle-Signature": sign(SECRET, body, time.time() - 240)}
    )
    assert ok.status == 200 and (await ok.json())["applied"] == 1
    # The timestamp may travel in its own header, the HMAC input is the same.
    now = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    split = await endpoint.post(
        "/telematics",
        data=body,
        headers={**headers, "X-AutoCircle-Signature": f"sha256={digest}", "X-AutoCircle-Timestamp": str(now)},
    )
    assert split.status == 200 and (await split.json())["unchanged"] == 1
    assert set(_refusals(harness)) == {"no_timestamp", "stale", "mismatch"}


async def test_deeply_nested_or_oversized_json_is_a_400_and_changes_nothing(harness, endpoint) -> None:
    await _owner_online(harness, "C0001", OWNER_TG, VIN, advisor=None)
    reading = {"vin": VIN, "odometer_km": 1000, "at": _now_iso()}
    too_deep = json.dumps({"readings": [reading], "extra": [[[[[[[[[1]]]]]]]]]}).encode()
    bottomless = b'{"readings": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    for body in (too_deep, bottomless):
        response = await endpoint.post("/telematics", data=body, headers=_signed(body))
        assert response.status == 400, await response.text()
        assert "nested too deeply" in (await response.json())["error"]

    padded = json.dumps({"readings": [reading], "pad": "x" * 1_000_000}).encode()  # over the 1,000,000 bytes
    response = await endpoint.post("/telematics", data=padded, headers=_signed(padded))
    assert response.status == 400 and "too large" in (await response.json())["error"]

    async def chunks():  # no Content-Length: the limit holds while reading
        for start in range(0, len(padded), 64 * 1024):
            yield padded[start : start + 64 * 1024]

    response = await endpoint.post("/telematics", data=chunks(), headers=_signed(padded))
    assert response.status == 400 and "too large" in (await response.json())["error"]
    assert _readings(harness) == 0 and "too_large" in _refusals(harness)

    fits = json.dumps({"readings": [reading], "pad": "x" * 900_000}).encode()
    response = await endpoint.post("/telematics", data=fits, headers=_signed(fits))
    assert response.status == 200 and (await response.json())["applied"] == 1
