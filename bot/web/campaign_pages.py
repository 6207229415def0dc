"""Campaigns in the console (issue 15, item 3): create with the cell picker, preview, send now or
schedule, cancel, results. Every step calls the same ``flows.growth.campaigns`` services the
bot's ``/campaign`` conversation calls, scoped the same way: a partner acts on their own owners
and campaigns only; an operator picks the partner a campaign is for. Every form carries the
session's CSRF token.

"Send now" never plans in the request: the campaign is queued (``queue_now``) and either the
bot's scheduler (when the console runs inside the bot) gets the one-off ``SEND_TASK`` job, or
the every-minute ``send_due`` job of the bot sends it (``fallback_due``) when the console runs
on its own (``autocircle web``)."""

from __future__ import annotations

import html
import re
from typing import Any

from aiohttp import web
from sqlmodel import Session, col, select

from bot.web.app import (
    RENDERER,
    SCHEDULER,
    SETTINGS,
    Viewer,
    check_csrf,
    console_viewer,
    db,
    render,
)
from flows.console import figures
from flows.errors import AutoCircleError
from flows.growth import campaigns as service
from storage.campaign_models import PENDING_STATUSES
from storage.clock import utcnow
from storage.models import Partner

OWN = "own"
_TAG = re.compile(r"<[^>]+>")


def plain(telegram_html: str) -> str:
    """The push as plain text (Telegram's HTML tags dropped); the page escapes it again."""
    return html.unescape(_TAG.sub("", telegram_html or ""))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/campaigns/new", new_form)
    r.add_post("/campaigns/new", create)
    r.add_get("/campaigns/{id:\\d+}", detail)
    r.add_post("/campaigns/{id:\\d+}/send", send_now)
    r.add_post("/campaigns/{id:\\d+}/schedule", schedule)
    r.add_post("/campaigns/{id:\\d+}/cancel", cancel)


def _partners(session: Session, viewer: Viewer) -> list[tuple[int, str]]:
    """Whom the viewer may create a campaign for: a partner only themselves."""
    query = select(col(Partner.id), col(Partner.name)).where(col(Partner.active).is_(True))
    if viewer.scope.partner_id is not None:
        query = query.where(col(Partner.id) == viewer.scope.partner_id)
    rows = session.exec(query.order_by(col(Partner.name), col(Partner.id))).all()
    return [(i, n or "") for i, n in rows if i is not None]  # a stored row always has its id


def _partner_of(viewer: Viewer, value: Any, allowed: list[tuple[int, str]]) -> int:
    """The partner a campaign is for: the partner themselves, or the operator's pick (checked)."""
    if viewer.scope.partner_id is not None:
        return viewer.scope.partner_id
    try:
        wanted = int(str(value or "0"))
    except ValueError:
        raise web.HTTPBadRequest() from None
    if wanted not in {p for p, _ in allowed}:
        raise web.HTTPBadRequest()
    return wanted


def _picker(session: Session, viewer: Viewer, partner: str | None, line: str | None) -> dict[str, Any]:
    partners = _partners(session, viewer)
    if not partners:
        return {"partners": [], "partner_id": None, "lines": [], "line": None, "counts": {}}
    partner_id = _partner_of(viewer, partner or partners[0][0], partners)
    lines = service.product_lines(session, partner_id)
    if line not in lines:
        line = None
    return {
        "partners": partners,
        "partner_id": partner_id,
        "lines": lines,
        "line": line,
        "counts": service.cell_counts(session, partner_id, line),
    }


def _form_view(
    request: web.Request,
    viewer: Viewer,
    view: dict[str, Any],
    *,
    error: str | None = None,
    status: int = 200,
    picked: list[str] | None = None,
    text: str = "",
    window_value: str = "",
) -> web.Response:
    settings = request.app[SETTINGS]
    return render(
        request,
        "campaign_new.html",
        status=status,
        viewer=viewer,
        error=error,
        picked=picked or [],
        text=text,
        templates=service.READY_TEMPLATES,
        maturities=figures.MATURITIES,
        activities=figures.ACTIVITIES,
        window=settings.campaigns.conversion_window_days,
        max_window=service.MAX_WINDOW_DAYS,
        window_value=window_value,
        **view,
    )


async def new_form(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    partner, line = request.query.get("partner"), request.query.get("line") or None
    view = await db(request, lambda s: _picker(s, viewer, partner, line))
    return _form_view(request, viewer, view)


async def create(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    form = await request.post()
    check_csrf(viewer, form)
    settings = request.app[SETTINGS]
    cells = [str(c) for c in form.getall("cell", [])]
    choice = str(form.get("template", ""))
    text = str(form.get("text", ""))[: service.MAX_TEXT]
    raw_window = str(form.get("window_days", "")).strip()[:4]
    now = utcnow()

    def work(session: Session) -> int | tuple[dict[str, Any], str]:
        view = _picker(session, viewer, str(form.get("partner", "")) or None, str(form.get("line", "")) or None)
        if view["partner_id"] is None:
            raise web.HTTPBadRequest()
        try:
            window = int(raw_window) if raw_window else settings.campaigns.conversion_window_days
        except ValueError:
            return view, f"the conversion window must be 1 to {service.MAX_WINDOW_DAYS} days"
        try:
            draft = service.create(
                session,
                view["partner_id"],
                cells,
                now,
                product_line=view["line"],
                holdout_percent=settings.campaigns.holdout_percent,
                window_days=window,
                template=None if choice == OWN else choice,
                text=text if choice == OWN else None,
            )
        except AutoCircleError as error:
            return view, str(error)
        return int(draft.id or 0)

    outcome = await db(request, work)
    if isinstance(outcome, tuple):
        view, error = outcome
        return _form_view(
            request, viewer, view, error=error, status=400, picked=cells, text=text, window_value=raw_window
        )
    raise web.HTTPSeeOther(f"/campaigns/{outcome}")


def _detail_view(session: Session, request: web.Request, viewer: Viewer, campaign_id: int) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    try:
        campaign = service.get(session, viewer.scope.partner_id, campaign_id)
    except AutoCircleError:
        raise web.HTTPNotFound() from None
    preview = service.preview(session, request.app[RENDERER], campaign.partner_id, campaign_id, viewer.locale)
    stats = service.stats(session, campaign, settings.campaigns.conversion_window_days, settings.console.min_group)
    partner = session.get(Partner, campaign.partner_id)
    return {
        "campaign": campaign,
        "preview": preview,
        "c": stats,
        "partner_name": partner.name if partner else "",
        "sample": plain(preview.sample),
        "send_at_local": service.local_time(campaign.send_at, settings.timezone),
        "pending": campaign.status in PENDING_STATUSES,
    }


async def detail(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    campaign_id = int(request.match_info["id"])
    view = await db(request, lambda s: _detail_view(s, request, viewer, campaign_id))
    return render(request, "campaign.html", viewer=viewer, error=request.query.get("error"), **view)


async def send_now(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    check_csrf(viewer, await request.post())
    campaign_id = int(request.match_info["id"])
    scheduler = request.app.get(SCHEDULER)
    now = utcnow()

    def work(session: Session) -> str | None:
        try:
            service.queue_now(session, viewer.scope.partner_id, campaign_id, now, fallback_due=scheduler is None)
        except service.CampaignNotFoundError:
            raise web.HTTPNotFound() from None
        except AutoCircleError as error:
            return str(error)
        return None

    error = await db(request, work)  # committed before the job can look for it
    if error is None and scheduler is not None:
        scheduler.schedule_once(
            service.job_id(campaign_id), service.SEND_TASK, now, campaign_id=campaign_id, locale=viewer.locale
        )
    return _back(campaign_id, error)


async def schedule(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    form = await request.post()
    check_csrf(viewer, form)
    campaign_id = int(request.match_info["id"])
    settings = request.app[SETTINGS]
    scheduler = request.app.get(SCHEDULER)
    now = utcnow()

    def work(session: Session) -> Any:
        try:
            at = service.parse_send_time(str(form.get("at", ""))[:32], now, settings.timezone)
            return service.schedule(session, viewer.scope.partner_id, campaign_id, at, now).send_at
        except service.CampaignNotFoundError:
            raise web.HTTPNotFound() from None
        except AutoCircleError as error:
            return str(error)

    outcome = await db(request, work)
    if isinstance(outcome, str):
        return _back(campaign_id, outcome)
    if scheduler is not None and outcome is not None:
        scheduler.schedule_once(
            service.job_id(campaign_id), service.SEND_TASK, outcome, campaign_id=campaign_id, locale=viewer.locale
        )
    return _back(campaign_id, None)


async def cancel(request: web.Request) -> web.Response:
    viewer = await console_viewer(request)
    check_csrf(viewer, await request.post())
    campaign_id = int(request.match_info["id"])
    scheduler = request.app.get(SCHEDULER)

    def work(session: Session) -> str | None:
        try:
            service.cancel(session, viewer.scope.partner_id, campaign_id, utcnow())
        except service.CampaignNotFoundError:
            raise web.HTTPNotFound() from None
        except AutoCircleError as error:
            return str(error)
        return None

    error = await db(request, work)
    if error is None and scheduler is not None:
        scheduler.cancel(service.job_id(campaign_id))
    return _back(campaign_id, error)


def _back(campaign_id: int, error: str | None) -> web.Response:
    from urllib.parse import quote

    raise web.HTTPSeeOther(f"/campaigns/{campaign_id}" + (f"?error={quote(error[:200])}" if error else ""))
