"""The gift catalogue: what each gift type is worth (in words, per locale) and how long it
stays valid. Defaults here; an operator-supplied catalogue may replace them (``grant`` takes
one), so changing a value text needs no code change elsewhere."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class GiftKind(str, enum.Enum):
    newcomer = "newcomer"
    first_order = "first_order"
    referral_reward = "referral_reward"
    winback = "winback"


@dataclass(frozen=True)
class GiftType:
    key: str
    value_zh: str
    value_en: str
    validity_days: int

    def value(self, locale: str | None) -> str:
        return self.value_en if locale == "en" else self.value_zh


DEFAULT_GIFT_TYPES: dict[str, GiftType] = {
    t.key: t
    for t in (
        GiftType(
            GiftKind.newcomer.value,
            "新车主礼包：免费基础保养检查一次",
            "Newcomer pack: one free basic maintenance check",
            30,
        ),
        GiftType(
            GiftKind.first_order.value,
            "首单立减 200 元（保养或精品）",
            "200 off your first order (service or accessories)",
            60,
        ),
        GiftType(
            GiftKind.referral_reward.value, "推荐奖励：免费洗车 3 次", "Referral reward: three free car washes", 90
        ),
        GiftType(GiftKind.winback.value, "老友回归礼：工时费 8 折", "Welcome back: 20% off labour", 30),
    )
}
