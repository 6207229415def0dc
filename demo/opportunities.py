"""The demo's business act for commercial owners (issue 14): a demand side posts a task, the
wave of offers goes out, the first acceptance wins, the task is done and both sides rate.

An operator imports the demand-side accounts (examples/demand.csv, as ``autocircle demand
import``); the first account's staff member registers in the bot with the one-time code
(``/demand CODE``) and posts a task through ``/post``. A few commercial owners of a demo
partner set their vehicles with ``/vehicle`` (two light trucks near the pickup, a van that does
not fit); the wave job's pass (the one the scheduler runs every minute) offers the task to the
fitting ones; both press Accept at once and exactly one gets it; the shipper is told who; the
driver marks it done and both rate. The tasks sheet of the operations workbook is written with
everything else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from flows.opportunities import demand, matching
from flows.opportunities.reports import opportunity_report
from flows.opportunities.tasks import LIVE
from flows.templating import Renderer
from storage.clock import utcnow
from storage.db import session_scope
from storage.models import Owner, Partner, ProductLine
from storage.opportunity_models import Task, TaskOffer

if TYPE_CHECKING:
    from demo.scenario import Demo

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STAFF_ID = 760_001
DRIVER_BASE_ID = 761_000
#: name, /vehicle arguments: two light trucks near the pickup, and a van that does not fit.
DRIVERS = (
    ("陈师傅", "light_truck 5t 广州/越秀区 100"),
    ("黄师傅", "light_truck 4t 广州/海珠区 100"),
    ("刘师傅", "van 1.5t 广州/天河区 100"),
)
T = TypeVar("T")
WAIT = 30  # the machine may be busy: the sender shares it with the scheduler's jobs


@dataclass
class OpportunitiesResult:
    accounts: int = 0
    offers: int = 0
    winner: str = ""
    taken_refused: int = 0
    rated: int = 0
    transcript: list[tuple[str, list[str]]] = field(default_factory=list)


def _retrying(engine: Any, work: Callable[[Session], T]) -> T:
    """One unit of work, in a thread (never on the event loop, where a write would wait on
    SQLite's lock held by an update the loop is serving). The jobs commit in short chunks, so
    the busy timeout covers them; retried only on "database is locked", as a last resort."""
    for attempt in range(40):
        try:
            with session_scope(engine) as session:
                return work(session)
        except OperationalError as error:
            if "locked" not in str(error) or attempt == 39:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def _import(engine: Any) -> demand.DemandImportResult:
    return _retrying(engine, lambda session: demand.import_accounts(session, EXAMPLES / "demand.csv", utcnow()))


def _drivers(engine: Any, partner_id: int | None) -> list[tuple[int, str]]:
    """The demo's commercial owners, verified and in the bot (as the owner import and
    onboarding would leave them); their vehicles they set themselves."""

    def add(session: Session) -> list[tuple[int, str]]:
        out = []
        for i, (name, _) in enumerate(DRIVERS):
            tg = DRIVER_BASE_ID + i
            session.add(
                Owner(
                    external_id=f"DEMO-C{i + 1}",
                    name=name,
                    product_line=ProductLine.commercial.value,
                    stage="verified",
                    telegram_user_id=tg,
                    partner_id=partner_id,
                    locale="zh",
                    phone=f"1390000{i + 1:04d}",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
            out.append((tg, name))
        return out

    return _retrying(engine, add)


def _partner(engine: Any) -> tuple[int | None, int | None, str]:
    with Session(engine) as session:
        row = session.execute(
            select(col(Partner.id), col(Partner.telegram_user_id), col(Partner.name))
            .where(col(Partner.telegram_user_id).is_not(None), col(Partner.active).is_(True))
            .order_by(col(Partner.id))
        ).first()
    return (row[0], row[1], row[2]) if row else (None, None, "")


def _posted(engine: Any) -> bool:
    with Session(engine) as session:
        return session.execute(select(col(Task.id)).where(col(Task.state).in_(LIVE)).limit(1)).first() is not None


def _waves(demo: Demo) -> int:
    """One pass of the wave job, as the scheduler runs it every minute (unless its own pass
    came first); returns how many owners have the offer."""
    assert demo.app is not None
    settings = demo.app.settings
    policy = settings.opportunities.policy(settings.operator_ids)
    renderer = Renderer(default_locale=settings.locale)
    deadline = time.monotonic() + WAIT
    while not _posted(demo.app.engine) and time.monotonic() < deadline:
        time.sleep(0.1)  # "published" is the reply; the update commits the task right after it
    _retrying(demo.app.engine, lambda session: matching.run_waves(session, renderer, policy, utcnow()))
    with Session(demo.app.engine) as session:
        return len(session.execute(select(col(TaskOffer.id))).all())


async def run_opportunities(demo: Demo) -> OpportunitiesResult:
    """Run the act on the demo's sandbox and bot; returns counts and transcript sections."""
    assert demo.app is not None and demo.runtime is not None
    sb, say, engine = demo.sandbox, demo.options.say, demo.app.engine
    result = OpportunitiesResult()
    say("运营导入用车需求方 / the operator imports demand-side accounts (examples/demand.csv)")
    imported = await asyncio.to_thread(_import, engine)
    result.accounts = imported.created + imported.updated
    say(f"  accounts {imported.created} (rejected {len(imported.rejected)})")
    if not imported.codes:
        return result
    first = imported.codes[0]

    partner_id, partner_chat, partner_name = await asyncio.to_thread(_partner, engine)
    drivers = await asyncio.to_thread(_drivers, engine, partner_id)
    say(f"{len(drivers)} 位商用车主用 /vehicle 登记车辆 / commercial owners set their vehicles with /vehicle")
    for (tg, name), (_, vehicle) in zip(drivers, DRIVERS, strict=True):
        await sb.add_user(tg, first_name=name, language_code="zh")
        await sb.send_text(tg, tg, f"/vehicle {vehicle}")
        await sb.wait_for_bot_message(tg, contains="已保存", timeout=WAIT)

    say(f"需求方员工注册并发布任务 / {first.company}'s staff register (/demand CODE) and /post a task")
    await sb.add_user(STAFF_ID, first_name="王经理", language_code="zh")
    await sb.send_text(STAFF_ID, STAFF_ID, f"/demand {first.code}")
    await sb.wait_for_bot_message(STAFF_ID, contains="注册成功", timeout=WAIT)
    zone = ZoneInfo(demo.app.settings.timezone)
    day = (utcnow() + timedelta(days=2)).astimezone(zone).strftime("%Y-%m-%d")
    await sb.send_text(STAFF_ID, STAFF_ID, "/post")
    for expect, answer in (
        ("装货地", "广州/天河区"),
        ("卸货地", "深圳/南山区"),
        ("时间窗口", f"{day} 09:00-18:00"),
        ("车型", "light_truck"),
        ("货量", "3t"),
        ("运费", "800"),
        ("备注", "易碎，轻拿轻放"),
    ):
        await sb.wait_for_bot_message(STAFF_ID, contains=expect, timeout=WAIT)
        await sb.send_text(STAFF_ID, STAFF_ID, answer)
    await sb.wait_for_bot_message(STAFF_ID, contains="已发布", timeout=WAIT)

    result.offers = await asyncio.to_thread(_waves, demo)
    say(f"  第一波推送 / wave 1: {result.offers} fitting owners get the offer (the van does not)")
    demo.runtime.sender.wake()
    offered = []
    for tg, name in drivers[:2]:
        message = await sb.wait_for_bot_message(tg, contains="附近有新任务", timeout=WAIT)
        offered.append((tg, name, message))

    say("两位司机同时接单，只有一位抢到 / two drivers accept at once: exactly one gets it")
    await asyncio.gather(
        *(
            sb.press_button(tg, tg, m["message_id"], m["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
            for tg, _, m in offered
        )
    )
    winner: tuple[int, str] | None = None
    for tg, name, _ in offered:
        reply = await sb.wait_for_bot_message(
            tg, predicate=lambda m: any(w in (m.get("text") or "") for w in ("归您了", "已被抢单")), timeout=WAIT
        )
        if "归您了" in (reply.get("text") or ""):
            winner = (tg, name)
        else:
            result.taken_refused += 1
    if winner is None:
        return result
    result.winner = winner[1]
    await sb.wait_for_bot_message(STAFF_ID, contains="已由", timeout=WAIT)
    say(f"  {winner[1]} 接单；货主收到司机信息 / the shipper is told who accepted")

    say("完成并互评 / the driver marks it done; both sides rate")
    tg = winner[0]
    won = next(m for m in sb.messages(tg) if "归您了" in (m.get("text") or ""))
    await sb.press_button(tg, tg, won["message_id"], won["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
    owner_prompt = await sb.wait_for_bot_message(tg, contains="请为货主打分", timeout=WAIT)
    staff_prompt = await sb.wait_for_bot_message(STAFF_ID, contains="请为司机打分", timeout=WAIT)
    await sb.press_button(
        STAFF_ID,
        STAFF_ID,
        staff_prompt["message_id"],
        staff_prompt["reply_markup"]["inline_keyboard"][0][4]["callback_data"],
    )
    await sb.wait_for_bot_message(STAFF_ID, contains="谢谢评价", timeout=WAIT)
    await sb.press_button(
        tg, tg, owner_prompt["message_id"], owner_prompt["reply_markup"]["inline_keyboard"][0][3]["callback_data"]
    )
    await sb.wait_for_bot_message(tg, contains="谢谢评价", timeout=WAIT)
    result.rated = 2
    if partner_chat is not None:
        await sb.send_text(partner_chat, partner_chat, "/deals")
        await sb.wait_for_bot_message(partner_chat, contains="您的撮合成交：", timeout=WAIT)
    with Session(engine) as session:
        report = opportunity_report(session)
    say(
        f"  tasks posted {report.posted}, matched {report.matched}, completed {report.completed}"
        f"{f'; partner {partner_name} has the deal' if partner_chat else ''}"
    )
    result.transcript = _transcript(demo, tg, winner[1], offered, partner_chat)
    return result


def _lines(demo: Demo, chat_id: int, last: int) -> list[str]:
    out = []
    for message in demo.sandbox.messages(chat_id)[-last:]:
        who = "🤖" if message.get("from_bot") else (message.get("from", {}).get("first_name") or "?")
        text = message.get("text") or message.get("caption") or ""
        out.append(f"{who}: {text.splitlines()[0] if text else ''}"[:110])
    return out


def _transcript(
    demo: Demo, winner: int, name: str, offered: list[tuple[int, str, Any]], partner_chat: int | None
) -> list[tuple[str, list[str]]]:
    sections = [
        ("需求方 ↔ bot (/demand, /post)", _lines(demo, STAFF_ID, 22)),
        (f"商用车主 {name} ↔ bot (/vehicle, offer, done, rating)", _lines(demo, winner, 8)),
    ]
    loser = next((tg for tg, _, _ in offered if tg != winner), None)
    if loser is not None:
        sections.append(("另一位司机 ↔ bot (already taken)", _lines(demo, loser, 3)))
    if partner_chat is not None:
        sections.append(("顾问 ↔ bot (/deals)", _lines(demo, partner_chat, 2)))
    return sections
