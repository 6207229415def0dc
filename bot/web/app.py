"""The console's aiohttp application: rendering, who is asking, and the routes.

Who is asking, decided per request and never cached:

* a **console session** (cookie ``ac_session``, HttpOnly, SameSite=Strict, Secure under https)
  opened by a one-time link from ``/console``; the user behind it is resolved again on every
  request exactly as the bot resolves an update (``resolve_identity``), so an operator removed
  from ``OPERATOR_IDS`` or a deactivated partner loses the console at once;
* the **Mini App**: every request carries Telegram's signed ``initData`` in the header
  ``X-Telegram-Init-Data`` (the page's script reads it from Telegram and htmx sends it), checked
  by ``flows.console.init_data.validate``; forged or stale initData gets 401 and nothing else
  happens. No cookie is involved, so a Mini App shown in Telegram Web's frame works and cannot
  be driven cross-site.

Database work runs in a worker thread (``db``), never on the event loop the bot shares.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Settings
from bot.web.i18n import translator
from bot.web.security import error_middleware
from flows.community.roles import Identity, Role, resolve_identity
from flows.console import access, init_data
from flows.console.figures import Scope
from flows.templating import DEFAULT_LOCALE, LOCALES, Renderer, locale_from_telegram
from storage.clock import utcnow
from storage.console_models import ConsoleSession
from storage.models import Partner

if TYPE_CHECKING:  # bot.scheduler pulls in APScheduler; the console alone does not need it
    from bot.scheduler import Scheduler

HERE = Path(__file__).resolve().parent
COOKIE = "ac_session"
PRE_COOKIE = "ac_pre"  # the sign-in form's CSRF pair, before there is a session
LANG_COOKIE = "ac_lang"
INIT_HEADER = "X-Telegram-Init-Data"
T = TypeVar("T")

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", Engine)
JINJA = web.AppKey("jinja", Environment)
RENDERER = web.AppKey("renderer", Renderer)
BOT_TOKEN = web.AppKey("bot_token", str)
SCHEDULER: web.AppKey[Scheduler] = web.AppKey("scheduler")  # the bot's Scheduler when the console runs inside the bot


@dataclass(frozen=True)
class Viewer:
    """The person behind a request and what they may see."""

    identity: Identity
    scope: Scope
    locale: str
    session_id: int | None = None  # console sessions only
    csrf: str = ""
    mini_app: bool = False

    @property
    def operator(self) -> bool:
        return self.identity.role == Role.operator

    @property
    def sees_owners(self) -> bool:
        """Operators and partners; merchant and demand-side staff never see an owner page."""
        return not self.scope.supply

    def may(self, page: str) -> bool:
        """Whether this viewer may open a console page (the nav shows only these links)."""
        if self.operator:
            return True
        return page in PAGES_BY_ROLE.get(self.identity.role, frozenset())


#: The supply-side pages a non-operator may open, per role: a partner sees their own
#: commission and their owners' tasks (what the bot's /earnings, /deals and /tasks show),
#: not the merchants' or offers' lists.
PAGES_BY_ROLE: dict[Role, frozenset[str]] = {Role.partner: frozenset({"settlement", "tasks"})}


def build_web_app(
    settings: Settings,
    engine: Engine,
    renderer: Renderer | None = None,
    *,
    bot_token: str | None = None,
    scheduler: Any = None,
) -> web.Application:
    """The console and Mini App as one aiohttp application (mount it or serve it alone)."""
    from bot.web import pages

    jinja = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app = web.Application(middlewares=[error_middleware(render_error)], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[ENGINE] = engine
    app[JINJA] = jinja
    app[RENDERER] = renderer or Renderer(default_locale=settings.locale)
    token = (
        bot_token if bot_token is not None else (settings.bot_token.get_secret_value() if settings.bot_token else "")
    )
    app[BOT_TOKEN] = token
    if scheduler is not None:  # "send now" books the one-off job; else the bot's send_due sends it
        app[SCHEDULER] = scheduler
    pages.add_routes(app)
    app.router.add_static("/static/", HERE / "static", append_version=False)
    return app


# --- rendering ------------------------------------------------------------------------------


def locale_of(request: web.Request, fallback: str | None = None) -> str:
    wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE) or fallback
    settings = request.app[SETTINGS]
    return wanted if wanted in LOCALES else (settings.locale if settings.locale in LOCALES else DEFAULT_LOCALE)


def render(
    request: web.Request, template: str, status: int = 200, viewer: Viewer | None = None, **context: Any
) -> web.Response:
    locale = viewer.locale if viewer else locale_of(request)
    html = (
        request.app[JINJA]
        .get_template(template)
        .render(
            t=translator(locale), locale=locale, viewer=viewer, path=request.path, query=dict(request.query), **context
        )
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    if request.query.get("lang") in LOCALES and not (viewer and viewer.mini_app):
        response.set_cookie(
            LANG_COOKIE,
            request.query["lang"],
            httponly=True,
            samesite="Strict",
            secure=is_https(request),
            max_age=365 * 86400,
        )
    return response


def render_error(request: web.Request, status: int, key: str) -> web.Response:
    fragment = request.headers.get("HX-Request") == "true"
    return render(request, "fragment_error.html" if fragment else "error.html", status=status, message_key=key)


def is_https(request: web.Request) -> bool:
    url = request.app[SETTINGS].console.public_url or ""
    return request.secure or url.startswith("https://")


# --- database -------------------------------------------------------------------------------


async def db(request: web.Request, work: Callable[[Session], T]) -> T:
    """Run ``work`` with a Session in a worker thread; commit if it returns, roll back if not."""
    engine = request.app[ENGINE]

    def run() -> T:
        with Session(engine, expire_on_commit=False) as session:
            result = work(session)
            session.commit()
            return result

    return await asyncio.to_thread(run)


def client_of(request: web.Request) -> str:
    return (request.remote or "unknown")[:64]


# --- who is asking --------------------------------------------------------------------------


def _viewer_for(session: Session, settings: Settings, user_id: int, locale: str | None, **extra: Any) -> Viewer | None:
    identity = resolve_identity(session, user_id, settings.operator_ids)
    if identity.role == Role.operator:
        scope = Scope()
    elif identity.role == Role.partner and identity.partner_id is not None:
        partner = session.get(Partner, identity.partner_id)
        scope = Scope(partner_id=identity.partner_id, advisor_code=partner.advisor_code if partner else None)
    elif identity.role == Role.merchant and identity.merchant_id is not None:
        scope = Scope(merchant_id=identity.merchant_id)
    elif identity.role == Role.demand and identity.demand_id is not None:
        scope = Scope(demand_id=identity.demand_id)
    else:
        return None
    return Viewer(identity=identity, scope=scope, locale=locale or identity.locale or settings.locale, **extra)


async def console_viewer(request: web.Request) -> Viewer:
    """The signed-in console user, or 401 (no or dead session) / 403 (no console role)."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        raise web.HTTPUnauthorized()
    settings = request.app[SETTINGS]
    locale = locale_of(request)

    def work(session: Session) -> Viewer | bool | None:
        row: ConsoleSession | None = access.current(session, cookie, utcnow())
        if row is None:
            return False
        return _viewer_for(session, settings, row.user_id, locale, session_id=row.id, csrf=row.csrf_token)

    viewer = await db(request, work)
    if viewer is False:
        raise web.HTTPUnauthorized()
    if not isinstance(viewer, Viewer) or not viewer.sees_owners:  # supply-side staff: the Mini App only
        raise web.HTTPForbidden()
    return viewer


async def mini_app_viewer(request: web.Request, *, owners: bool = False) -> Viewer:
    """The Mini App user proven by ``initData``, or 401 (forged, stale, missing) / 403 (no
    Mini App role, or ``owners`` asked and the viewer is merchant or demand-side staff)."""
    raw = request.headers.get(INIT_HEADER, "")
    settings = request.app[SETTINGS]
    try:
        user = init_data.validate(raw, request.app[BOT_TOKEN], utcnow(), settings.console.init_data_max_age_s)
    except init_data.InitDataError:
        raise web.HTTPUnauthorized() from None
    lang = locale_from_telegram(user.language_code)
    viewer = await db(
        request, lambda s: _viewer_for(s, settings, user.user_id, request.query.get("lang") or lang, mini_app=True)
    )
    if viewer is None or (owners and not viewer.sees_owners):
        raise web.HTTPForbidden()
    return viewer


def check_csrf(viewer: Viewer, form: Any) -> None:
    """Every form carries the session's CSRF token; a missing or wrong one is refused (403)."""
    sent = str(form.get("csrf", ""))
    if not viewer.csrf or not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
        raise web.HTTPForbidden()


def new_pre_token() -> str:
    return secrets.token_urlsafe(24)
