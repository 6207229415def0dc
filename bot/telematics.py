"""``POST /telematics``: odometer readings and fault codes from connected cars, HMAC-signed.

Request::

    POST /telematics
    Content-Type: application/json
    X-AutoCircle-Signature: sha256=<hex>

    {"readings": [
        {"vin": "LFV2A21K8E3123456", "odometer_km": 12345,
         "at": "2026-11-26T08:15:00+08:00", "fault_codes": ["P0301"]},
        ...
    ]}

``<hex>`` is HMAC-SHA256 of the raw body bytes (exactly as sent) keyed with the shared secret
``AUTOCIRCLE_SERVICE__TELEMATICS_SECRET`` (UTF-8), in hex (either case); compared in constant
time. Fields: ``vin`` 17 characters; ``odometer_km`` a number, 0 or more; ``at`` ISO 8601 with a
time zone (``Z`` or an offset); ``fault_codes`` optional, an array of codes such as ``P0301``
(at most 50). At most ``service.telematics_max_readings`` readings (default 1000), body at
most 1 MiB. Other keys are ignored.

Responses, all JSON:

* ``200`` ``{"received", "applied", "unchanged", "rejected", "unknown_vin", "new_faults",
  "alerts", "items": [{"index", "vin", "status", "reason"?, "new_faults"?}]}`` — per reading:
  ``applied``; ``unchanged`` (sent before: re-sending a batch is harmless); ``rejected`` (below
  the car's last value, an implausible jump, dated in the future — ``reason`` says which);
  ``unknown_vin``.
* ``400`` ``{"error", "problems": [{"index", "field", "reason"}]}`` — not JSON, not the shape
  above, or any field malformed.
* ``401`` ``{"error"}`` — no signature header, or not ``sha256=<64 hex>``.
* ``403`` ``{"error"}`` — the signature does not match.
* ``413`` — too many readings or too large a body.

Nothing changes on a 4xx: the signature and every field are checked before anything is
written, and a valid batch is applied in one transaction (all of it, or on a server error
none of it). New fault codes tell the owner and the partner through the outbox.

Mounting: ``add_telematics_routes(web_app, app)`` on an existing aiohttp application (the
webhook server), or ``start_telematics_site(app, host, port)`` for its own small server
(polling mode); ``autocircle run`` does one or the other when the secret is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.app import App
from flows.delivery_rules import DeliveryPolicy
from flows.outbox import POLICY_KEY
from flows.telematics import Reading, ReadingStatus, TelematicsResult, apply_readings
from flows.templating import Renderer
from storage.clock import utcnow
from storage.db import session_scope
from storage.importing.fields import MAX_KM, MAX_LIST_ITEMS, FieldError, parse_fault_code, parse_iso_instant, parse_vin

log = logging.getLogger(__name__)

PATH = "/telematics"
SIGNATURE_HEADER = "X-AutoCircle-Signature"
MAX_BODY_BYTES = 1 << 20
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")


class TelematicsNotConfigured(RuntimeError):
    """No shared secret: the endpoint is not served."""


def sign(secret: str, body: bytes) -> str:
    """The header value a sender puts on ``body`` (used by tests and integrators)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class BatchError(ValueError):
    def __init__(self, status: int, error: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.problems = problems or []

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.error}
        if self.problems:
            body["problems"] = self.problems
        return web.json_response(body, status=self.status)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_batch(body: bytes, max_readings: int) -> list[Reading]:
    """Every reading of the body, or ``BatchError`` naming every problem found."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("readings"), list):
        raise BatchError(400, 'body must be a JSON object with a "readings" array')
    items = data["readings"]
    if len(items) > max_readings:
        raise BatchError(413, f"too many readings: {len(items)} (at most {max_readings} per request)")
    problems: list[dict[str, Any]] = []
    readings: list[Reading] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append({"index": index, "field": "", "reason": "must be an object"})
            continue
        values: dict[str, Any] = {}
        for name, check in _FIELDS.items():
            try:
                values[name] = check(item.get(name))
            except FieldError as exc:
                problems.append({"index": index, "field": name, "reason": str(exc)})
        if len(values) == len(_FIELDS):
            readings.append(Reading(values["vin"], values["odometer_km"], values["at"], values["fault_codes"]))
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        where = f"readings[{first['index']}]" + (f".{first['field']}" if first["field"] else "")
        raise BatchError(400, f"malformed readings: {where}: {first['reason']}{more}", problems)
    return readings


def _vin(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("required, a string of 17 characters")
    return parse_vin(value)


def _km(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError("required, a number of km")
    if not math.isfinite(value) or value < 0:
        raise FieldError("must be 0 or more")
    if value > MAX_KM:
        raise FieldError(f"implausibly large (over {MAX_KM:,} km)")
    return int(round(value))


def _at(value: Any) -> Any:
    if not isinstance(value, str):
        raise FieldError("required, an ISO 8601 time with a time zone")
    return parse_iso_instant(value)


def _codes(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FieldError("must be an array of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise FieldError(f"more than {MAX_LIST_ITEMS} codes")
    return tuple(dict.fromkeys(parse_fault_code(v) for v in value))


_FIELDS: dict[str, Callable[[Any], Any]] = {"vin": _vin, "odometer_km": _km, "at": _at, "fault_codes": _codes}


@dataclass
class TelematicsEndpoint:
    """The handler with what it needs; one per mounted route."""

    app: App
    secret: bytes
    renderer: Renderer
    max_readings: int
    policy: DeliveryPolicy | None = None
    on_enqueued: Callable[[], None] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        header = request.headers.get(SIGNATURE_HEADER, "").strip()
        match = _SIGNATURE.fullmatch(header)
        if match is None:  # refused before the body is even read
            log.warning("telematics request from %s without a valid signature header", request.remote)
            return web.json_response({"error": f"missing or malformed {SIGNATURE_HEADER} (sha256=<hex>)"}, status=401)
        body = await request.read()
        expected = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match.group(1).lower()):
            log.warning("telematics request from %s with a bad signature", request.remote)
            return web.json_response({"error": "bad signature"}, status=403)
        try:
            readings = parse_batch(body, self.max_readings)
        except BatchError as exc:
            return exc.response()
        result = await asyncio.to_thread(self._apply, readings)
        log.info(
            "telematics: %d readings, %d applied, %d rejected, %d unknown VINs, %d new faults",
            len(readings), result.count(ReadingStatus.applied), result.count(ReadingStatus.rejected),
            result.count(ReadingStatus.unknown_vin), result.new_faults,
        )
        if result.alerts and self.on_enqueued is not None:
            self.on_enqueued()
        return web.json_response(result.to_dict())

    def _apply(self, readings: list[Reading]) -> TelematicsResult:
        service = self.app.settings.service
        with session_scope(self.app.engine, info={POLICY_KEY: self.policy}) as session:
            return apply_readings(
                session, self.renderer, readings, utcnow(),
                limits=service.limits(self.app.settings.timezone), faults=service.fault_policy(),
            )


def _endpoint(
    app: App, policy: DeliveryPolicy | None, on_enqueued: Callable[[], None] | None
) -> TelematicsEndpoint:
    settings = app.settings
    secret = settings.service.telematics_secret
    if secret is None or not secret.get_secret_value():
        raise TelematicsNotConfigured("AUTOCIRCLE_SERVICE__TELEMATICS_SECRET is not set")
    return TelematicsEndpoint(
        app=app,
        secret=secret.get_secret_value().encode(),
        renderer=Renderer(default_locale=settings.locale),
        max_readings=settings.service.telematics_max_readings,
        policy=policy,
        on_enqueued=on_enqueued,
    )


def add_telematics_routes(
    web_app: web.Application,
    app: App,
    *,
    policy: DeliveryPolicy | None = None,
    on_enqueued: Callable[[], None] | None = None,
) -> None:
    """Mount ``POST /telematics`` on an existing application (e.g. the webhook server)."""
    web_app.router.add_post(PATH, _endpoint(app, policy, on_enqueued).handle)


def telematics_app(
    app: App, *, policy: DeliveryPolicy | None = None, on_enqueued: Callable[[], None] | None = None
) -> web.Application:
    """A small application serving only ``POST /telematics``."""
    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    add_telematics_routes(web_app, app, policy=policy, on_enqueued=on_enqueued)
    return web_app


async def start_telematics_site(
    app: App,
    host: str,
    port: int,
    *,
    policy: DeliveryPolicy | None = None,
    on_enqueued: Callable[[], None] | None = None,
) -> web.AppRunner:
    """Serve ``telematics_app`` on ``host:port``; the caller ``cleanup()``s the runner."""
    runner = web.AppRunner(telematics_app(app, policy=policy, on_enqueued=on_enqueued))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
