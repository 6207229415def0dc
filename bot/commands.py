"""The bot's profile: command menus per role (setMyCommands scopes) and its descriptions.

All of it is cosmetic: a server that lacks a method (a self-hosted or older Bot API server
without ``setMyDescription``), answers with an error or not at all must not stop the bot. Each
group of calls is tried on its own; a failure skips the rest of that group only and is
returned, so the caller logs one warning for all of them and runs on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from bot.config import Settings

OWNER_COMMANDS = {
    "zh": [
        ("start", "开始 / 验证车主身份"),
        ("mileage", "更新当前里程"),
        ("offers", "为您精选的优惠"),
        ("coupons", "我的优惠券"),
        ("points", "我的积分与会员等级"),
        ("gifts", "我的礼品"),
        ("invite", "邀请好友"),
        ("stop", "暂停推送"),
        ("resume", "恢复推送"),
        ("help", "帮助"),
    ],
    "en": [
        ("start", "Start / verify as an owner"),
        ("mileage", "Update your mileage"),
        ("offers", "Offers picked for you"),
        ("coupons", "My coupons"),
        ("points", "My points and member level"),
        ("gifts", "My gifts"),
        ("invite", "Invite a friend"),
        ("stop", "Pause promotions"),
        ("resume", "Resume promotions"),
        ("help", "Help"),
    ],
}
PARTNER_COMMANDS = {
    "zh": [
        ("invites", "未上线车主及专属邀请链接"),
        ("owners", "我的车主"),
        ("owner", "车主详情"),
        ("welcome", "设置车主圈欢迎语"),
        ("serviced", "记录完成保养"),
        ("followups", "建议跟进的车主"),
        ("campaign", "发起营销活动"),
        ("campaigns", "我的活动"),
        ("reasons", "流失原因"),
        ("post", "车主圈定时发帖"),
        ("posts", "我的定时帖子"),
        ("redeem", "核销礼品码"),
        ("converted", "记录意向客户成交"),
        ("top", "推荐排行榜"),
        ("matrix", "车主分层矩阵"),
        ("export", "导出车主 Excel"),
        ("earnings", "我的佣金"),
        ("tasks", "车主附近的运输任务"),
        ("deals", "我撮合的成交"),
        ("help", "帮助"),
    ],
    "en": [
        ("invites", "Owners not yet online, with invite links"),
        ("owners", "My owners"),
        ("owner", "Owner profile"),
        ("welcome", "Set the circle welcome text"),
        ("serviced", "Record a finished service"),
        ("followups", "Owners to contact in person"),
        ("campaign", "Start a campaign"),
        ("campaigns", "My campaigns"),
        ("reasons", "Churn reasons"),
        ("post", "Schedule a circle post"),
        ("posts", "Scheduled posts"),
        ("redeem", "Redeem a gift code"),
        ("converted", "Record a prospect's test drive or purchase"),
        ("top", "Referral leaderboard"),
        ("matrix", "Segment matrix"),
        ("export", "Owners as Excel"),
        ("earnings", "My commission"),
        ("tasks", "Transport tasks near my owners"),
        ("deals", "Deals I made"),
        ("help", "Help"),
    ],
}
#: what a commercial owner adds to the owner menu (bot.routers.capacity), set in their chat
#: when they are verified
COMMERCIAL_OWNER_EXTRA = {
    "zh": [
        ("vehicle", "登记车辆与运力"),
        ("available", "开始接单"),
        ("busy", "暂停接单"),
        ("mytasks", "我的运输任务"),
    ],
    "en": [
        ("vehicle", "Your vehicle and capacity"),
        ("available", "Take tasks again"),
        ("busy", "Pause tasks for a while"),
        ("mytasks", "My transport tasks"),
    ],
}
#: merchant staff (bot.routers.merchant), set in their chat when they register
MERCHANT_STAFF_COMMANDS = {
    "zh": [
        ("redeem", "核销优惠券"),
        ("undo", "撤销核销"),
        ("staffoffers", "本店优惠"),
        ("help", "帮助"),
    ],
    "en": [
        ("redeem", "Redeem a coupon"),
        ("undo", "Undo a redemption"),
        ("staffoffers", "This merchant's offers"),
        ("help", "Help"),
    ],
}
#: demand-side staff (bot.routers.demand), set in their chat when they register
DEMAND_STAFF_COMMANDS = {
    "zh": [
        ("post", "发布运输任务"),
        ("mytasks", "我的任务"),
        ("done", "任务完成"),
        ("canceltask", "取消任务"),
        ("cancel", "退出当前填写"),
        ("help", "帮助"),
    ],
    "en": [
        ("post", "Post a transport task"),
        ("mytasks", "My tasks"),
        ("done", "A task is done"),
        ("canceltask", "Cancel a task"),
        ("cancel", "Stop the current form"),
        ("help", "Help"),
    ],
}
OPERATOR_COMMANDS = {
    "zh": [
        ("owners", "所有车主"),
        ("owner", "车主详情"),
        ("matrix", "分层矩阵"),
        ("handover", "顾问交接"),
        ("help", "帮助"),
    ],
    "en": [
        ("owners", "All owners"),
        ("owner", "Owner profile"),
        ("matrix", "Segment matrix"),
        ("handover", "Hand over a partner"),
        ("help", "Help"),
    ],
}


GROUP_ONLY = frozenset({"circle"})  # sent in the partner's group, so not in a private menu


def staff_only() -> frozenset[str]:
    """Commands an owner may not run: the partner and operator menus, minus what owners share."""
    names = {c for table in (PARTNER_COMMANDS, OPERATOR_COMMANDS) for c, _ in table["en"]}
    return frozenset(names | GROUP_ONLY) - {c for c, _ in OWNER_COMMANDS["en"]}


def _commands(pairs: list[tuple[str, str]]) -> list[BotCommand]:
    return [BotCommand(command=c, description=d) for c, d in pairs]


DESCRIPTION = {
    "zh": "AutoCircle 车主圈：验证车主身份，加入您的专属车主圈，领取新人礼。",
    "en": "AutoCircle: verify as a car owner, join your owner circle, get your newcomer gift.",
}
SHORT_DESCRIPTION = {
    "zh": "车主圈：验证车主身份，加入车主圈，领取新人礼。",
    "en": "Owner circles: verify as an owner, join your circle, get your gift.",
}

log = logging.getLogger(__name__)

#: (Bot API method, why it failed) for each profile call group that did not go through.
ProfileFailure = tuple[str, str]
Call = Callable[[], Awaitable[object]]


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:120]


async def _group(method: str, calls: Sequence[Call], failures: list[ProfileFailure]) -> bool:
    """Run one method's calls in order; the first failure is recorded and ends the group
    (a server without the method would refuse every language alike)."""
    for call in calls:
        try:
            await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - cosmetic: any failure is a warning, never a crash
            failures.append((method, _reason(exc)))
            return False
    return True


async def install_default_commands(bot: Bot, settings: Settings) -> list[ProfileFailure]:
    """Descriptions and the owner menu for everyone, the operators' menu per chat (partners,
    merchant and demand staff get theirs when they register, commercial owners when they are
    verified). Never raises: returns what did not go through."""
    failures: list[ProfileFailure] = []

    def lang_code(lang: str) -> str | None:
        return None if lang == settings.locale else lang

    def describe(text: str, lang: str) -> Call:
        return lambda: bot.set_my_description(text, language_code=lang_code(lang))

    def short(text: str, lang: str) -> Call:
        return lambda: bot.set_my_short_description(text, language_code=lang_code(lang))

    def menu(lang: str) -> Call:
        return lambda: bot.set_my_commands(
            _commands(OWNER_COMMANDS[lang]), scope=BotCommandScopeDefault(), language_code=lang_code(lang)
        )

    def operator_menu(chat_id: int) -> Call:
        pairs = OPERATOR_COMMANDS.get(settings.locale, OPERATOR_COMMANDS["zh"])
        return lambda: bot.set_my_commands(_commands(pairs), scope=BotCommandScopeChat(chat_id=chat_id))

    await _group("setMyDescription", [describe(t, lang) for lang, t in DESCRIPTION.items()], failures)
    await _group("setMyShortDescription", [short(t, lang) for lang, t in SHORT_DESCRIPTION.items()], failures)
    await _group("setMyCommands", [menu(lang) for lang in ("zh", "en")], failures)
    await _group("setMyCommands (operators)", [operator_menu(i) for i in settings.operator_ids], failures)
    return failures


Menu = dict[str, list[tuple[str, str]]]


def menu_for(locale: str, *menus: Menu) -> list[tuple[str, str]]:
    """The menus one after another in ``locale`` (zh when the locale has none), each command
    once (the first menu's description wins), ``help`` last."""
    pairs: dict[str, str] = {}
    for menu in menus:
        for command, description in menu.get(locale, menu["zh"]):
            pairs.setdefault(command, description)
    help_text = pairs.pop("help", None)
    return [*pairs.items(), *([("help", help_text)] if help_text else [])]


async def install_chat_commands(bot: Bot, chat_id: int, who: str, pairs: list[tuple[str, str]]) -> bool:
    """A role's menu in one chat; a failure is one warning (the person is registered all the
    same, and the commands work without the menu)."""
    failures: list[ProfileFailure] = []
    done = await _group(
        "setMyCommands",
        [lambda: bot.set_my_commands(_commands(pairs), scope=BotCommandScopeChat(chat_id=chat_id))],
        failures,
    )
    if failures:
        log.warning("could not install the %s command menu for chat %s: %s", who, chat_id, failures[0][1])
    return done


async def install_partner_commands(bot: Bot, chat_id: int, locale: str) -> bool:
    """The partner menu in their chat (at ``/partner CODE``)."""
    return await install_chat_commands(bot, chat_id, "partner", menu_for(locale, PARTNER_COMMANDS))


async def install_staff_commands(bot: Bot, chat_id: int, locale: str, role: str, *, is_owner: bool = False) -> bool:
    """Merchant (``role="merchant"``) or demand (``role="demand"``) staff's menu in their chat,
    at registration; staff who are owners too keep the owner commands after theirs."""
    staff = MERCHANT_STAFF_COMMANDS if role == "merchant" else DEMAND_STAFF_COMMANDS
    menus = (staff, OWNER_COMMANDS) if is_owner else (staff,)
    return await install_chat_commands(bot, chat_id, f"{role} staff", menu_for(locale, *menus))


async def install_commercial_owner_commands(bot: Bot, chat_id: int, locale: str) -> bool:
    """A commercial owner's menu in their chat (when verified): the owner menu and capacity."""
    return await install_chat_commands(
        bot, chat_id, "commercial owner", menu_for(locale, OWNER_COMMANDS, COMMERCIAL_OWNER_EXTRA)
    )
