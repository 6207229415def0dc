"""Shared by the console tests: a console app on a real database and a signed-in client."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Settings
from bot.web import build_web_app
from flows.console import access
from storage.clock import utcnow

OPERATOR = 900001
TOKEN = "123456:console-test"


def settings(engine: Engine, **console) -> Settings:
    return Settings(
        database_url=str(engine.url),
        operator_ids=[OPERATOR],
        locale="en",
        console={"public_url": "http://127.0.0.1", **console},
    )


def client(engine: Engine, **console) -> TestClient:
    app = build_web_app(settings(engine, **console), engine, bot_token=TOKEN)
    return TestClient(TestServer(app))


def issue(engine: Engine, user_id: int = OPERATOR, now: datetime | None = None, minutes: int = 10) -> str:
    with Session(engine) as session:
        token = access.issue_link(session, user_id, now or utcnow(), minutes)
        session.commit()
        return token


async def post_link(c: TestClient, token: str):
    form = await c.get(f"/login?t={token}")
    assert form.status == 200
    pre = re.search(r'name="pre" value="([^"]+)"', await form.text()).group(1)
    return await c.post("/login", data={"t": token, "pre": pre}, allow_redirects=False)


async def sign_in(c: TestClient, engine: Engine, user_id: int = OPERATOR) -> str:
    """Sign in through a fresh link; returns the page's CSRF token."""
    response = await post_link(c, issue(engine, user_id))
    assert response.status == 303, await response.text()
    page = await c.get("/sessions")
    assert page.status == 200
    return re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
