"""Console sessions on real databases (issue 15, item 11): the cookies are Secure under an https
public URL (and not over plain http, where a browser would drop them), a session ends when it
expires, the unexpected-error page shows no trace, and a partner's console session is scoped
like the bot: another partner's owner is not found, the gifts and churn pages hold only their
own owners."""

from __future__ import annotations

import re
from datetime import timedelta

from console_helpers import client, issue, sign_in
from sqlmodel import Session

from flows.console import figures
from storage import clock
from storage.events import EventKind, record
from storage.gift_models import GiftGrant, Referral
from storage.models import Dealer, Owner, Partner

A_TG, B_TG = 5701, 5702


async def _cookies_of_sign_in(c, engine) -> tuple[str, str]:
    """The Set-Cookie headers of the sign-in form and of the signed-in answer."""
    form = await c.get(f"/login?t={issue(engine)}")
    pre_header = form.headers["Set-Cookie"]
    pre = re.search(r'name="pre" value="([^"]+)"', await form.text()).group(1)
    token = re.search(r'name="t" value="([^"]+)"', await form.text()).group(1)
    signed = await c.post(
        "/login", data={"t": token, "pre": pre}, headers={"Cookie": f"ac_pre={pre}"}, allow_redirects=False
    )
    assert signed.status == 303, await signed.text()
    session_header = next(v for v in signed.headers.getall("Set-Cookie") if v.startswith("ac_session="))
    return pre_header, session_header


async def test_cookies_are_secure_under_https_and_not_over_plain_http(engine) -> None:
    async with client(engine, public_url="https://console.example.com") as c:
        pre, session = await _cookies_of_sign_in(c, engine)
    assert "Secure" in pre and "HttpOnly" in pre
    assert "Secure" in session and "HttpOnly" in session and "SameSite=Strict" in session
    async with client(engine, public_url="http://127.0.0.1") as c:
        pre, session = await _cookies_of_sign_in(c, engine)
    assert "Secure" not in pre and "Secure" not in session


async def test_a_session_ends_when_it_expires(engine) -> None:
    async with client(engine, session_hours=2) as c:
        await sign_in(c, engine)
        assert (await c.get("/")).status == 200
        start = clock.utcnow()
        clock.set_now(lambda: start + timedelta(hours=1, minutes=59))
        try:
            assert (await c.get("/", allow_redirects=False)).status == 200
            clock.set_now(lambda: start + timedelta(hours=2, minutes=1))
            late = await c.get("/", allow_redirects=False)
            assert late.status == 401 and "/console" in await late.text()
        finally:
            clock.set_now(None)


async def test_the_unexpected_error_page_shows_no_trace(engine, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail in /work/main/flows/console/figures.py line 99")

    monkeypatch.setattr(figures, "overview", broken)
    async with client(engine) as c:
        await sign_in(c, engine)
        page = await c.get("/?lang=en")
        text = await page.text()
    assert page.status == 500 and "Something went wrong" in text
    assert "Traceback" not in text and "secret detail" not in text and "figures.py" not in text
    assert "RuntimeError" not in text


def _two_partners(engine) -> dict[str, int]:
    now = clock.utcnow()
    with Session(engine) as session:
        dealer = Dealer(code="D1", name="Dealer one")
        session.add(dealer)
        session.flush()
        a = Partner(name="Alice", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=A_TG)
        b = Partner(name="Bob", dealer_id=dealer.id, advisor_code="B1", telegram_user_id=B_TG)
        session.add_all([a, b])
        session.flush()
        ids: dict[str, int] = {"a": a.id, "b": b.id}
        for who, partner, gift in (("a", a, "newcomer"), ("b", b, "first_order")):
            owner = Owner(
                name=f"{partner.name} owner",
                partner_id=partner.id,
                stage="verified",
                online_at=now,
                maturity="growing",
                activity="active",
                telegram_user_id=A_TG * 10 if who == "a" else B_TG * 10,
            )
            session.add(owner)
            session.flush()
            ids[f"{who}_owner"] = owner.id
            session.add(
                GiftGrant(
                    owner_id=owner.id, gift_type=gift, code=f"G{who.upper()}1", expires_at=now + timedelta(days=9)
                )
            )
            record(session, owner.id, EventKind.button, now, action="winback.price", run_id=0, flow="winback")
        session.add(
            Referral(
                referrer_owner_id=ids["b_owner"],
                referee_user_id=99001,
                status="approved",
                first_touch_at=now,
                approved_at=now,
            )
        )
        session.commit()
    return ids


async def test_a_partners_console_session_sees_only_their_own(engine) -> None:
    ids = _two_partners(engine)
    async with client(engine) as c:
        await sign_in(c, engine, user_id=A_TG)
        assert (await c.get(f"/owners/{ids['a_owner']}?lang=en")).status == 200
        theirs = await c.get(f"/owners/{ids['b_owner']}?lang=en")
        assert theirs.status == 404 and "Bob" not in await theirs.text()
        gifts = await (await c.get("/gifts?lang=en")).text()
        assert "newcomer" in gifts and "first_order" not in gifts and "Bob owner" not in gifts
        churn = await (await c.get("/churn?lang=en")).text()
        assert "Alice" in churn and "Bob" not in churn
        owners = await (await c.get("/owners?lang=en")).text()
        assert "Alice owner" in owners and "Bob owner" not in owners


def test_a_partners_funnel_is_theirs_by_partner_id(engine) -> None:
    """The funnel of a partner's scope is found by the partner's id, whatever advisor code the
    scope carries; an advisor code alone scopes nothing and is refused (issue 15, item 10)."""
    import pytest

    ids = _two_partners(engine)
    with Session(engine) as session:
        report = figures.funnel(session, figures.Scope(partner_id=ids["a"], advisor_code="B1"))
        assert [r.advisor_code for r in report.rows] == ["A1"] and report.total.imported == 1
        overview = figures.overview(session, figures.Scope(partner_id=ids["a"], advisor_code="B1"))
        assert [r.name for r in overview.funnel.rows] == ["Alice"]
    with pytest.raises(ValueError, match="partner's id"):
        figures.Scope(advisor_code="B1")
