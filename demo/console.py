"""The demo's console act (issue 15): the web console served beside the demo bot while it
runs, an operator signed in by a one-time link (what ``/console`` sends), and a screenshot of
every page written under ``demo-out/console/`` by Debian's Chromium through Playwright (skipped
with one line when Chromium is missing). The transcript says how to open the console on the
demo's database afterwards (``autocircle web --link``).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import func, select
from sqlmodel import Session, col

from flows.console import access, counts
from flows.console.init_data import make_init_data
from storage.campaign_models import Campaign, CampaignMember
from storage.clock import utcnow
from storage.db import session_scope
from storage.models import Owner, Partner

if TYPE_CHECKING:
    from playwright.async_api import ViewportSize

    from demo.scenario import Demo

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class ConsoleResult:
    url: str = ""
    open_command: str = ""  # what opens the console on the demo's database after the demo
    shots: list[str] = field(default_factory=list)
    skipped: str = ""
    transcript: list[tuple[str, list[str]]] = field(default_factory=list)


def open_command(db: Path, operator_id: int) -> str:
    """The shell command that serves the console on the demo's database and prints a fresh
    one-time sign-in link for the demo's operator (``autocircle web --link``): the demo's own
    link is spent by its screenshots, and its server stops with the demo."""
    exe = Path(sys.executable).with_name("autocircle")  # the demo's own installation
    cwd = Path.cwd()
    program = str(exe) if exe.exists() else "autocircle"
    if exe.exists() and exe.is_relative_to(cwd):  # shorter when run from the checkout (scripts/demo)
        program = str(exe.relative_to(cwd))
    url = f"sqlite:///{db.resolve()}"
    return (
        f"AUTOCIRCLE_DATABASE_URL={shlex.quote(url)} AUTOCIRCLE_OPERATOR_IDS='[{operator_id}]' "
        f"{shlex.quote(program)} web --link"
    )


def _port(preferred: int) -> int:
    for candidate in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


def _story(engine: Any) -> dict[str, Any]:
    """What the screenshots open: the busiest cell, a campaign, an owner with a history, a partner."""
    with Session(engine) as session:
        cell = session.execute(
            select(col(Owner.maturity), col(Owner.activity), func.count())
            .where(col(Owner.online_at).is_not(None))
            .group_by(col(Owner.maturity), col(Owner.activity))
            .order_by(func.count().desc())
            .limit(1)
        ).first()
        campaign = (
            session.execute(select(func.max(col(CampaignMember.campaign_id)))).scalar()
            or session.execute(select(func.max(col(Campaign.id)))).scalar()
        )  # a sent one shows its results
        owner = session.execute(
            select(col(Owner.id))
            .where(col(Owner.last_active_at).is_not(None))
            .order_by(col(Owner.last_active_at).desc())
            .limit(1)
        ).scalar()
        partner = session.execute(
            select(col(Partner.telegram_user_id))
            .where(col(Partner.telegram_user_id).is_not(None))
            .order_by(col(Partner.id))
            .limit(1)
        ).scalar()
    return {
        "cell": f"{cell[0]}/{cell[1]}" if cell else "beginner/active",
        "campaign": campaign,
        "owner": owner,
        "partner_tg": partner,
    }


def _pages(story: dict[str, Any]) -> list[tuple[str, str]]:
    pages = [
        ("overview", "/"),
        ("matrix", "/matrix"),
        ("cell", f"/matrix/cell?cell={story['cell']}"),
        ("movement", "/movement"),
        ("flows", "/flows"),
        ("campaigns", "/campaigns"),
        ("campaign_new", "/campaigns/new"),
    ]
    if story["campaign"]:
        pages.append(("campaign", f"/campaigns/{story['campaign']}"))
    pages += [("delivery", "/delivery"), ("churn", "/churn"), ("gifts", "/gifts"), ("owners", "/owners")]
    if story["owner"]:
        pages.append(("owner_timeline", f"/owners/{story['owner']}"))
    # the supply side (issues 13-15): the demo's merchants, offers, settlement and tasks
    pages += [("offers", "/offers"), ("merchants", "/merchants"), ("settlement", "/settlement"), ("tasks", "/tasks")]
    pages += [("sessions", "/sessions"), ("overview_en", "/?lang=en"), ("matrix_en", "/matrix?lang=en")]
    return pages


async def _screenshots(base: str, token: str, bot_token: str, story: dict[str, Any], folder: Path) -> list[str]:
    from playwright.async_api import async_playwright

    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport=DESKTOP)
            await page.goto(f"{base}/login?t={token}")
            await page.click("#sign-in")
            await page.wait_for_selector("#total-imported")
            for name, path in _pages(story):
                await page.goto(base + path)
                await page.wait_for_load_state("networkidle")
                if await page.locator(".chart").count():
                    await page.wait_for_selector(".chart svg, .chart canvas", timeout=5000)
                target = folder / f"{name}.png"
                await page.screenshot(path=str(target), full_page=True)
                written.append(str(target))
            await page.goto(f"{base}/?lang=zh")  # leave the browser's language as the demo's
            if story["partner_tg"]:
                signed = make_init_data(
                    int(story["partner_tg"]), bot_token, utcnow(), first_name="Partner", language_code="zh"
                )  # the demo's partners use Telegram in Chinese
                phone = await browser.new_page(viewport=PHONE)
                await phone.goto(f"{base}/app#tgWebAppData={quote(signed)}&tgWebAppVersion=7.0")
                await phone.wait_for_selector("#mini-funnel")
                target = folder / "mini_app.png"
                await phone.screenshot(path=str(target), full_page=True)
                written.append(str(target))
        finally:
            await browser.close()
    return written


async def run_console(demo: Demo) -> ConsoleResult:
    """Serve the console beside the demo bot, sign in as the demo's operator, screenshot it."""
    from bot.runtime import bot_token
    from bot.web import build_web_app
    from demo.scenario import OPERATOR_ID

    assert demo.app is not None and demo.runtime is not None
    say = demo.options.say
    settings = demo.app.settings
    port = _port(settings.console.port)
    base = f"http://127.0.0.1:{port}"
    settings = settings.model_copy(update={"console": settings.console.model_copy(update={"public_url": base})})
    token_of_bot = bot_token(settings)
    app = build_web_app(settings, demo.app.engine, bot_token=token_of_bot, scheduler=demo.runtime.scheduler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    result = ConsoleResult(url=base)
    try:
        engine = demo.app.engine  # asserted above

        def issue() -> str:  # what /console gives an operator; a write, so not on the event loop
            with session_scope(engine) as session:
                return access.issue_link(session, OPERATOR_ID, utcnow(), settings.console.link_minutes)

        token = await asyncio.to_thread(issue)  # the screenshots' own sign-in spends it
        # the overview's and the matrix's counts, as the bot's scheduled job refreshes them
        await asyncio.to_thread(counts.refresh, engine, utcnow())
        say(f"控制台 / web console: {base}  (served while the demo runs; a fresh sign-in link at the end)")
        story = await asyncio.to_thread(_story, demo.app.engine)
        folder = demo.options.out_dir / "console"
        if not Path(CHROMIUM).exists():
            result.skipped = (
                f"console screenshots skipped: {CHROMIUM} is missing (scripts/system-deps installs Debian's chromium)"
            )
            say(result.skipped)
        else:
            say("控制台截图 / screenshots of every console page (Chromium)")
            result.shots = await _screenshots(base, token, token_of_bot, story, folder)
    finally:
        await runner.cleanup()
    open_cmd = open_command(demo.options.out_dir / "autocircle-demo.db", OPERATOR_ID)
    result.open_command = open_cmd
    lines = [
        f"served beside the demo bot at {base} while the demo ran",
        "open it on the demo's database (prints a fresh one-time sign-in link, then serves on :8090):",
        f"  {open_cmd}",
    ]
    lines += [f"screenshot {re.sub(r'^.*/console/', 'console/', s)}" for s in result.shots] or [result.skipped]
    result.transcript = [("web console", lines)]
    return result
