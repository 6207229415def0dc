"""The supply side in the console and the Mini App (issue 15, item 3, for issues 13 and 14):
offers, merchants, settlement and commercial tasks; the Mini App's homes for merchant staff and
demand-side staff. Handlers are thin: who is asking, one ``flows.console.supply_figures`` call
in a worker thread, one template. The scope comes from the viewer only; an id in the URL that is
not the viewer's is "not found" (404), a page the viewer may not open at all is 403.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlmodel import Session

from bot.web.app import SETTINGS, Viewer, console_viewer, db, mini_app_viewer, render
from flows.console import supply_figures as supply
from flows.console.figures import Page
from flows.errors import InvalidInputError
from flows.merchants.money import yuan
from storage.clock import utcnow

T = TypeVar("T")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/offers", offers)
    r.add_get("/merchants", merchants)
    r.add_get("/settlement", settlement)
    r.add_get("/tasks", tasks)
    r.add_get("/tasks/{id:\\d+}", task)
    r.add_get("/app/offer/{id:\\d+}", mini_offer)
    r.add_get("/app/tasks", mini_tasks)
    r.add_get("/app/task/{id:\\d+}", mini_task)


# --- parsing and scoping --------------------------------------------------------------------


def _page(request: web.Request) -> int:
    try:
        return max(1, int(request.query.get("page") or 1))
    except ValueError:
        raise web.HTTPBadRequest() from None


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name) or None
    if value is not None and value not in allowed:
        raise web.HTTPBadRequest()
    return value


def _scoped(work: Callable[[Session], T]) -> Callable[[Session], T]:
    """Run ``work`` turning the figures' refusals into answers: out of scope 403, bad input 400."""

    def run(session: Session) -> T:
        try:
            return work(session)
        except supply.OutOfScope:
            raise web.HTTPForbidden() from None
        except (ValueError, InvalidInputError):
            raise web.HTTPBadRequest() from None

    return run


async def _console(request: web.Request, page: str) -> Viewer:
    viewer = await console_viewer(request)
    if not viewer.may(page):
        raise web.HTTPForbidden()
    return viewer


def _tz(request: web.Request) -> str:
    return request.app[SETTINGS].timezone


def _local(request: web.Request) -> Callable[[datetime | None], str]:
    """Times as the app's zone shows them (the bot's task messages use the same zone)."""
    zone = ZoneInfo(_tz(request))

    def show(at: datetime | None) -> str:
        if at is None:
            return "–"
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return show


def _size(request: web.Request) -> int:
    return request.app[SETTINGS].console.page_size


# --- console pages --------------------------------------------------------------------------


async def offers(request: web.Request) -> web.Response:
    viewer = await _console(request, "offers")
    status = _choice(request, "status", supply.OFFER_STATUSES)
    merchant = (request.query.get("merchant") or "")[:32]
    page, size = _page(request), _size(request)

    def work(session: Session) -> Page:
        merchant_id = None
        if merchant:
            merchant_id = supply.merchant_id_of(session, merchant)
            if merchant_id is None:
                raise web.HTTPNotFound()
        return supply.offer_page(session, viewer.scope, page, size, status=status, merchant_id=merchant_id)

    result = await db(request, _scoped(work))
    extra = (f"&status={status}" if status else "") + (f"&merchant={quote(merchant)}" if merchant else "")
    return render(
        request,
        "offers.html",
        viewer=viewer,
        page=result,
        base="/offers",
        offer_status=status,
        merchant=merchant,
        statuses=supply.OFFER_STATUSES,
        extra=extra,
    )


async def merchants(request: web.Request) -> web.Response:
    viewer = await _console(request, "merchants")
    page, size = _page(request), _size(request)
    result = await db(request, _scoped(lambda s: supply.merchant_page(s, viewer.scope, page, size)))
    return render(request, "merchants.html", viewer=viewer, page=result, base="/merchants")


async def settlement(request: web.Request) -> web.Response:
    viewer = await _console(request, "settlement")
    now, tz = utcnow(), _tz(request)
    month = (request.query.get("month") or supply.current_month(now, tz))[:7]
    report = await db(request, _scoped(lambda s: supply.settlement(s, viewer.scope, month, tz, now)))
    return render(request, "settlement.html", viewer=viewer, report=report, month=month, yuan=yuan)


async def tasks(request: web.Request) -> web.Response:
    viewer = await _console(request, "tasks")
    state = _choice(request, "state", supply.TASK_STATES)
    page, size = _page(request), _size(request)

    def work(session: Session) -> tuple[Any, dict[str, int]]:
        return (
            supply.task_page(session, viewer.scope, page, size, state=state),
            supply.task_states(session, viewer.scope),
        )

    result, states = await db(request, _scoped(work))
    return render(
        request,
        "tasks.html",
        viewer=viewer,
        page=result,
        states=states,
        state=state,
        base="/tasks",
        extra=f"&state={state}" if state else "",
        yuan=yuan,
        local=_local(request),
    )


def _task_detail(viewer: Viewer, task_id: int) -> Callable[[Session], supply.TaskDetail]:
    def work(session: Session) -> supply.TaskDetail:
        found = supply.task_in_scope(session, viewer.scope, task_id)
        if found is None:
            raise web.HTTPNotFound()
        return found

    return _scoped(work)


async def task(request: web.Request) -> web.Response:
    viewer = await _console(request, "tasks")
    detail = await db(request, _task_detail(viewer, int(request.match_info["id"])))
    return render(request, "task.html", viewer=viewer, detail=detail, yuan=yuan, local=_local(request))


# --- the Mini App ---------------------------------------------------------------------------


async def mini_supply_home(request: web.Request, viewer: Viewer) -> web.Response:
    """``/app/home`` for merchant staff (their merchant) and demand-side staff (their tasks)."""
    now, tz = utcnow(), _tz(request)
    if viewer.scope.merchant_id is not None:
        home = await db(request, _scoped(lambda s: supply.merchant_home(s, viewer.scope, now, tz)))
        return render(request, "mini_merchant.html", viewer=viewer, home=home, yuan=yuan)
    state = _choice(request, "state", supply.TASK_STATES)
    page = _page(request)
    result = await db(request, _scoped(lambda s: supply.demand_home(s, viewer.scope, page, state=state)))
    return render(
        request, "mini_demand.html", viewer=viewer, home=result, state=state, yuan=yuan, local=_local(request)
    )


async def mini_offer(request: web.Request) -> web.Response:
    viewer = await mini_app_viewer(request)
    offer_id = int(request.match_info["id"])

    def work(session: Session) -> supply.OfferLine:
        found = supply.offer_in_scope(session, viewer.scope, offer_id)
        if found is None:
            raise web.HTTPNotFound()
        return found

    line = await db(request, _scoped(work))
    return render(request, "fragment_offer.html", viewer=viewer, o=line)


async def mini_tasks(request: web.Request) -> web.Response:
    """The demand side's task list, a page or a state at a time (htmx swaps it in)."""
    viewer = await mini_app_viewer(request)
    state = _choice(request, "state", supply.TASK_STATES)
    page = _page(request)
    result = await db(request, _scoped(lambda s: supply.demand_home(s, viewer.scope, page, state=state)))
    return render(
        request, "fragment_tasks.html", viewer=viewer, home=result, state=state, yuan=yuan, local=_local(request)
    )


async def mini_task(request: web.Request) -> web.Response:
    viewer = await mini_app_viewer(request)
    if viewer.scope.demand_id is None:  # the Mini App's task detail is the demand side's
        raise web.HTTPForbidden()
    detail = await db(request, _task_detail(viewer, int(request.match_info["id"])))
    return render(request, "fragment_task.html", viewer=viewer, detail=detail, yuan=yuan, local=_local(request))
