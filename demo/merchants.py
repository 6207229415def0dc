"""The demo's revenue act (issue 13): merchants, offers, coupons and the partners' commission.

An operator imports the sample merchants (examples/merchants.csv, the same import as
``autocircle import merchants``) and their offers (examples/offers.csv, ``autocircle import
offers``) before the days pass (``stock_offers``), so the playbook's flows find them: the
``first_wash`` offer is the newcomer's first-wash coupon ``beginner_nudge`` grants. Later, each
merchant's staff registers in the bot with a one-time code; a few
verified owners open ``/offers``, claim the first one (code and QR) and show it at the counter,
where the merchant's staff redeems it (``/redeem CODE``, entering the order value when the
commission is a percent of it); the owners' partners check ``/earnings``. The settlement and
offer sheets of the operations workbook are written afterwards with everything else.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlmodel import Session, col

from flows.merchants import directory
from flows.merchants.importing import import_merchants
from flows.merchants.offer_import import import_offers
from storage.clock import utcnow
from storage.db import session_scope
from storage.merchant_models import Coupon, Merchant, Offer

if TYPE_CHECKING:
    from demo.scenario import Demo

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STAFF_BASE_ID = 700_000
OWNERS = 3
CODE = re.compile(r"券码 <code>(\w+)</code>|券码 (\w+)")


@dataclass
class MerchantsResult:
    merchants: int = 0
    offers: int = 0
    staff: int = 0
    claimed: int = 0
    redeemed: int = 0
    transcript: list[tuple[str, list[str]]] = field(default_factory=list)


def _operator_adds(engine: Any, timezone: str) -> tuple[Any, int]:
    summary = import_merchants(engine, EXAMPLES / "merchants.csv")
    added = import_offers(engine, EXAMPLES / "offers.csv", timezone=timezone, now=utcnow()).imported
    return summary, added


def _staff_codes(engine: Any) -> list[directory.StaffCode]:
    """One-time codes for each merchant's staff, issued when they register (codes expire)."""
    with session_scope(engine) as session:
        return [
            directory.issue_staff_code(session, m.code, utcnow(), staff_name=f"{m.name}店员", actor="demo")
            for m in directory.list_merchants(session)
        ]


@dataclass
class Stocked:
    """What the operator's import added (``stock_offers``), for the act that follows."""

    summary: Any
    offers: int


async def stock_offers(demo: Demo) -> Stocked:
    """The operator adds the sample merchants and offers (once), before the days pass: the
    flows' coupons (``beginner_nudge``'s ``first_wash``) name offers by key."""
    assert demo.app is not None
    if demo.stocked is not None:
        return demo.stocked
    say, engine = demo.options.say, demo.app.engine
    say("运营添加商户和优惠 / the operator adds merchants (examples/merchants.csv) and offers (examples/offers.csv)")
    # in a thread, as the CLI would run beside the bot: a write on the event loop would wait on
    # SQLite's lock held by an update the loop is serving (scenario.py's service moment says so)
    summary, offers = await asyncio.to_thread(_operator_adds, engine, demo.app.settings.timezone)
    keys = await asyncio.to_thread(_offer_keys, engine)
    say(
        f"  merchants {summary.imported} (rejected {summary.rejected}), offers {offers} "
        f"(keyed for the flows: {', '.join(keys) or 'none'})"
    )
    demo.stocked = Stocked(summary, offers)
    return demo.stocked


def _offer_keys(engine: Any) -> list[str]:
    with Session(engine) as session:
        return sorted(k for k in session.execute(select(col(Offer.key)).where(col(Offer.key).is_not(None))).scalars())


async def run_merchants(demo: Demo) -> MerchantsResult:
    """Run the act on the demo's sandbox and bot; returns counts and transcript sections."""
    assert demo.app is not None
    sb, say, engine = demo.sandbox, demo.options.say, demo.app.engine
    result = MerchantsResult()
    stocked = await stock_offers(demo)
    result.offers, result.merchants = stocked.offers, stocked.summary.imported
    issued = await asyncio.to_thread(_staff_codes, engine)  # now: a code issued days ago has expired

    say("商户店员用一次性码注册 / merchant staff register with their one-time codes")
    staff_of: dict[str, int] = {}
    for i, code in enumerate(issued):
        user = STAFF_BASE_ID + i
        await sb.add_user(user, first_name=code.staff_name or code.merchant_name, language_code="zh")
        mark = _mark(sb, user)
        await sb.send_text(user, user, f"/merchant {code.code}")
        await _next(sb, user, mark, "已登记为")
        staff_of[code.merchant_code] = user
    result.staff = len(staff_of)

    owners = [s for s in demo._sims if await asyncio.to_thread(demo._verified, s.owner_id)]
    spread = {s.partner_user: s for s in owners}  # one owner per partner first, then more
    chosen = (list(spread.values()) + [s for s in owners if s not in spread.values()])[:OWNERS]
    say(f"{len(chosen)} 位车主查看 /offers、领券，到店核销 / owners see /offers, claim, and redeem at the counter")
    redeemed_by: list[tuple[Any, int]] = []
    for turn, sim in enumerate(chosen):
        me = sim.telegram_id
        mark = _mark(sb, me)
        await sb.send_text(me, me, "/offers")
        listing = await _next(sb, me, mark, "为您精选的优惠", "暂时没有适合您的优惠")
        buttons = [b for row in listing.get("reply_markup", {}).get("inline_keyboard", []) for b in row]
        if not buttons:
            continue
        mark = _mark(sb, me)
        pick = buttons[turn % len(buttons)]  # owners pick different offers: each merchant redeems
        await sb.press_button(me, me, listing["message_id"], pick["callback_data"])
        claimed = await _next(sb, me, mark, "已领取「", "已领完", "已领取过", "积分不足", "不可领取")
        if "已领取「" not in (claimed.get("text") or ""):
            continue
        await _next(sb, me, mark, photo=True)
        found = CODE.search(claimed.get("text") or "")
        if not found:
            continue
        coupon_code = found.group(1) or found.group(2)
        result.claimed += 1
        merchant_code = await asyncio.to_thread(_merchant_of_coupon, engine, coupon_code)
        staff = staff_of.get(merchant_code or "")
        if staff is None:
            continue
        mark, owner_mark = _mark(sb, staff), _mark(sb, me)
        await sb.send_text(staff, staff, f"/redeem {coupon_code}")
        reply = await _next(sb, staff, mark, "已核销", "消费金额")
        if "消费金额" in (reply.get("text") or ""):
            mark = _mark(sb, staff)
            await sb.send_text(staff, staff, "388")
            await _next(sb, staff, mark, "已核销")
        await _next(sb, me, owner_mark, "感谢")
        result.redeemed += 1
        redeemed_by.append((sim, staff))
    say(f"  claimed {result.claimed}, redeemed {result.redeemed}")

    say("顾问查看 /earnings / partners see their commission with /earnings")
    partners = sorted({sim.partner_user for sim, _ in redeemed_by})
    for user in partners:
        try:
            await sb.wait_for_bot_message(user, contains="佣金 ¥", timeout=20)
        except TimeoutError:
            say("  (a partner's commission notice is still queued)")
        mark = _mark(sb, user)
        await sb.send_text(user, user, "/earnings")
        await _next(sb, user, mark, "我的收益")
    result.transcript = _transcript(demo, redeemed_by, partners)
    await _quiet(demo)
    return result


async def _quiet(demo: Demo, timeout: float = 30.0) -> None:
    """Leave the bot idle for the next act: updates handled, the outbox sent."""
    from storage.models import OutboxMessage

    await demo._drain_outbox()
    assert demo.app is not None  # the demo's acts run after the app is built
    engine = demo.app.engine
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def due() -> int:
        with Session(engine) as session:
            return len(
                session.execute(
                    select(col(OutboxMessage.id)).where(
                        col(OutboxMessage.status).in_(("pending", "sending")), col(OutboxMessage.not_before) <= utcnow()
                    )
                ).all()
            )

    while loop.time() < deadline and await asyncio.to_thread(due) > 0:
        await asyncio.sleep(0.2)


def _mark(sb: Any, chat_id: int) -> int:
    """The newest message id in the chat: replies to what is sent next come after it."""
    messages = sb.messages(chat_id)
    return max((m.get("message_id") or 0 for m in messages), default=0)


async def _next(sb: Any, chat_id: int, after: int, *words: str, photo: bool = False) -> dict[str, Any]:
    """The first bot message after ``after`` with one of ``words`` (or a photo)."""

    def fits(m: dict[str, Any]) -> bool:
        if (m.get("message_id") or 0) <= after:
            return False
        if photo:
            return "photo" in m
        text = m.get("text") or m.get("caption") or ""
        return any(w in text for w in words)

    message: dict[str, Any] = await sb.wait_for_bot_message(chat_id, predicate=fits, timeout=20)
    return message


def _merchant_of_coupon(engine: Any, code: str) -> str | None:
    with Session(engine) as session:
        return session.execute(
            select(col(Merchant.code))
            .join(Offer, col(Offer.merchant_id) == col(Merchant.id))
            .join(Coupon, col(Coupon.offer_id) == col(Offer.id))
            .where(col(Coupon.code) == code)
        ).scalar()


def _lines(demo: Demo, chat_id: int, last: int) -> list[str]:
    out = []
    for message in demo.sandbox.messages(chat_id)[-last:]:
        who = "🤖" if message.get("from_bot") else (message.get("from", {}).get("first_name") or "?")
        text = message.get("text") or message.get("caption") or ("[QR]" if "photo" in message else "")
        shown = " · ".join(line for line in text.splitlines()[:2] if line.strip()) if text else ""
        out.append(f"{who}: {shown}"[:120])
    return out


def _transcript(demo: Demo, redeemed_by: list[tuple[Any, int]], partners: list[int]) -> list[tuple[str, list[str]]]:
    if not redeemed_by:
        return []
    sim, staff = redeemed_by[0]
    sections = [
        (f"车主 {sim.name} ↔ bot (/offers)", _lines(demo, sim.telegram_id, 7)),
        ("商户店员 ↔ bot (/redeem)", _lines(demo, staff, 6)),
    ]
    if partners:
        sections.append(("顾问 ↔ bot (/earnings)", _lines(demo, partners[0], 3)))
    return sections
