"""What every response carries, and what no response shows (issue 15, item 2).

* security headers: a CSP without inline scripts or styles; ``X-Frame-Options: DENY`` except for
  the Mini App, which Telegram Web shows in a frame (there ``frame-ancestors`` names Telegram);
  ``no-store`` on everything but the vendored static files; no referrer (a sign-in link carries
  its token in the URL).
* errors: an exception becomes the error page with its status; the traceback goes to the log
  only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MINI_APP_PREFIX = "/app"
NOT_OURS = ("/webhook", "/telematics")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {fa}"
)


def _is_mini_app(path: str) -> bool:
    return path == MINI_APP_PREFIX or path.startswith(MINI_APP_PREFIX + "/")


def apply_headers(request: web.Request, response: web.StreamResponse) -> None:
    mini = _is_mini_app(request.path)
    response.headers["Content-Security-Policy"] = _CSP.format(
        fa="https://web.telegram.org https://*.telegram.org" if mini else "'none'"
    )
    if not mini:
        response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "public, max-age=86400"
    else:
        response.headers["Cache-Control"] = "no-store"


def error_middleware(
    render_error: Callable[[web.Request, int, str], web.Response],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(NOT_OURS):  # mounted beside the webhook: leave its paths alone
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPRedirection as redirect:
            apply_headers(request, redirect)
            raise
        except web.HTTPException as exc:
            key = {400: "bad_request", 401: "need_sign_in", 403: "forbidden", 404: "not_found", 429: "too_many"}.get(
                exc.status, "error"
            )
            response = render_error(request, exc.status, key)
        except Exception:
            log.exception("console error on %s %s", request.method, request.path)
            response = render_error(request, 500, "error")
        apply_headers(request, response)
        return response

    return middleware
