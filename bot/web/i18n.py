"""The console's words in zh and en: one table, so both locales always have every label.
The product's vocabulary (segment names, product lines, funnel stages, "all lines", campaign
statuses and template names) is not repeated here: it comes from ``flows.templating.labels``
(``templates/<locale>/labels.yaml``)."""

from __future__ import annotations

import logging
from functools import lru_cache

from flows.templating import labels

log = logging.getLogger(__name__)
_MISSING: set[tuple[str, str]] = set()  # (locale, key) already warned about

WORDS: dict[str, tuple[str, str]] = {  # key: (zh, en)
    "brand": ("车主圈 · 控制台", "AutoCircle console"),
    "overview": ("总览", "Overview"),
    "matrix": ("分层矩阵", "Matrix"),
    "movement": ("层间流动", "Movement"),
    "flows": ("流程", "Flows"),
    "playbook": ("策略表", "Playbook"),
    "campaigns": ("活动", "Campaigns"),
    "delivery": ("送达健康", "Delivery health"),
    "churn": ("流失原因", "Churn reasons"),
    "gifts": ("礼品与推荐", "Gifts and referrals"),
    "owners": ("车主", "Owners"),
    "sessions": ("登录会话", "Sessions"),
    "sign_out": ("退出登录", "Sign out"),
    "sign_in": ("登录", "Sign in"),
    "sign_in_title": ("登录控制台", "Sign in to the console"),
    "sign_in_hint": ("此链接只能使用一次。点击按钮登录。", "This link works once. Press the button to sign in."),
    "link_invalid": (
        "此登录链接已失效（已使用或已过期）。请在机器人中重新发送 /console。",
        "This sign-in link is no longer valid (used or expired). Send /console to the bot again.",
    ),
    "too_many": ("尝试次数过多，请稍后再试。", "Too many attempts; try again later."),
    "signed_out": ("已退出登录。", "Signed out."),
    "need_sign_in": (
        "请先登录：在机器人中发送 /console 获取登录链接。",
        "Please sign in: send /console to the bot for a sign-in link.",
    ),
    "forbidden": ("你没有权限查看此页面。", "You may not see this page."),
    "not_found": ("页面不存在。", "No such page."),
    "error": ("出错了，我们已记录。请稍后再试。", "Something went wrong; it has been logged. Please try again."),
    "bad_request": ("请求无效。", "Bad request."),
    "csrf": ("表单已过期，请刷新页面后重试。", "The form has expired; reload the page and try again."),
    "funnel": ("漏斗", "Funnel"),
    "per_dealer": ("按经销商", "Per dealer"),
    "per_partner": ("按顾问", "Per partner"),
    "rarra": ("RARRA 阶段", "RARRA stages"),
    "retention": ("留存", "Retention"),
    "activation": ("激活", "Activation"),
    "referral": ("推荐", "Referral"),
    "revenue": ("收入", "Revenue"),
    "acquisition": ("获客", "Acquisition"),
    "rarra_note": (
        "占已上线车主的比例：留存＝活跃或衰退；激活＝成长或成熟；推荐＝有成功推荐；收入＝有到店保养；获客＝推荐带来的新车主。",
        "Share of owners online: retention = active or declining; activation = growing or mature; referral = has an approved referral; revenue = has a service visit; acquisition = friends brought by referral.",
    ),
    "partner": ("顾问", "Partner"),
    "dealer": ("经销商", "Dealer"),
    "total": ("合计", "Total"),
    "unassigned": ("未分配顾问", "(unassigned)"),
    "as_of": ("计算于", "as of"),
    "never": ("分层尚未计算", "segments not computed yet"),
    "counts_as_of": ("数字截至", "figures as of"),
    "counts_live": ("实时数字", "live figures"),
    "owners_of_cell": ("该层车主", "Owners in this cell"),
    "name": ("姓名", "Name"),
    "phone": ("手机", "Phone"),
    "vin": ("VIN", "VIN"),
    "stage": ("阶段", "Stage"),
    "cell": ("分层", "Cell"),
    "last_active": ("最近活跃", "Last active"),
    "page": ("页", "page"),
    "prev": ("上一页", "Previous"),
    "next": ("下一页", "Next"),
    "of": ("共", "of"),
    "moves": ("层间变化（近 30 天）", "Moves between cells (last 30 days)"),
    "from": ("从", "from"),
    "to": ("到", "to"),
    "count": ("人数", "owners"),
    "goals": ("阶段目标", "Stage goals"),
    "base": ("基数", "base"),
    "reached": ("达成", "reached"),
    "rate": ("比例", "rate"),
    "weekly": ("每周上升 / 下降", "Moves up / down per week"),
    "up": ("上升", "up"),
    "down": ("下降", "down"),
    "flow": ("流程", "Flow"),
    "entered": ("进入", "entered"),
    "sent": ("已发送", "sent"),
    "skipped": ("跳过", "skipped"),
    "goal_reached": ("达成目标", "goal reached"),
    "exited": ("退出", "exited"),
    "done": ("完成", "done"),
    "runs_note": (
        "每位车主每次运行只计一次；“未进入”按车主计（进入规则拒绝，没有运行）。",
        "Each owner counts once per run; 'not entered' counts owners the entry rules refused (no run).",
    ),
    "refused": ("未进入", "not entered"),
    "status": ("状态", "Status"),
    "cells": ("分层", "Cells"),
    "audience": ("受众", "Audience"),
    "treated": ("实验组", "Treated"),
    "holdout": ("对照组", "Held out"),
    "converted": ("转化", "converted"),
    "uplift": ("提升", "Uplift"),
    "window": ("转化窗口", "Conversion window"),
    "days": ("天", "days"),
    "too_few": ("人数太少，无法判断", "too few owners to tell"),
    "ci": ("95% 区间", "95% interval"),
    "pp": ("个百分点", "pp"),
    "cancel": ("取消", "Cancel"),
    "cancelled": ("已取消", "Cancelled."),
    "best_hour": ("最佳时段", "Best hour"),
    "best_hour_on": ("按最佳时段", "at their best hour"),
    "best_hour_plain": ("按常规时间", "plain schedule"),
    "best_hour_off": ("（已关闭）", "(turned off)"),
    "best_hour_note": (
        "近 30 天的营销推送中，24 小时内有有效互动的比例（95% 区间）。",
        "Marketing pushes of the last 30 days followed by a meaningful event within 24 h (95% intervals).",
    ),
    "queue": ("队列", "Queue now"),
    "failed": ("失败", "failed"),
    "latency": ("排队时长 p50 / p95", "Queue time p50 / p95"),
    "reason": ("原因", "Reason"),
    "answered": ("回答人数", "answered"),
    "won_back": ("挽回", "won back"),
    "gift": ("礼品", "Gift"),
    "granted": ("已发放", "granted"),
    "redeemed": ("已核销", "redeemed"),
    "expired": ("已过期", "expired"),
    "leaderboard": ("推荐排行", "Referral leaderboard"),
    "approved": ("成功", "approved"),
    "pending": ("待定", "pending"),
    "void": ("无效", "void"),
    "timeline": ("时间线", "Timeline"),
    "when": ("时间", "When"),
    "what": ("内容", "What"),
    "kind": ("类别", "Kind"),
    "search": ("搜索", "Search"),
    "search_hint": ("姓名或编号开头", "name or reference prefix"),
    "signed_in_as": ("已登录", "Signed in as"),
    "revoke": ("注销", "Revoke"),
    "revoke_all": ("注销全部会话", "Sign out everywhere"),
    "created": ("创建于", "Created"),
    "expires": ("过期", "Expires"),
    "client": ("客户端", "Client"),
    "this_one": ("当前", "this one"),
    "nothing": ("暂无数据。", "Nothing yet."),
    "loading": ("加载中…", "Loading…"),
    "mini_unauth": (
        "无法验证你的 Telegram 身份。请从机器人的菜单按钮打开。",
        "Your Telegram identity could not be verified. Open this from the bot's menu button.",
    ),
    "masked_note": ("手机号与 VIN 已部分隐藏。", "Phones and VINs are partly hidden."),
    "language": ("English", "中文"),
    "new_campaign": ("新建活动", "New campaign"),
    "campaign": ("活动", "Campaign"),
    "no_partners": ("还没有顾问，无法创建活动。", "There are no partners yet, so no campaign can be made."),
    "line": ("车型线", "Product line"),
    "show_counts": ("显示人数", "Show counts"),
    "pick_cells": ("选择分层", "Pick the cells"),
    "reachable_note": (
        "每格为可触达车主数（已认证、已关联 Telegram、未退订）。",
        "Each cell shows the owners who can be reached (verified, on Telegram, not opted out).",
    ),
    "message": ("消息", "Message"),
    "own_text": ("自己写", "Write my own"),
    "own_text_hint": ("你的消息（仅纯文本）", "Your message (plain text)"),
    "create_preview": ("创建并预览", "Create and preview"),
    "preview": ("预览", "Preview"),
    "recipients": ("将收到", "Will receive"),
    "sample": ("车主将看到", "What owners will see"),
    "send": ("发送", "Send"),
    "send_now": ("立即发送", "Send now"),
    "schedule": ("定时发送", "Schedule"),
    "window_note": (
        "只有发送后这些天内的目标事件（预约、核销礼品）才算转化。",
        "Only a goal event (a booking, a redeemed gift) this many days after the send counts as a conversion.",
    ),
    "send_at": ("发送时间", "Send at"),
    "results": ("结果", "Results"),
    # the supply side: offers, merchants, settlement, commercial tasks, staff Mini App homes
    "offers": ("优惠", "Offers"),
    "offer": ("优惠", "Offer"),
    "merchants": ("商户", "Merchants"),
    "merchant": ("商户", "Merchant"),
    "settlement": ("结算", "Settlement"),
    "tasks": ("商机任务", "Tasks"),
    "task": ("任务", "Task"),
    "title": ("标题", "Title"),
    "category": ("类别", "Category"),
    "stock_left": ("剩余库存", "Stock left"),
    "unlimited": ("不限", "unlimited"),
    "issued": ("已领取", "issued"),
    "all": ("全部", "all"),
    "staff": ("员工", "Staff"),
    "city": ("城市", "City"),
    "live_offers": ("上线优惠", "live offers"),
    "redemptions": ("核销", "redemptions"),
    "inactive": ("已停用", "inactive"),
    "month": ("月份", "Month"),
    "show": ("查看", "Show"),
    "settled": ("已结算（元）", "settled (yuan)"),
    "pending_yuan": ("待结算（元）", "pending (yuan)"),
    "per_merchant_owes": ("按商户（应付佣金）", "Per merchant (what they owe)"),
    "per_partner_earned": ("按顾问（所得佣金）", "Per partner (what they earned)"),
    "settlement_note": (
        "与结算报表（report settlement）相同：当月产生的佣金，已过冻结期的为已结算，撤销的不计金额。",
        "The same totals as the settlement workbook (report settlement): commission lines of the month, settled after the freeze; undone ones count no money.",
    ),
    "own_commission_note": ("只显示你自己的佣金。", "Only your own commission is shown."),
    "state": ("状态", "State"),
    "demand_side": ("需求方", "Demand side"),
    "route": ("路线", "Route"),
    "window_time": ("时间窗口", "Window"),
    "vehicle": ("车型", "Vehicle"),
    "price": ("价格（元）", "Price (yuan)"),
    "quote": ("询价", "ask for quotes"),
    "assigned_owner": ("承接车主", "Assigned owner"),
    "not_yours": ("其他顾问的车主", "another partner's owner"),
    "partner_tasks_note": (
        "你的车主收到过、承接了或归属于你的任务。",
        "Tasks offered to or taken by your owners, or attributed to you.",
    ),
    "transitions": ("状态记录", "State changes"),
    "actor": ("操作人", "Who"),
    "today": ("今天", "today"),
    "this_month": ("本月", "this month"),
    "redeemed_today": ("今日核销", "Redeemed today"),
    "redeemed_month": ("本月核销", "Redeemed this month"),
    "owe": ("本月应付佣金", "Commission you owe this month"),
    "owe_note": ("已结算 / 待结算（元），撤销的不计。", "settled / pending (yuan); undone ones do not count."),
    "your_tasks": ("你的任务", "Your tasks"),
    "back": ("返回", "Back"),
    "os_draft": ("草稿", "draft"),
    "os_live": ("上线", "live"),
    "os_paused": ("暂停", "paused"),
    "os_ended": ("已结束", "ended"),
    "ts_open": ("待匹配", "open"),
    "ts_offered": ("已推送", "offered"),
    "ts_assigned": ("已承接", "assigned"),
    "ts_in_progress": ("进行中", "in progress"),
    "ts_done": ("已完成", "done"),
    "ts_cancelled": ("已取消", "cancelled"),
    "ts_expired": ("已过期", "expired"),
    "mk_after_sales": ("车后服务", "after-sales"),
    "mk_car_life": ("车生活", "car life"),
    "undone_n": ("已撤销", "undone"),
    # the movement report's stage goals (flows.segments.matrix_report.GOALS)
    "beginner_to_growing": ("初级→成长", "beginner → growing"),
    "growing_to_mature": ("成长→成熟", "growing → mature"),
    "asleep_to_active": ("沉睡/流失→活跃", "dormant or churned → active"),
    "declining_to_active": ("衰退→活跃", "declining → active"),
    # message classes (storage.models.MessageClass)
    "reply": ("回复", "reply"),
    "transactional": ("事务通知", "transactional"),
    "marketing": ("营销", "marketing"),
}


@lru_cache(maxsize=4)
def _table(locale: str) -> dict[str, str]:
    """Every word of ``locale``, built once: the vocabulary catalogue (a campaign's status as
    ``st_<status>``), then the console's own."""
    index = 1 if locale == "en" else 0
    vocabulary = labels(locale)
    statuses = {f"st_{status}": word for status, word in vocabulary.campaign_status.items()}
    return {**vocabulary.words(), **statuses, **{key: pair[index] for key, pair in WORDS.items()}}


class Translator:
    """``t(key)`` in the templates: the word of ``key`` in the locale. A key with no word shows
    as itself and is logged once (a warning per locale and key), so a missing label is found in
    the log rather than by a reader of the Chinese page; ``quiet=True`` is for values that may
    legitimately have no word (a failure's free-text reason). ``t.cell("growing/active")``
    names a matrix cell in words."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self.table = _table(locale)

    def __call__(self, key: str, quiet: bool = False) -> str:
        word = self.table.get(key)
        if word is not None:
            return word
        if not quiet and (self.locale, key) not in _MISSING:
            _MISSING.add((self.locale, key))
            log.warning("console: no %s word for %r; shown as the key", self.locale, key)
        return key

    def cell(self, key: str) -> str:
        """``maturity/activity`` (or ``not_online``) in words: 成长/活跃."""
        if "/" not in key:
            return self(key)
        maturity, _, activity = key.partition("/")
        return f"{self(maturity)}/{self(activity)}"


def translator(locale: str) -> Translator:
    return Translator(locale)
