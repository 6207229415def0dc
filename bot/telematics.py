"""``POST /telematics``: odometer readings and fault codes from connected cars, HMAC-signed
with the time of signing inside the signature (a captured request cannot be replayed later).

Request::

    POST /telematics
    Content-Type: application/json
    X-AutoCircle-Signature: t=<unix seconds>,sha256=<hex>

    {"readings": [
        {"vin": "LFV2A21K8E3123456", "odometer_km": 12345,
         "at": "2026-11-26T08:15:00+08:00", "fault_codes": ["P0301"]},
        ...
    ]}

``<hex>`` is HMAC-SHA256, keyed with the shared secret ``AUTOCIRCLE_SERVICE__TELEMATICS_SECRET``
(UTF-8), of ``<unix seconds>.<body>``: the decimal timestamp ``t``, a dot, then the raw body
bytes exactly as sent; in hex (either case), compared in constant time. The timestamp may
instead travel in its own header ``X-AutoCircle-Timestamp: <unix seconds>`` beside
``X-AutoCircle-Signature: sha256=<hex>`` (same HMAC input). A request signed more than
``security.telematics_max_age_s`` seconds (default 300) before or after the server's clock is
refused as a replay; within that window re-sending the same batch is harmless (``unchanged``).
``bot.telematics.sign(secret, body)`` makes the header value.

Fields: ``vin`` 17 characters; ``odometer_km`` a number, 0 or more; ``at`` ISO 8601 with a
time zone (``Z`` or an offset); ``fault_codes`` optional, an array of codes such as ``P0301``
(at most 50). At most ``service.telematics_max_readings`` readings (default 1000), body at
most ``security.telematics_max_body_bytes`` (default 1,000,000 bytes), JSON nested at most
``security.telematics_max_depth`` levels (default 8; a valid batch needs 4). Other keys are
ignored.

Responses, all JSON:

* ``200`` ``{"received", "applied", "unchanged", "rejected", "unknown_vin", "new_faults",
  "alerts", "items": [{"index", "vin", "status", "reason"?, "new_faults"?}]}`` — per reading:
  ``applied``; ``unchanged`` (sent before: re-sending a batch is harmless); ``rejected`` (below
  the car's last value, an implausible jump, dated in the future — ``reason`` says which);
  ``unknown_vin``.
* ``400`` ``{"error", "problems"?: [{"index", "field", "reason"}]}`` — body too large, not JSON,
  nested too deeply, not the shape above, or any field malformed.
* ``401`` ``{"error"}`` — no signature header, not ``t=<seconds>,sha256=<64 hex>``, no timestamp,
  or a timestamp outside the allowed age (a replay).
* ``403`` ``{"error"}`` — the signature does not match.
* ``413`` — too many readings.

Nothing changes on a 4xx: the signature, its age and every field are checked before anything
is written, and a valid batch is applied in one transaction (all of it, or on a server error
none of it). A refused signature or body is logged and audited (``telematics_refused``, at most
one row per sender and reason a minute, so a flood cannot fill the audit log). New fault codes
tell the owner and the partner through the outbox.

Mounting: ``add_telematics_routes(web_app, app)`` on an existing aiohttp application (the
webhook server), or ``start_telematics_site(app, host, port)`` for its own small server
(polling mode); ``autocircle run`` does one or the other when the secret is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.app import App
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import POLICY_KEY
from flows.service import telematics as signing
from flows.service.telematics import (
    Reading,
    ReadingStatus,
    SignatureProblem,
    TelematicsResult,
    apply_readings,
    check_signature,
    parse_signature,
    record_refusal,
)
from flows.templating import Renderer
from storage.clock import utcnow
from storage.db import session_scope
from storage.importing.fields import MAX_KM, MAX_LIST_ITEMS, FieldError, parse_fault_code, parse_iso_instant, parse_vin

log = logging.getLogger(__name__)

PATH = "/telematics"
SIGNATURE_HEADER = "X-AutoCircle-Signature"
TIMESTAMP_HEADER = "X-AutoCircle-Timestamp"
MAX_BODY_BYTES = 1_000_000  # the default of security.telematics_max_body_bytes
AUDIT_EVERY_S = 60.0  # at most one audit row per sender and reason in this many seconds


class TelematicsNotConfigured(RuntimeError):
    """No shared secret: the endpoint is not served."""


def sign(secret: str, body: bytes, timestamp: float | None = None) -> str:
    """The ``X-AutoCircle-Signature`` value a sender puts on ``body``, signed now (or at
    ``timestamp``, Unix seconds): ``t=<seconds>,sha256=<hex>``."""
    return signing.sign(secret, body, int(time.time() if timestamp is None else timestamp))


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


def parse_batch(body: bytes, max_readings: int, max_depth: int = 8) -> list[Reading]:
    """Every reading of the body, or ``BatchError`` naming every problem found. JSON nested
    deeper than ``max_depth`` arrays/objects is refused (400), however deep it goes."""
    too_deep = BatchError(400, f"body is nested too deeply (at most {max_depth} levels of arrays and objects)")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchError(400, f"body is not valid JSON: {exc}") from None
    if _deeper_than(data, max_depth):
        raise too_deep
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


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return False


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
    return round(value)


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
    max_body_bytes: int = MAX_BODY_BYTES
    max_depth: int = 8
    max_age_s: float = 300.0
    _audited: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)

    async def handle(self, request: web.Request) -> web.Response:
        signed = parse_signature(request.headers.get(SIGNATURE_HEADER, ""), request.headers.get(TIMESTAMP_HEADER))
        if signed is None:  # refused before the body is even read
            return await self._refuse(
                request,
                401,
                "malformed_signature",
                f"missing or malformed {SIGNATURE_HEADER} (t=<unix seconds>,sha256=<hex>)",
            )
        if signed.timestamp is None:
            return await self._refuse(
                request,
                401,
                SignatureProblem.no_timestamp.value,
                f"{SIGNATURE_HEADER} carries no timestamp: send t=<unix seconds>,sha256=<hex> where "
                "hex is HMAC-SHA256(secret, t + '.' + body)",
            )
        try:
            body = await self._read_body(request)
        except BatchError as exc:
            return await self._refuse(request, exc.status, "too_large", exc.error)
        problem = check_signature(self.secret, signed, body, now_s=time.time(), max_age_s=self.max_age_s)
        if problem is SignatureProblem.mismatch:
            return await self._refuse(request, 403, problem.value, "bad signature")
        if problem is SignatureProblem.stale:
            age = int(time.time()) - (signed.timestamp or 0)
            return await self._refuse(
                request,
                401,
                problem.value,
                f"timestamp {signed.timestamp} is {age} s from the server's clock (at most "
                f"{self.max_age_s:g} s): refused as a replay; sign each request when it is sent",
            )
        try:
            readings = parse_batch(body, self.max_readings, self.max_depth)
        except BatchError as exc:
            return exc.response()
        result = await asyncio.to_thread(self._apply, readings)
        log.info(
            "telematics: %d readings, %d applied, %d rejected, %d unknown VINs, %d new faults",
            len(readings),
            result.count(ReadingStatus.applied),
            result.count(ReadingStatus.rejected),
            result.count(ReadingStatus.unknown_vin),
            result.new_faults,
        )
        if result.alerts and self.on_enqueued is not None:
            self.on_enqueued()
        return web.json_response(result.to_dict())

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, at most ``max_body_bytes`` (whatever the server's own upload limit)."""
        limit = self.max_body_bytes
        too_large = f"body too large: more than {limit:,} bytes"
        if request.content_length is not None and request.content_length > limit:
            raise BatchError(400, too_large)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise BatchError(400, too_large)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _refuse(self, request: web.Request, status: int, reason: str, error: str) -> web.Response:
        """Answer ``status``; log and audit (throttled per sender and reason)."""
        remote = request.remote or "?"
        log.warning("telematics request from %s refused (%s): %s", remote, reason, error)
        now = time.monotonic()
        key = (remote, reason)
        if now - self._audited.get(key, -AUDIT_EVERY_S) >= AUDIT_EVERY_S:
            self._audited[key] = now
            if len(self._audited) > 10_000:  # a scan from many addresses: forget the oldest half
                for old in sorted(self._audited, key=self._audited.__getitem__)[:5_000]:
                    del self._audited[old]
            try:
                await asyncio.to_thread(self._audit, remote, reason, status)
            except Exception:
                log.exception("could not audit a refused telematics request")
        return web.json_response({"error": error}, status=status)

    def _audit(self, remote: str, reason: str, status: int) -> None:
        with session_scope(self.app.engine) as session:
            record_refusal(session, reason, remote=remote, status=status)

    def _apply(self, readings: list[Reading]) -> TelematicsResult:
        service = self.app.settings.service
        with session_scope(self.app.engine, info={POLICY_KEY: self.policy}) as session:
            return apply_readings(
                session,
                self.renderer,
                readings,
                utcnow(),
                limits=service.limits(self.app.settings.timezone),
                faults=service.fault_policy(),
            )


def _endpoint(app: App, policy: DeliveryPolicy | None, on_enqueued: Callable[[], None] | None) -> TelematicsEndpoint:
    settings = app.settings
    secret = settings.service.telematics_secret
    if secret is None or not secret.get_secret_value():
        raise TelematicsNotConfigured("AUTOCIRCLE_SERVICE__TELEMATICS_SECRET is not set")
    security = settings.security
    return TelematicsEndpoint(
        app=app,
        secret=secret.get_secret_value().encode(),
        renderer=Renderer(default_locale=settings.locale),
        max_readings=settings.service.telematics_max_readings,
        policy=policy,
        on_enqueued=on_enqueued,
        max_body_bytes=security.telematics_max_body_bytes,
        max_depth=security.telematics_max_depth,
        max_age_s=float(security.telematics_max_age_s),
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
