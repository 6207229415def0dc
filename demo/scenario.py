"""The demo: the whole product on the local sandbox, driven as real people would drive it.

It starts the Bot API sandbox and the real bot in-process, imports the sample partners and
owners, has every partner register with their one-time code and bind an owner circle, hands
out personal invite links, and lets a few dozen simulated owners open their links, verify
(some fail until verification locks and their advisor is told), onboard, join their circles
and chat. It ends with the funnel and a short transcript.
Everything talks HTTP through aiogram exactly as it would with Telegram.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from bot.app import App, build_app
from bot.config import Settings
from bot.runtime import BotRuntime, build_runtime
from demo.days import DaysPass, DaysResult, Persona
from demo.merchants import Stocked
from flows.community import partners as partner_service
from flows.community.funnel import FunnelReport, funnel_report
from flows.delivery.clock import uninstall as clock_uninstall
from flows.reports.operations_workbook import operations_xlsx
from flows.reports.owner_export import owners_xlsx
from flows.segments.matrix_picture import render_matrix_png
from flows.segments.matrix_report import MatrixScope, matrix_report
from flows.templating import labels
from sandbox import Sandbox, SandboxConfig
from storage import migrate
from storage.clock import utcnow
from storage.db import session_scope
from storage.importing.owners import import_owners
from storage.importing.summary import ImportSummary
from storage.models import Owner, ProductLine, Vehicle

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
OPERATOR_ID = 880_001
PARTNER_BASE_ID = 5_000
OWNER_BASE_ID = 600_000
LINK = re.compile(r"^(\S+) .*?(https://t\.me/\S+\?start=(\S+))$", re.MULTILINE)
CHAT_LINES = [
    "大家好，新人报到！",
    "这车冬天续航怎么样？",
    "周末有人一起去自驾吗？",
    "保养一次大概多少钱？",
    "刚做完首保，服务不错👍",
    "请问胎压多少合适？",
    "车机升级后流畅多了",
    "谢谢群主拉我进群",
]


@dataclass
class DemoOptions:
    owners_per_partner: int = 6
    failures: int = 3
    days: int = 60
    seed: int = 7
    out_dir: Path = Path("demo-out")
    say: Callable[[str], None] = print


@dataclass
class DemoResult:
    partners_import: partner_service.PartnerImportResult
    owners_import: ImportSummary
    funnel: FunnelReport | None = None
    transcript: list[tuple[str, list[str]]] = field(default_factory=list)
    circles: int = 0
    verified: int = 0
    failed: int = 0
    days: DaysResult | None = None
    matrix_text: str = ""
    files: list[str] = field(default_factory=list)
    console_command: str = ""  # opens the console on the demo's database with a fresh sign-in link


@dataclass
class SimOwner:
    owner_id: int
    external_id: str
    name: str
    token: str
    vin: str
    phone: str | None
    partner_user: int
    telegram_id: int


class Demo:
    """One run of the demo; ``run()`` returns what it measured."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.sandbox = Sandbox(SandboxConfig())
        self.app: App | None = None
        self.runtime: BotRuntime | None = None
        self.circle_links: dict[tuple[int, str], tuple[int, str]] = {}
        self._sims: list[SimOwner] = []
        self.stocked: Stocked | None = None  # the merchants and offers, once imported

    async def run(self) -> DemoResult:
        out = self.options.out_dir
        out.mkdir(parents=True, exist_ok=True)
        db_path = out / "autocircle-demo.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{db_path.resolve()}"
        migrate.upgrade(url)
        await self.sandbox.start()
        try:
            settings = Settings(database_url=url, api_base=self.sandbox.base_url, operator_ids=[OPERATOR_ID])
            self.app = build_app(settings)
            partners_import, owners_import = await asyncio.to_thread(self._import_samples, out)
            self.runtime = build_runtime(self.app)
            await self.runtime.start_polling(polling_timeout=1)
            result = await self._simulate(partners_import, owners_import)
            await self._drain_outbox()
            from demo.merchants import run_merchants, stock_offers  # issue 13: merchants, offers, coupons

            await stock_offers(self)  # before the days: the flows' coupons name offers by key
            if self.options.days > 0:
                self.options.say(f"{self.options.days} 天过去了… / {self.options.days} simulated days pass")
                days = DaysPass(
                    self.sandbox,
                    self.app.engine,
                    self.app.settings,
                    self.runtime.dp["flow_library"],
                    self._personas(),
                    self.rng,
                    self.options.say,
                )
                result.days = await days.run(self.options.days)
            result.transcript += (await run_merchants(self)).transcript
            from demo.opportunities import run_opportunities  # issue 14: demand side, task waves, first acceptance wins

            result.transcript += (await run_opportunities(self)).transcript
            from demo.console import run_console  # issue 15: the web console beside the bot, a screenshot of each page

            shown = await run_console(self)
            result.transcript += shown.transcript
            result.console_command = shown.open_command
            with Session(self.app.engine) as session:
                result.funnel = funnel_report(session)
            result.matrix_text, result.files = await asyncio.to_thread(self._write_reports, out)
            return result
        finally:
            if self.runtime is not None:
                await self.runtime.stop()
            if self.app is not None:
                self.app.close()
            await self.sandbox.stop()
            clock_uninstall()

    # --- data ---------------------------------------------------------------------------
    def _import_samples(self, out: Path) -> tuple[partner_service.PartnerImportResult, ImportSummary]:
        assert self.app is not None
        self.options.say("导入顾问 / importing partners: examples/partners.csv")
        with session_scope(self.app.engine) as session:
            rows = partner_service.read_partner_file(EXAMPLES / "partners.csv")
            partners_import = partner_service.import_partners(session, rows, utcnow())
        self.options.say("导入车主 / importing owners: examples/owners.csv (GBK)")
        shutil.copyfile(EXAMPLES / "owners.csv", out / "owners.csv")
        summary = import_owners(self.app.engine, out / "owners.csv", rejects_path=out / "owners.rejects.csv")
        self.options.say(
            f"  read {summary.read}, imported {summary.imported}, rejected {summary.rejected} "
            f"(see {out / 'owners.rejects.csv'}), unassigned {summary.unassigned}"
        )
        return partners_import, summary

    # --- people -------------------------------------------------------------------------
    async def _simulate(
        self, partners_import: partner_service.PartnerImportResult, owners_import: ImportSummary
    ) -> DemoResult:
        sb = self.sandbox
        codes = {c.advisor_code: c for c in partners_import.codes}
        partner_users: dict[str, int] = {}
        self.options.say("顾问注册并绑定车主圈 / partners register and bind their circles")
        for index, (advisor, issued) in enumerate(sorted(codes.items())):
            user_id = PARTNER_BASE_ID + index
            partner_users[advisor] = user_id
            await sb.add_user(user_id, first_name=issued.name, language_code="zh")
            await sb.send_text(user_id, user_id, f"/partner {issued.code}")
            await sb.wait_for_bot_message(user_id, contains="注册成功", timeout=15)
            for line in self._lines_of(advisor):
                title = f"{issued.name}的{labels('zh').product_line[line]}车主圈"
                chat = await sb.add_group(title, creator_id=user_id)
                await sb.add_bot_to_group(chat["id"], "administrator")
                await sb.send_text(user_id, chat["id"], f"/circle {line}")
                await sb.wait_for_bot_message(chat["id"], contains="绑定", timeout=15)
                self.circle_links[(user_id, line)] = (chat["id"], "")
        result = DemoResult(partners_import, owners_import)
        result.circles = len(self.circle_links)
        self.options.say("顾问发送 /invites 获取专属邀请链接 / partners fetch personal invite links")
        sims: list[SimOwner] = []
        for _advisor, user_id in sorted(partner_users.items()):
            await sb.send_text(user_id, user_id, "/invites")
            listing = await sb.wait_for_bot_message(user_id, contains="专属邀请链接", timeout=15)
            await sb.wait_for_bot_message(user_id, predicate=lambda m: "document" in m, timeout=15)
            sims.extend(self._pick_owners(listing["text"], user_id))
        failing = set(self.rng.sample(range(len(sims)), min(self.options.failures, len(sims))))
        self.options.say(f"{len(sims)} 位车主开始验证 / {len(sims)} owners start, verify, join and chat")
        self._sims = sims
        outcomes = await asyncio.gather(
            *(self._owner_journey(sim, fail=i in failing, delay=i * 0.05) for i, sim in enumerate(sims))
        )
        result.verified = sum(1 for ok in outcomes if ok)
        result.failed = sum(1 for ok in outcomes if not ok)
        await self._stranger_and_leaver(sims)
        result.transcript = self._transcript(sims, partner_users)
        return result

    def _lines_of(self, advisor: str) -> list[str]:
        assert self.app is not None
        with Session(self.app.engine) as session:
            lines = (
                session.execute(select(col(Owner.product_line)).where(col(Owner.advisor_code) == advisor).distinct())
                .scalars()
                .all()
            )
        return sorted(set(lines) or {ProductLine.passenger.value})

    def _pick_owners(self, listing: str, partner_user: int) -> list[SimOwner]:
        assert self.app is not None
        found = LINK.findall(listing)
        chosen = found[: self.options.owners_per_partner]
        sims = []
        with Session(self.app.engine) as session:
            for ref, _link, token in chosen:
                owner = session.execute(select(Owner).where(col(Owner.external_id) == ref)).scalars().first()
                if owner is None:
                    continue
                vin = (
                    session.execute(select(col(Vehicle.vin)).where(col(Vehicle.owner_id) == owner.id)).scalars().first()
                )
                sims.append(
                    SimOwner(
                        owner.id or 0,
                        ref,
                        owner.name,
                        token,
                        vin or "",
                        owner.phone,
                        partner_user,
                        OWNER_BASE_ID + (owner.id or 0),
                    )
                )
        return sims

    async def _owner_journey(self, sim: SimOwner, *, fail: bool, delay: float) -> bool:
        sb = self.sandbox
        await asyncio.sleep(delay)
        await sb.add_user(sim.telegram_id, first_name=sim.name[1:] or sim.name, language_code="zh")
        await sb.send_text(sim.telegram_id, sim.telegram_id, f"/start {sim.token}")
        # The greeting (one message, its not-an-owner hint last); answer once it is there.
        await sb.wait_for_bot_message(sim.telegram_id, contains="还没有购车", timeout=20)
        if fail:  # misreads the VIN until verification locks; the advisor is told and helps
            assert self.app is not None
            tries = self.app.settings.security.verify_max_failures_per_user
            for n in range(tries):
                await sb.send_text(sim.telegram_id, sim.telegram_id, _misread(sim.vin, n))
                await asyncio.sleep(0.3)
            await sb.wait_for_bot_message(sim.telegram_id, contains="顾问会尽快联系您", timeout=20)
            return False
        if sim.phone and self.rng.random() < 0.4:
            await sb.share_contact(sim.telegram_id, sim.phone.lstrip("+"), contact_user_id=sim.telegram_id)
        else:
            await sb.send_text(sim.telegram_id, sim.telegram_id, sim.vin[-6:].lower())
        await sb.wait_for_bot_message(sim.telegram_id, contains="验证成功", timeout=20)
        ask = await sb.wait_for_bot_message(sim.telegram_id, contains="熟悉", timeout=20)
        choice = self.rng.choice(_buttons(ask))
        await sb.press_button(sim.telegram_id, sim.telegram_id, ask["message_id"], choice["callback_data"])
        lang = await sb.wait_for_bot_message(sim.telegram_id, contains="语言", timeout=20)
        await sb.press_button(sim.telegram_id, sim.telegram_id, lang["message_id"], _buttons(lang)[0]["callback_data"])
        done = await sb.wait_for_bot_message(sim.telegram_id, contains="一切就绪", timeout=20)
        buttons = _buttons(done)
        if not buttons:
            return True
        join = await sb.join_via_link(sim.telegram_id, buttons[0]["url"])
        chat_id = _chat_of_link(self.sandbox, buttons[0]["url"])
        if join.get("status") == "joined" and chat_id is not None:
            await sb.wait_for_bot_message(chat_id, contains=sim.name, timeout=30)
            for _ in range(self.rng.randint(1, 3)):
                await sb.send_text(sim.telegram_id, chat_id, self.rng.choice(CHAT_LINES))
                await asyncio.sleep(0.2)
        return True

    async def _stranger_and_leaver(self, sims: list[SimOwner]) -> None:
        """A spammer who never verified posts a link (removed); one owner leaves (churn alert)."""
        sb = self.sandbox
        if not self.circle_links:
            return
        chat_id = next(iter(self.circle_links.values()))[0]
        link = next(iter(_links_of_chat(sb, chat_id)), None)
        if link:
            await sb.add_user(699_999, first_name="推广小王", language_code="zh")
            await sb.join_via_link(699_999, link)
            await sb.wait_for_bot_message(chat_id, contains="推广小王", timeout=20)
            await sb.send_text(699_999, chat_id, "低价配件 https://spam.example")
            await asyncio.sleep(0.5)
        members = [s for s in sims if sb.member_status(chat_id, s.telegram_id) == "member"]
        if members:
            leaver = members[-1]
            await sb.leave(leaver.telegram_id, chat_id)
            await sb.wait_for_bot_message(leaver.partner_user, contains="流失预警", timeout=20)

    async def _drain_outbox(self) -> None:
        await self.sandbox.wait_updates_consumed(timeout=20)
        await asyncio.sleep(1.0)

    def _personas(self) -> list[Persona]:
        """Who the simulated owners are: most stay engaged, some fade, a few go quiet."""
        personas = []
        for sim in self._sims:
            link_chat = next(
                (
                    chat
                    for (user, _line), (chat, _) in self.circle_links.items()
                    if user == sim.partner_user and self.sandbox.member_status(chat, sim.telegram_id) == "member"
                ),
                None,
            )
            roll = self.rng.random()
            kind = "engaged" if roll < 0.55 else "fading" if roll < 0.85 else "silent"
            personas.append(
                Persona(
                    sim.telegram_id, sim.owner_id, sim.partner_user, link_chat, kind, fades_on=self.rng.randint(3, 12)
                )
            )
        return [p for p in personas if self._verified(p.owner_id)]

    def _verified(self, owner_id: int) -> bool:
        assert self.app is not None
        with Session(self.app.engine) as session:
            owner = session.get(Owner, owner_id)
            return owner is not None and owner.telegram_user_id is not None

    def _write_reports(self, out: Path) -> tuple[str, list[str]]:
        """The matrix as a picture, the owners as Excel, as partners and operators get them,
        and the operations workbook (funnel, matrix, campaigns, referrals, churn reasons)."""
        assert self.app is not None
        settings = self.app.settings
        with Session(self.app.engine) as session:
            report = matrix_report(session, MatrixScope())
            png = render_matrix_png(report, locale=settings.locale, timezone=settings.timezone)
            xlsx, _rows = owners_xlsx(
                session, partner_id=None, masked=False, locale=settings.locale, timezone=settings.timezone
            )
            operations = operations_xlsx(
                session, window_days=settings.campaigns.conversion_window_days, min_group=settings.console.min_group
            )
        written = {"matrix.png": png, "owners.xlsx": xlsx, "operations.xlsx": operations}
        for name, data in written.items():
            (out / name).write_bytes(data)
        text = ", ".join(f"{cell} {n}" for cell, n in report.as_dict().items() if n)
        return text, [str(out / name) for name in written]

    # --- report -------------------------------------------------------------------------
    def _transcript(self, sims: list[SimOwner], partner_users: dict[str, int]) -> list[tuple[str, list[str]]]:
        sb = self.sandbox
        chats: list[tuple[str, int]] = []
        if sims:
            chats.append((f"车主 {sims[0].name} ↔ bot", sims[0].telegram_id))
        first_partner = next(iter(sorted(partner_users.items())))
        chats.append((f"顾问 {first_partner[0]} ↔ bot", first_partner[1]))
        if self.circle_links:
            chats.append(("车主圈 / circle", next(iter(self.circle_links.values()))[0]))
        out = []
        for title, chat_id in chats:
            lines = []
            for message in sb.messages(chat_id, include_deleted=True)[-14:]:
                who = "🤖" if message.get("from_bot") else (message.get("from", {}).get("first_name") or "?")
                text = message.get("text") or message.get("caption") or _service(message)
                if message.get("deleted"):
                    text = f"[removed] {text}"
                lines.append(f"{who}: {text.splitlines()[0] if text else ''}"[:110])
            out.append((title, lines))
        return out


def _misread(vin: str, n: int) -> str:
    """A plausible wrong VIN ending: the right one with one character misread."""
    ending = list(vin[-6:].upper() or "000000")
    position = n % len(ending)
    ending[position] = "0123456789"[(int(ending[position], 36) + 1 + n) % 10]
    return "".join(ending)


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def _chat_of_link(sb: Sandbox, link: str) -> int | None:
    record = sb.world.invite_links.get(link)
    return record.chat_id if record else None


def _links_of_chat(sb: Sandbox, chat_id: int) -> list[str]:
    return [link for link, record in sb.world.invite_links.items() if record.chat_id == chat_id]


def _service(message: dict[str, Any]) -> str:
    if "new_chat_members" in message:
        return "[joined]"
    if "left_chat_member" in message:
        return "[left]"
    if "document" in message:
        return f"[file {message['document'].get('file_name')}]"
    return ""


def run_demo(options: DemoOptions) -> DemoResult:
    return asyncio.run(Demo(options).run())


__all__ = ["DemoOptions", "DemoResult", "run_demo"]
