"""The demo's second act: days pass in seconds and the operations system does its work.

The app clock is frozen and moved to 10:00 and 15:00 (Asia/Shanghai) of each simulated day.
Each day: some owners chat in their circles, some fade away; partners redeem the gift codes
owners show at the dealer; engaged owners invite friends with their referral links; the
segment engine recomputes, the flow runner advances the playbook's flows (newcomer, gift
reminders, growth tasks, referral invitations, win-back surveys), referrals are approved
after their hold, and the sender delivers everything through the outbox. Owners who get a
win-back survey answer it, and some come back.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.runtime import delivery_policy
from bot.scheduler import JobContext
from flows.delivery.clock import FrozenClock
from flows.engine.playbook import Library
from flows.engine.runner import flows_job
from flows.growth import campaigns, referrals, winback
from flows.segments.recompute import recompute_all
from flows.templating import Renderer
from sandbox import Sandbox
from storage.campaign_models import Campaign, CampaignMember
from storage.clock import utcnow
from storage.db import pk
from storage.events import EventKind, record
from storage.flow_models import FlowRun
from storage.gift_models import GiftGrant, Referral
from storage.models import Event, FunnelStage, OutboxMessage, Owner, Vehicle

CHATTER = [
    "今天洗车了，干净！",
    "有人知道附近哪里充电快吗？",
    "周末自驾去了趟海边🌊",
    "新买的脚垫很合适",
    "导航升级了吗？",
    "保养提醒收到了，谢谢",
    "早上好各位车友",
    "这周油耗比上周低",
]

FLEET_BASE_ID = 810_000  # the fleet customer's drivers' Telegram ids
FLEET_DRIVERS = 100


@dataclass
class Persona:
    telegram_id: int
    owner_id: int
    partner_user: int
    chat_id: int | None
    kind: str  # engaged | fading | silent
    fades_on: int = 0


@dataclass
class DaysResult:
    days: int
    daily: list[str] = field(default_factory=list)
    flow_messages: int = 0
    gifts_granted: int = 0
    gifts_redeemed: int = 0
    referrals: Counter[str] = field(default_factory=Counter)
    winback_answers: Counter[str] = field(default_factory=Counter)
    won_back: int = 0
    service: list[str] = field(default_factory=list)
    campaigns: list[str] = field(default_factory=list)
    leaderboard: list[tuple[str, int]] = field(default_factory=list)


class DaysPass:
    """Runs ``days`` simulated days against a running demo (sandbox, bot, database)."""

    def __init__(
        self,
        sandbox: Sandbox,
        engine: Any,
        settings: Any,
        library: Library,
        personas: list[Persona],
        rng: random.Random,
        say: Any,
    ) -> None:
        self.sb = sandbox
        self.engine = engine
        self.settings = settings
        self.library = library
        self.personas = personas
        self.rng = rng
        self.say = say
        self.renderer = Renderer(default_locale=settings.locale)
        self.delivery_policy = delivery_policy(settings)
        self.flows_job = flows_job(self.renderer, library.flows, library.playbook, settings.timezone)
        self.approve_job = referrals.approve_job(self.renderer, settings.referral_policy())
        self.send_due_job = campaigns.send_due_job(self.renderer)
        self.zone = ZoneInfo(settings.timezone)
        self.friends = 0
        self._answered: set[tuple[int, int]] = set()
        self._fleet_campaign: int | None = None
        self._fleet_sent_at: datetime | None = None

    async def run(self, days: int) -> DaysResult:
        result = DaysResult(days=days)
        start_day = utcnow().astimezone(self.zone).date() + timedelta(days=1)
        clock = FrozenClock(self._at(start_day, 10))
        clock.install()
        for day in range(days):
            today = start_day + timedelta(days=day)
            for hour in (10, 15):
                clock.set(self._at(today, hour))
                if hour == 10:
                    await self._owners_act(day)
                    await self._partners_redeem()
                    if day in (2, 9, 16):
                        await self._friends_join()
                    if day == 4:
                        await self._service_moment(clock.now(), result)
                    if day == 6:
                        await self.sb.add_users(FLEET_BASE_ID, FLEET_DRIVERS, first_name="司机")
                        await asyncio.to_thread(self._campaigns, clock.now())
                    await asyncio.to_thread(recompute_all, self.engine, self.settings.segment_thresholds(), clock.now())
                await asyncio.to_thread(self._plan, clock.now())
                await self._drain(clock.now())
                await self._answer_surveys(result)
                if hour == 15 and self._fleet_campaign is not None:
                    await asyncio.to_thread(self._fleet_books, clock.now(), first_day=day == 6)
            if day % 10 == 9 or day == days - 1:
                result.daily.append(await asyncio.to_thread(self._summary, day + 1))
                self.say(result.daily[-1])
        # in a thread: the campaign stats mark conversions (a write), never on the event loop
        await asyncio.to_thread(self._totals, result)
        return result

    def _at(self, day: Any, hour: int) -> datetime:
        return datetime.combine(day, time(hour, 0), self.zone).astimezone(UTC)

    def _plan(self, now: datetime) -> None:
        """What the bot's scheduler does each hour, by the same jobs, at the demo's time."""
        context = JobContext(engine=self.engine, now=now, policy=self.delivery_policy)
        self.flows_job(context)
        self.approve_job(context)
        self.send_due_job(context)  # campaigns marked "send now" (and any whose time has come)

    async def _drain(self, now: datetime, timeout: float = 30.0) -> None:
        """Wait until the sender has sent everything due at ``now``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            with Session(self.engine) as session:
                due = session.execute(
                    select(func.count(col(OutboxMessage.id))).where(
                        col(OutboxMessage.status).in_(("pending", "sending")), col(OutboxMessage.not_before) <= now
                    )
                ).scalar_one()
            if not due:
                return
            await asyncio.sleep(0.2)

    async def _owners_act(self, day: int) -> None:
        for p in self.personas:
            if p.chat_id is None or self.sb.member_status(p.chat_id, p.telegram_id) != "member":
                continue
            active = (
                (p.kind == "engaged" and self.rng.random() < 0.5)
                or (p.kind == "fading" and day < p.fades_on and self.rng.random() < 0.4)
                or (p.kind == "back" and self.rng.random() < 0.3)
            )
            if active:
                await self.sb.send_text(p.telegram_id, p.chat_id, self.rng.choice(CHATTER))
        await asyncio.sleep(0.3)

    async def _partners_redeem(self) -> None:
        by_partner: dict[int, list[str]] = {}
        with Session(self.engine) as session:
            rows = session.execute(
                select(col(GiftGrant.code), col(Owner.telegram_user_id), col(Owner.partner_id))
                .join(Owner, col(Owner.id) == col(GiftGrant.owner_id))
                .where(col(GiftGrant.redeemed_at).is_(None), col(GiftGrant.expires_at) > utcnow())
            ).all()
        partner_users = {p.owner_id: p.partner_user for p in self.personas}
        owners_by_tg = {p.telegram_id: p for p in self.personas}
        for code, tg, _partner_id in rows:
            persona = owners_by_tg.get(tg)
            if persona is None or self.rng.random() > 0.25:
                continue
            by_partner.setdefault(partner_users[persona.owner_id], []).append(code)
        for partner_user, codes in by_partner.items():
            for code in codes:
                await self.sb.send_text(partner_user, partner_user, f"/redeem {code}")
                await self.sb.wait_for_bot_message(partner_user, timeout=20)

    async def _friends_join(self) -> None:
        """Engaged owners share their referral link; a friend who is an imported owner not yet
        online opens it and verifies by sharing their own phone number (a referral link names
        no owner, so a VIN ending would not be checked)."""
        for p in [p for p in self.personas if p.kind == "engaged"][:4]:
            await self.sb.send_text(p.telegram_id, p.telegram_id, "/invite")
            message = await self.sb.wait_for_bot_message(p.telegram_id, contains="start=r_", timeout=20)
            link = next(w for w in message["text"].split() if "start=r_" in w)
            friend = self._offline_owner(p.partner_user)
            if friend is None:
                return
            _owner_id, phone = friend
            self.friends += 1
            friend_tg = 700_000 + self.friends
            await self.sb.add_user(friend_tg, first_name=f"朋友{self.friends}", language_code="zh")
            await self.sb.send_text(friend_tg, friend_tg, f"/start {link.split('start=', 1)[1]}")
            await self.sb.wait_for_bot_message(friend_tg, contains="验证", timeout=20)
            await self.sb.share_contact(friend_tg, phone.lstrip("+"), contact_user_id=friend_tg)
            await self.sb.wait_for_bot_message(friend_tg, contains="验证成功", timeout=20)

    async def _service_moment(self, now: datetime, result: DaysResult) -> None:
        """A car nears its service mileage: reminder with the checklist and slots, the owner
        books, the partner confirms, and the partner's follow-up list shows the rest."""
        from flows.service import bookings

        persona = next((p for p in self.personas if p.kind == "engaged"), None)
        if persona is None:
            return
        service = self.settings.service

        def make_due() -> bool:
            # in a thread: a write on the event loop would wait for the bot's own open update
            with Session(self.engine) as session:
                vehicle_id = (
                    session.execute(select(col(Vehicle.id)).where(col(Vehicle.owner_id) == persona.owner_id))
                    .scalars()
                    .first()
                )
                if vehicle_id is None:
                    return False
                bookings.demo_service_moment(
                    session,
                    vehicle_id,
                    now,
                    rules=service.rules(),
                    within_km=service.remind_within_km,
                    within_days=service.remind_within_days,
                    timezone=self.settings.timezone,
                    slots=service.slot_policies(),
                )
                session.commit()
                return True

        if not await asyncio.to_thread(make_due):
            return
        await asyncio.to_thread(self._plan, now)
        reminder = await self.sb.wait_for_bot_message(
            persona.telegram_id,
            timeout=30,
            predicate=lambda m: any(
                (b.get("callback_data") or "").startswith("bk:")
                for row in m.get("reply_markup", {}).get("inline_keyboard", [])
                for b in row
            ),
        )
        slot = next(
            b
            for row in reminder["reply_markup"]["inline_keyboard"]
            for b in row
            if (b.get("callback_data") or "").startswith("bk:")
        )
        result.service.append(f"owner: {reminder['text'].splitlines()[0]}")
        await self.sb.press_button(
            persona.telegram_id, persona.telegram_id, reminder["message_id"], slot["callback_data"]
        )
        request = await self.sb.wait_for_bot_message(
            persona.partner_user,
            timeout=30,
            predicate=lambda m: any(
                (b.get("callback_data") or "").startswith("bkp:")
                for row in m.get("reply_markup", {}).get("inline_keyboard", [])
                for b in row
            ),
        )
        result.service.append(f"partner: {request['text'].splitlines()[0]}")
        confirm = request["reply_markup"]["inline_keyboard"][0][0]
        await self.sb.press_button(
            persona.partner_user, persona.partner_user, request["message_id"], confirm["callback_data"]
        )
        confirmed = await self.sb.wait_for_bot_message(
            persona.telegram_id,
            timeout=30,
            predicate=lambda m: "预约已确认" in (m.get("text") or "") or "confirmed" in (m.get("text") or ""),
        )
        result.service.append(f"owner: {confirmed['text'].splitlines()[0]}")
        await self.sb.send_text(persona.partner_user, persona.partner_user, "/followups")
        followups = await self.sb.wait_for_bot_message(
            persona.partner_user,
            timeout=30,
            predicate=lambda m: any(word in (m.get("text") or "") for word in ("跟进", "联系", "follow")),
        )
        result.service.append(f"partner /followups: {followups['text'].splitlines()[0]}")

    def _campaigns(self, now: datetime) -> None:
        """Each partner sends a service-check campaign to their growing and mature owners; a
        sticky 10% holdout gets nothing, so the report can show the uplift. The first partner's
        fleet customer handed over its trucks yesterday and the drivers verified at the dealer:
        that partner sends them the service check with half of them held out, an audience big
        enough for the report to show the uplift with its interval."""
        cells = [f"{m}/{a}" for m in ("growing", "mature") for a in ("active", "declining", "churned")]
        with Session(self.engine) as session:
            partner_ids = sorted(
                {pid for p in self.personas if (pid := session.get_one(Owner, p.owner_id).partner_id) is not None}
            )
            for partner_id in partner_ids:
                campaign = campaigns.create(session, partner_id, cells, now, template=campaigns.READY_TEMPLATES[0])
                campaigns.confirm(session, self.renderer, partner_id, pk(campaign), None, now)
            if partner_ids:
                self._fleet_campaign = self._fleet(session, partner_ids[0], now)
            session.commit()
        self._campaign_partners = partner_ids

    def _fleet(self, session: Session, partner_id: int, now: datetime) -> int:
        """The fleet's drivers (online and verified since yesterday, on Telegram) and the
        service-check campaign to them, 50% held out; its id."""
        since = now - timedelta(days=1)
        for n in range(FLEET_DRIVERS):
            session.add(
                Owner(
                    name=f"车队司机{n + 1:03d}",
                    external_id=f"FLEET{n + 1:03d}",
                    partner_id=partner_id,
                    product_line="commercial",
                    stage=FunnelStage.verified.value,
                    invited_at=since,
                    online_at=since,
                    verified_at=since,
                    telegram_user_id=FLEET_BASE_ID + n,
                    locale="zh",
                    created_at=since,
                    updated_at=since,
                )
            )
        session.flush()
        campaign = campaigns.create(
            session,
            partner_id,
            ["beginner/active"],
            now,
            template=campaigns.READY_TEMPLATES[0],
            product_line="commercial",
            holdout_percent=50,
        )
        campaigns.confirm(session, self.renderer, partner_id, pk(campaign), None, now)
        return pk(campaign)

    def _fleet_books(self, now: datetime, *, first_day: bool) -> None:
        """Drivers book the service check (their advisor books them in when they reply): the
        day the message came about 30% of those who got it and 10% of those held out, then a
        few more each day of the conversion window. Most never do."""
        chance = (0.30, 0.10) if first_day else (0.03, 0.02)
        with Session(self.engine) as session:
            sent_at = session.get_one(Campaign, self._fleet_campaign).sent_at
            window = self.settings.campaigns.conversion_window_days
            if sent_at is None or now >= sent_at + timedelta(days=window):
                return
            members = session.execute(
                select(col(CampaignMember.owner_id), col(CampaignMember.holdout)).where(
                    col(CampaignMember.campaign_id) == self._fleet_campaign
                )
            ).all()
            booked = set(
                session.execute(
                    select(col(Event.owner_id)).where(
                        col(Event.kind) == EventKind.booking.value,
                        col(Event.owner_id).in_([m[0] for m in members]),
                        col(Event.at) >= sent_at,
                    )
                ).scalars()
            )
            for owner_id, holdout in members:
                if owner_id not in booked and self.rng.random() < chance[1 if holdout else 0]:
                    record(session, owner_id, EventKind.booking, now, source="campaign_reply")
            session.commit()

    def _offline_owner(self, partner_user: int) -> tuple[int, str] | None:
        """An imported owner of this partner not yet on the bot, with a unique phone number
        (the friend verifies with it): their id and phone."""
        partner_owner = next(p for p in self.personas if p.partner_user == partner_user)
        with Session(self.engine) as session:
            partner_id = session.get_one(Owner, partner_owner.owner_id).partner_id
            shared = (
                select(col(Owner.phone))
                .where(col(Owner.phone).is_not(None))
                .group_by(col(Owner.phone))
                .having(func.count() > 1)
            )
            row = session.execute(
                select(col(Owner.id), col(Owner.phone))
                .where(
                    col(Owner.partner_id) == partner_id,
                    col(Owner.telegram_user_id).is_(None),
                    col(Owner.stage) != FunnelStage.verified.value,
                    col(Owner.phone).is_not(None),
                    col(Owner.phone).not_in(shared),
                )
                .order_by(col(Owner.id).desc())
            ).first()
        return (row[0], row[1]) if row else None

    async def _answer_surveys(self, result: DaysResult) -> None:
        for p in self.personas:
            for message in self.sb.bot_messages(p.telegram_id):
                buttons = [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]
                survey = [b for b in buttons if "winback." in (b.get("callback_data") or "")]
                if not survey:
                    continue
                message_id = message["message_id"]
                if (p.telegram_id, message_id) in self._answered:
                    continue
                self._answered.add((p.telegram_id, message_id))
                choice = self.rng.choice(survey)
                await self.sb.press_button(p.telegram_id, p.telegram_id, message_id, choice["callback_data"])
                if self.rng.random() < 0.5:
                    p.kind = "back"

    def _summary(self, day: int) -> str:
        with Session(self.engine) as session:
            cells = Counter(
                f"{m}/{a}"
                for m, a in session.execute(
                    select(col(Owner.maturity), col(Owner.activity)).where(col(Owner.online_at).is_not(None))
                ).all()
            )
            sent = session.execute(
                select(func.count(col(OutboxMessage.id))).where(col(OutboxMessage.status) == "sent")
            ).scalar_one()
        top = ", ".join(f"{cell} {n}" for cell, n in cells.most_common(4))
        return f"第 {day} 天 / day {day}: {sent} pushes sent so far; cells: {top}"

    def _totals(self, result: DaysResult) -> None:
        with Session(self.engine) as session:
            result.flow_messages = session.execute(
                select(func.count(col(OutboxMessage.id))).where(
                    col(OutboxMessage.dedupe_key).like("flow:%"), col(OutboxMessage.status) == "sent"
                )
            ).scalar_one()
            result.gifts_granted = session.execute(select(func.count(col(GiftGrant.id)))).scalar_one()
            result.gifts_redeemed = session.execute(
                select(func.count(col(GiftGrant.id))).where(col(GiftGrant.redeemed_at).is_not(None))
            ).scalar_one()
            result.referrals = Counter(
                dict(
                    session.execute(
                        select(col(Referral.status), func.count(col(Referral.id))).group_by(col(Referral.status))
                    ).all()
                )
            )
            stored = winback.churn_reasons(session).totals  # what the bot recorded, not what was tapped
            result.winback_answers = Counter({reason: n for reason, n in stored.items() if n})
            result.won_back = session.execute(
                select(func.count(col(FlowRun.id))).where(
                    col(FlowRun.flow_key) == "winback", col(FlowRun.status) == "goal_reached"
                )
            ).scalar_one()
            referrer_counts = session.execute(
                select(col(Owner.name), func.count(col(Referral.id)))
                .join(Referral, col(Referral.referrer_owner_id) == col(Owner.id))
                .where(col(Referral.status) == "approved")
                .group_by(col(Owner.name))
                .order_by(func.count(col(Referral.id)).desc())
                .limit(5)
            ).all()
            result.leaderboard = [(name, n) for name, n in referrer_counts]
            window, min_group = self.settings.campaigns.conversion_window_days, self.settings.console.min_group
            for partner_id in getattr(self, "_campaign_partners", []):
                for st in campaigns.list_stats(session, partner_id, window_days=window, min_group=min_group):
                    if st.too_few:
                        uplift = "too few owners to tell"
                    elif st.uplift is None or st.uplift_ci is None:
                        uplift = "–"
                    else:
                        uplift = f"{st.uplift:+.1f} pp (95% {st.uplift_ci[0]:+.1f} to {st.uplift_ci[1]:+.1f})"
                    result.campaigns.append(
                        f"#{st.id} {st.template.split('/')[-1]}: {st.treated} treated, {st.holdout} holdout, "
                        f"{st.sent} sent, {st.converted}/{st.holdout_converted} converted within "
                        f"{st.window_days} days, uplift {uplift}"
                    )
