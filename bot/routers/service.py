"""Service moments in private chat: the owner's ``/mileage`` and the partner's ``/serviced``.

Register with ``build_router()`` after the owner router and before group and fallback
(commands the other routers do not take fall through to here). Role filters are per
sub-router: ``/mileage`` for verified owners, ``/serviced`` for registered partners.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlmodel import Session

from bot.config import Settings
from bot.filters import HasRole, IsPartner
from flows.community.roles import Identity, Role
from flows.errors import InvalidInputError
from flows.service import bookings
from flows.service import due as service
from flows.templating import Renderer
from storage.clock import utcnow


def build_router() -> Router:
    router = Router(name="service")
    owners = Router(name="service-owner")
    owners.message.filter(HasRole(Role.owner))
    owners.message.register(on_mileage, Command("mileage"))
    partners = Router(name="service-partner")
    partners.message.filter(IsPartner())
    partners.message.register(on_serviced, Command("serviced"))
    router.include_routers(partners, owners)
    return router


async def on_mileage(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    loc, args = identity.locale, (command.args or "").split()
    km = _km(args[0]) if 1 <= len(args) <= 2 else None
    if km is None:
        bad = args[0][:20] if args and _km(args[0]) is None else ""
        await message.answer(renderer.render("service/usage_mileage", loc, bad=bad, no_signature=True))
        return
    car = args[1][:20] if len(args) > 1 else None
    try:
        report = service.owner_mileage(
            session,
            identity.require_owner_id(),
            km,
            utcnow(),
            rules=settings.service.rules(),
            limits=settings.service.limits(settings.timezone),
            vehicle_ref=car,
        )
    except (service.AmbiguousVehicleError, service.VehicleNotFoundError, service.OdometerRejectedError) as exc:
        await message.answer(_refusal(renderer, loc, exc, settings, "mileage", f"{km} ", car, partner=False))
        return
    await message.answer(
        renderer.render(
            "service/mileage_saved", loc, km=report.km, car=report.vehicle, due=report.due, unchanged=report.unchanged
        )
    )


async def on_serviced(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    loc, parsed = identity.locale, _serviced_args(command.args)
    if parsed is None:
        await message.answer(renderer.render("service/usage_serviced", loc, no_signature=True))
        return
    owner_ref, km, car = parsed
    try:
        booking = BOOKING_REF.match(owner_ref)
        if booking is not None:  # /serviced B12: finish that booking
            visit = bookings.finish_booking(
                session,
                identity.require_partner_id(),
                int(booking.group(1)),
                utcnow(),
                rules=settings.service.rules(),
                limits=settings.service.limits(settings.timezone),
                km=km,
            )
        else:
            visit = service.partner_serviced(
                session,
                identity.require_partner_id(),
                owner_ref,
                utcnow(),
                rules=settings.service.rules(),
                limits=settings.service.limits(settings.timezone),
                km=km,
                vehicle_ref=car,
            )
    except (service.OwnerNotFoundError, bookings.BookingError, bookings.BookingNotFoundError):
        await message.answer(renderer.render("partner/owner_not_found", loc, ref=owner_ref))
        return
    except service.KmRequiredError:
        await message.answer(renderer.render("service/km_required", loc, owner_ref=owner_ref))
        return
    except (service.AmbiguousVehicleError, service.VehicleNotFoundError, service.OdometerRejectedError) as exc:
        example = f"{owner_ref} {km} " if km is not None else f"{owner_ref} "
        await message.answer(_refusal(renderer, loc, exc, settings, "serviced", example, car, partner=True))
        return
    await message.answer(renderer.render("service/serviced_saved", loc, visit=visit))


BOOKING_REF = re.compile(r"^[Bb]#?(\d+)$")


def _serviced_args(args: str | None) -> tuple[str, int | None, str | None] | None:
    """``OWNER [KM] [CAR]`` in any order after the owner; ``None`` when unusable."""
    tokens = (args or "").split()
    if not 1 <= len(tokens) <= 3:
        return None
    km: int | None = None
    car: str | None = None
    for token in tokens[1:]:
        value = _km(token) if km is None else None
        if value is not None:
            km = value
        elif car is None:
            car = token[:20]
        else:
            return None
    return tokens[0][:64], km, car


def _km(text: str) -> int | None:
    try:
        return service.parse_km(text)
    except InvalidInputError:
        return None


def _refusal(
    renderer: Renderer,
    loc: str | None,
    exc: Exception,
    settings: Settings,
    command: str,
    example: str,
    car: str | None,
    *,
    partner: bool,
) -> str:
    """The reply for a value or a car the flow refused (the same three cases for both commands)."""
    if isinstance(exc, service.AmbiguousVehicleError):
        return renderer.render(
            "service/which_vehicle",
            loc,
            vehicles=exc.vehicles,
            command=command,
            example=example + exc.vehicles[0].ref,
            partner=partner,
        )
    if isinstance(exc, service.VehicleNotFoundError):
        return renderer.render("service/no_vehicle", loc, ref=car or "", partner=partner)
    assert isinstance(exc, service.OdometerRejectedError)
    problem, other = exc.problem, exc.problem.other
    return renderer.render(
        "service/serviced_rejected" if partner else "service/mileage_rejected",
        loc,
        kind=problem.kind.value,
        km=problem.km,
        other_km=other.km if other else 0,
        when=_local_day(other.at if other else None, settings.timezone),
        car=exc.vehicle,
        max_per_day=settings.service.max_km_per_day,
    )


def _local_day(at: datetime | None, timezone: str) -> str:
    return at.astimezone(ZoneInfo(timezone)).date().isoformat() if at is not None else ""
