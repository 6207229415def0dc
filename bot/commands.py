"""Command menus per role, installed with setMyCommands scopes."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from bot.config import Settings

OWNER_COMMANDS = {
    "zh": [("start", "开始 / 验证车主身份"), ("mileage", "更新当前里程"), ("gifts", "我的礼品"),
           ("invite", "邀请好友"), ("stop", "暂停推送"),
           ("resume", "恢复推送"), ("help", "帮助")],
    "en": [("start", "Start / verify as an owner"), ("mileage", "Update your mileage"),
           ("gifts", "My gifts"), ("invite", "Invite a friend"), ("stop", "Pause promotions"), ("resume", "Resume promotions"), ("help", "Help")],
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
        ("help", "Help"),
    ],
}
OPERATOR_COMMANDS = {
    "zh": [("owners", "所有车主"), ("owner", "车主详情"), ("matrix", "分层矩阵"), ("handover", "顾问交接"), ("help", "帮助")],
    "en": [("owners", "All owners"), ("owner", "Owner profile"), ("matrix", "Segment matrix"), ("handover", "Hand over a partner"), ("help", "Help")],
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


async def install_default_commands(bot: Bot, settings: Settings) -> None:
    """Owner menu and description for everyone; operators get their menu per chat
    (partners get theirs when they register)."""
    for lang, text in DESCRIPTION.items():
        await bot.set_my_description(text, language_code=None if lang == settings.locale else lang)
    for lang in ("zh", "en"):
        code = None if lang == settings.locale else lang
        await bot.set_my_commands(
            _commands(OWNER_COMMANDS[lang]), scope=BotCommandScopeDefault(), language_code=code
        )
    for operator_id in settings.operator_ids:
        pairs = OPERATOR_COMMANDS.get(settings.locale, OPERATOR_COMMANDS["zh"])
        await bot.set_my_commands(_commands(pairs), scope=BotCommandScopeChat(chat_id=operator_id))


async def install_partner_commands(bot: Bot, chat_id: int, locale: str) -> None:
    pairs = PARTNER_COMMANDS.get(locale, PARTNER_COMMANDS["zh"])
    await bot.set_my_commands(_commands(pairs), scope=BotCommandScopeChat(chat_id=chat_id))
