"""A ``--role web`` process serves the console and the Mini App beside ``/webhook`` (issue 15,
item 9), as ``--role all`` does; with no scheduler in that process the console books nothing
in memory (a campaign sent now is left due for the leader's ``send_due``)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from bot.app import build_app
from bot.config import Settings
from bot.runtime import build_runtime
from bot.scale.serve import apply_scale, close_parts, web_role_app
from bot.web.app import SCHEDULER, SETTINGS


async def test_the_web_role_serves_the_console_beside_the_webhook(sqlite_url) -> None:
    settings = Settings(
        database_url=sqlite_url,
        bot_token="123456:web-role-test",
        api_base="http://127.0.0.1:9",  # never called: nothing here starts the bot
        webhook_secret="s3cret",
        console={"public_url": "https://console.example.com"},
    )
    app = build_app(settings)
    runtime = build_runtime(app)
    parts = apply_scale(runtime, "web")
    try:
        web_app = web_role_app(runtime, parts, "s3cret")
        assert SETTINGS in web_app and SCHEDULER not in web_app  # no scheduler in a web process
        paths = {r.resource.canonical for r in web_app.router.routes() if r.resource is not None}
        assert {"/webhook", "/", "/matrix", "/login", "/app", "/app/home", "/readyz"} <= paths
        async with TestClient(TestServer(web_app)) as c:
            assert (await c.get("/login?t=x")).status == 200  # the sign-in form
            assert (await c.get("/", allow_redirects=False)).status == 401  # no session
            assert (await c.get("/app/home")).status == 401  # no initData
            hook = await c.post("/webhook", json={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": "no"})
            assert hook.status == 401
    finally:
        await close_parts(parts)
        await runtime.bot.session.close()
        app.close()
