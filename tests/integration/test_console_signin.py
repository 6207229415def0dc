"""Console sign-in on real databases: a /console link works once and only for 10 minutes,
failed attempts lock the endpoint, sessions can be revoked, every form needs its CSRF token,
and the cookie is HttpOnly and SameSite=Strict."""

from __future__ import annotations

from datetime import timedelta

from console_helpers import OPERATOR, client, issue, post_link, sign_in
from sqlmodel import Session, select

from storage.clock import utcnow
from storage.console_models import ConsoleLink, ConsoleSession


async def test_a_link_signs_in_once(engine) -> None:
    token = issue(engine)
    async with client(engine) as c:
        assert (await c.get("/", allow_redirects=False)).status == 401
        first = await post_link(c, token)
        assert first.status == 303
        cookie = first.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        overview = await c.get("/")
        assert overview.status == 200 and "Overview" in await overview.text()
    async with client(engine) as other:
        again = await post_link(other, token)
        assert again.status == 403 and "no longer valid" in await again.text()
        assert (await other.get("/", allow_redirects=False)).status == 401
    with Session(engine) as session:
        link = session.exec(select(ConsoleLink)).one()
        assert link.used_at is not None and link.token_hash != token  # stored hashed
        assert len(session.exec(select(ConsoleSession)).all()) == 1


async def test_an_expired_link_is_refused(engine) -> None:
    token = issue(engine, now=utcnow() - timedelta(minutes=11))
    async with client(engine) as c:
        response = await post_link(c, token)
        assert response.status == 403
        assert (await c.get("/", allow_redirects=False)).status == 401


async def test_failed_attempts_lock_the_sign_in(engine) -> None:
    async with client(engine, max_failures=3) as c:
        for _ in range(3):
            assert (await post_link(c, "guessed-token")).status == 403
        good = issue(engine)
        locked = await post_link(c, good)
        assert locked.status == 429
        assert (await c.get("/", allow_redirects=False)).status == 401
    with Session(engine) as session:
        assert session.exec(select(ConsoleLink)).one().used_at is None  # the good link is unspent


async def test_sign_in_form_needs_its_pair(engine) -> None:
    token = issue(engine)
    async with client(engine) as c:
        refused = await c.post("/login", data={"t": token, "pre": "made-up"}, allow_redirects=False)
        assert refused.status == 403
    with Session(engine) as session:
        assert session.exec(select(ConsoleLink)).one().used_at is None


async def test_forms_without_csrf_are_refused_and_change_nothing(engine) -> None:
    async with client(engine) as c:
        csrf = await sign_in(c, engine)
        assert (await c.post("/logout", data={}, allow_redirects=False)).status == 403
        assert (
            await c.post("/sessions/revoke", data={"id": "all", "csrf": "wrong"}, allow_redirects=False)
        ).status == 403
        assert (await c.get("/")).status == 200
        assert csrf


async def test_a_revoked_session_is_signed_out(engine) -> None:
    async with client(engine) as laptop, client(engine) as phone:
        csrf = await sign_in(laptop, engine)
        await sign_in(phone, engine)
        revoked = await laptop.post("/sessions/revoke", data={"id": "all", "csrf": csrf}, allow_redirects=False)
        assert revoked.status == 303
        assert (await laptop.get("/", allow_redirects=False)).status == 401
        assert (await phone.get("/", allow_redirects=False)).status == 401


async def test_an_operator_removed_from_config_loses_the_console(engine) -> None:
    async with client(engine) as c:
        signed = await post_link(c, issue(engine, OPERATOR + 1))  # no longer (or never) an operator
        assert signed.status == 303
        assert (await c.get("/", allow_redirects=False)).status == 403


async def test_pages_carry_the_security_headers(engine) -> None:
    async with client(engine) as c:
        await sign_in(c, engine)
        page = await c.get("/matrix")
        assert page.status == 200
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
        assert "<script>" not in await page.text()
        mini = await c.get("/app")
        assert "X-Frame-Options" not in mini.headers and "telegram.org" in mini.headers["Content-Security-Policy"]
        missing = await c.get("/owners/999999")
        assert missing.status == 404 and "Traceback" not in await missing.text()
