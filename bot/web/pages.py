"""The console's pages and the Mini App's fragments. Handlers are thin: who is asking
(``app.console_viewer`` / ``app.mini_app_viewer``), one ``flows.console.figures`` call in a
worker thread, one template."""

from __future__ import annotations

import hmac
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlmodel import Session

from bot.web import campaign_pages, supply_pages
from bot.web.app import (
    COOKIE,
    PRE_COOKIE,
    SETTINGS,
    Viewer,
    check_csrf,
    client_of,
    console_viewer,
    db,
    is_https,
    mini_app_viewer,
    new_pre_token,
    render,
)
from bot.web.i18n import translator
from flows.console import access, figures
from storage.clock import utcnow
from storage.models import FunnelStage, ProductLine

LINES = tuple(line.value for line in ProductLine)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/sessions", sessions)
    r.add_post("/sessions/revoke", revoke)
    r.add_get("/", overview)
    r.add_get("/matrix", matrix)
    r.add_get("/matrix/cell", cell)
    r.add_get("/movement", movement)
    r.add_get("/flows", flows_page)
    r.add_get("/campaigns", campaigns_page)
    r.add_get("/delivery", delivery)
    r.add_get("/churn", churn)
    r.add_get("/gifts", gifts)
    r.add_get("/owners", owners)
    r.add_get("/owners/{id:\\d+}", owner)
    r.add_get("/app", mini_shell)
    r.add_get("/app/home", mini_home)
    r.add_get("/app/cell", mini_cell)
    r.add_get("/healthz", healthz)
    campaign_pages.add_routes(app)
    supply_pages.add_routes(app)


def _int(value: str | None, default: int = 1) -> int:
    try:
        return max(1, int(value or default))
    except ValueError:
        raise web.HTTPBadRequest() from None


def _line(request: web.Request) -> str | None:
    line = request.query.get("line") or None
    if line is not None and line not in LINES:
        raise web.HTTPBadRequest()
    return line


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


# --- sign-in --------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    """The link from /console lands here; signing in takes a press (a POST), so a link preview
    or a mail scanner fetching the URL does not spend the one-time token."""
    pre = new_pre_token()
    response = render(request, "login.html", token=request.query.get("t", ""), pre=pre)
    response.set_cookie(
        PRE_COOKIE, pre, httponly=True, samesite="Strict", secure=is_https(request), max_age=900, path="/login"
    )
    return response


async def login(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].console
    form = await request.post()
    client = client_of(request)
    pre_cookie = request.cookies.get(PRE_COOKIE, "")
    if not pre_cookie or not hmac.compare_digest(str(form.get("pre", "")).encode(), pre_cookie.encode()):
        raise web.HTTPForbidden()
    now = utcnow()

    def work(session: Session) -> access.NewSession | str:
        if access.locked_out(session, client, now, settings.max_failures, settings.failure_window_minutes):
            return "locked"
        try:
            return access.redeem_link(
                session, str(form.get("t", "")), now, client=client, session_hours=settings.session_hours
            )
        except access.SignInError:
            return "invalid"

    result = await db(request, work)
    if result == "locked":
        return render(request, "error.html", status=429, message_key="too_many")
    if result == "invalid":
        return render(request, "error.html", status=403, message_key="link_invalid")
    assert isinstance(result, access.NewSession)
    response = web.HTTPSeeOther("/")
    response.set_cookie(
        COOKIE,
        result.cookie,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
        max_age=int(settings.session_hours * 3600),
        path="/",
    )
    response.del_cookie(PRE_COOKIE, path="/login")
    raise response


async def logout(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    check_csrf(viewer, await request.post())
    await db(request, lambda s: access.revoke(s, viewer.identity.user_id or 0, utcnow(), viewer.session_id))
    response = render(request, "error.html", status=200, message_key="signed_out")
    response.del_cookie(COOKIE, path="/")
    return response


async def sessions(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    rows = await db(request, lambda s: access.sessions_of(s, viewer.identity.user_id or 0, utcnow()))
    return render(request, "sessions.html", viewer=viewer, rows=rows)


async def revoke(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    form = await request.post()
    check_csrf(viewer, form)
    which = str(form.get("id", "all"))
    session_id = None if which == "all" else _int(which)
    await db(request, lambda s: access.revoke(s, viewer.identity.user_id or 0, utcnow(), session_id))
    raise web.HTTPSeeOther("/sessions")


# --- console pages --------------------------------------------------------------------------


def _chart(kind: str, labels: list[str], series: dict[str, list[Any]]) -> str:
    """Chart data for ``static/console.js`` (an attribute, autoescaped; no inline script)."""
    return json.dumps({"kind": kind, "labels": labels, "series": series}, ensure_ascii=False)


def _as_of(at: datetime | None, timezone: str) -> str | None:
    """When counts were taken, for "as of HH:MM" (local time; the date too when not today)."""
    if at is None:
        return None
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    return (
        local.strftime("%H:%M")
        if local.date() == utcnow().astimezone(zone).date()
        else local.strftime("%Y-%m-%d %H:%M")
    )


async def overview(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    data = await db(request, lambda s: figures.overview(s, viewer.scope))
    total, t = data.funnel.total, translator(viewer.locale)
    stages = ["imported", "invited", "online", "verified"]
    chart = _chart("bar", [t(s) for s in stages], {t("count"): [total.count(FunnelStage(s)) for s in stages]})
    as_of = _as_of(data.as_of, request.app[SETTINGS].timezone)
    return render(request, "overview.html", viewer=viewer, data=data, chart=chart, counts_as_of=as_of)


def _matrix_view(session: Session, viewer: Viewer, line: str | None, timezone: str) -> dict[str, Any]:
    report = figures.matrix(session, viewer.scope, line)
    return {
        "report": report,
        "line": line,
        "maturities": figures.MATURITIES,
        "activities": figures.ACTIVITIES,
        "peak": max([*list(report.counts.values()), 1]),
        "counts_as_of": _as_of(figures.counts_as_of(session, viewer.scope), timezone),
    }


async def matrix(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    line = _line(request)
    timezone = request.app[SETTINGS].timezone
    view = await db(request, lambda s: _matrix_view(s, viewer, line, timezone))
    return render(request, "matrix.html", viewer=viewer, lines=LINES, **view)


def _cell_page(request: web.Request, viewer: Viewer) -> Any:
    line = _line(request)
    cell_name = request.query.get("cell", "")
    page = _int(request.query.get("page"))
    size = request.app[SETTINGS].console.page_size

    def work(session: Session) -> figures.Page:
        try:
            return figures.cell_owners(session, viewer.scope, line, cell_name, page, size)
        except ValueError:
            raise web.HTTPBadRequest() from None

    return line, cell_name, work


async def cell(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    line, cell_name, work = _cell_page(request, viewer)
    result = await db(request, work)
    template = "fragment_cell.html" if request.headers.get("HX-Request") == "true" else "cell.html"
    return render(request, template, viewer=viewer, page=result, cell=cell_name, line=line, base="/matrix/cell")


async def movement(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    line = _line(request)
    now = utcnow()

    def work(session: Session) -> tuple[Any, Any]:
        return figures.movement(session, viewer.scope, line, now), figures.movement_by_week(session, viewer.scope, now)

    report, weekly = await db(request, work)
    t = translator(viewer.locale)
    chart = _chart("line", [w[0] for w in weekly], {t("up"): [w[1] for w in weekly], t("down"): [w[2] for w in weekly]})
    return render(request, "movement.html", viewer=viewer, report=report, chart=chart, line=line, lines=LINES)


async def flows_page(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    from flows.engine.playbook import PLAYBOOK_NAME, load_playbook

    folder = request.app[SETTINGS].flow_library_dir()  # the library in use (FLOWS_DIR), as the runtime

    def work(session: Session) -> tuple[Any, dict[str, list[list[str]]]]:
        """The funnels and the playbook table, both in the worker thread: reading and parsing
        the playbook's YAML is file work that must not run on the event loop."""
        playbook = load_playbook(folder / PLAYBOOK_NAME)
        table = {
            line: [
                [", ".join(playbook.flows_for(line, f"{m}/{a}")) or "—" for a in figures.ACTIVITIES]
                for m in figures.MATURITIES
            ]
            for line in LINES
        }
        return figures.flow_funnels(session, viewer.scope), table

    funnels, table = await db(request, work)
    return render(
        request,
        "flows.html",
        viewer=viewer,
        funnels=funnels,
        playbook=table,
        maturities=figures.MATURITIES,
        activities=figures.ACTIVITIES,
        lines=LINES,
    )


async def campaigns_page(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    settings = request.app[SETTINGS]
    page = _int(request.query.get("page"))
    result = await db(
        request,
        lambda s: figures.campaign_page(
            s,
            viewer.scope,
            page,
            20,
            window_days=settings.campaigns.conversion_window_days,
            min_group=settings.console.min_group,
        ),
    )
    return render(
        request,
        "campaigns.html",
        viewer=viewer,
        page=result,
        base="/campaigns",
        window=settings.campaigns.conversion_window_days,
    )


async def delivery(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    settings = request.app[SETTINGS]
    best = settings.delivery.policy(settings.timezone).best_hour
    now = utcnow()

    def work(session: Session) -> tuple[Any, Any]:
        return (
            figures.delivery_health(session, viewer.scope, now, settings.timezone),
            figures.best_hour_engagement(session, viewer.scope, now, best, settings.console.min_group),
        )

    health, lift = await db(request, work)  # one worker thread and one session, not two
    return render(request, "delivery.html", viewer=viewer, health=health, best=best, lift=lift)


async def churn(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    report = await db(request, lambda s: figures.churn(s, viewer.scope, utcnow()))
    return render(request, "churn.html", viewer=viewer, report=report)


async def gifts(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    now = utcnow()

    def work(session: Session) -> tuple[Any, Any]:
        return figures.gifts(session, viewer.scope, now), figures.referrals(session, viewer.scope)

    lines, (by_status, leaders) = await db(request, work)
    return render(request, "gifts.html", viewer=viewer, lines=lines, by_status=by_status, leaders=leaders)


async def owners(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    q = request.query.get("q", "")[:64]
    page = _int(request.query.get("page"))
    size = request.app[SETTINGS].console.page_size
    result = await db(request, lambda s: figures.search_owners(s, viewer.scope, q, page, size))
    return render(request, "owners.html", viewer=viewer, page=result, q=q, base="/owners")


async def owner(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    owner_id = int(request.match_info["id"])

    def work(session: Session) -> tuple[Any, Any]:
        found = figures.owner_in_scope(session, viewer.scope, owner_id)
        if found is None:
            raise web.HTTPNotFound()
        return found, figures.timeline(session, owner_id)

    found, items = await db(request, work)
    return render(request, "owner.html", viewer=viewer, owner=found, items=items)


# --- the Mini App ---------------------------------------------------------------------------


async def mini_shell(request: web.Request) -> web.Response:
    """The page Telegram opens: no data, only the script that sends initData with each fragment request."""
    return render(request, "mini_shell.html")


async def mini_home(request: web.Request) -> web.Response:
    viewer = await mini_app_viewer(request)
    if not viewer.sees_owners:  # merchant and demand-side staff: their own supply-side home
        return await supply_pages.mini_supply_home(request, viewer)
    line = _line(request)
    timezone = request.app[SETTINGS].timezone

    def work(session: Session) -> dict[str, Any]:
        view = _matrix_view(session, viewer, line, timezone)
        view["funnel"] = figures.funnel(session, viewer.scope).total  # not the whole overview
        return view

    view = await db(request, work)
    return render(request, "mini_home.html", viewer=viewer, lines=LINES, **view)


async def mini_cell(request: web.Request) -> web.Response:
    viewer = await mini_app_viewer(request, owners=True)
    line, cell_name, work = _cell_page(request, viewer)
    result = await db(request, work)
    return render(
        request, "fragment_cell.html", viewer=viewer, page=result, cell=cell_name, line=line, base="/app/cell"
    )
