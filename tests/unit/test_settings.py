"""Settings that flows receive as plain values: referral and campaign knobs from the
environment, validated, and turned into the policies the flows use."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

import pytest
from pydantic import ValidationError

from bot.config import SegmentSettings, Settings
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.growth.referrals import ReferralPolicy
from flows.segments.rules import Thresholds


def test_referral_policy_defaults_follow_the_issue() -> None:
    policy = Settings(database_url="sqlite://").referral_policy()
    assert policy == ReferralPolicy(hold=timedelta(days=14), monthly_cap=5, tiers=(1, 3, 5), timezone="Asia/Shanghai")


def test_referral_and_campaign_knobs_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCIRCLE_REFERRALS__HOLD_DAYS", "7")
    monkeypatch.setenv("AUTOCIRCLE_REFERRALS__MONTHLY_CAP", "2")
    monkeypatch.setenv("AUTOCIRCLE_REFERRALS__TIERS", "[1, 2, 10]")
    monkeypatch.setenv("AUTOCIRCLE_CAMPAIGNS__HOLDOUT_PERCENT", "20")
    monkeypatch.setenv("AUTOCIRCLE_TIMEZONE", "Europe/Berlin")
    settings = Settings(database_url="sqlite://")
    assert settings.referral_policy() == ReferralPolicy(timedelta(days=7), 2, (1, 2, 10), "Europe/Berlin")
    assert settings.campaigns.holdout_percent == 20


@pytest.mark.parametrize("tiers", [[3, 1], [0, 2], [1, 1]])
def test_tiers_must_be_distinct_positive_and_ascending(tiers: list[int]) -> None:
    with pytest.raises(ValidationError, match="ascending"):
        Settings(database_url="sqlite://", referrals={"tiers": tiers})


@pytest.mark.parametrize("field", [{"referrals": {"monthly_cap": 0}}, {"campaigns": {"holdout_percent": 100}}])
def test_out_of_range_knobs_are_refused(field: dict) -> None:
    with pytest.raises(ValidationError):
        Settings(database_url="sqlite://", **field)


def test_each_policy_default_is_the_flows_dataclass_default() -> None:
    """Settings take the defaults of the knobs flows policies also have from those
    dataclasses (issue 12, item 6): the defaults build the dataclasses' own default values,
    and every segment threshold is a setting."""
    settings = Settings(database_url="sqlite://")
    assert settings.delivery.policy(settings.timezone) == DeliveryPolicy(timezone=settings.timezone)
    assert settings.segment_thresholds() == Thresholds(timezone=settings.timezone)
    assert settings.referral_policy() == ReferralPolicy(timezone=settings.timezone)
    assert set(SegmentSettings.model_fields) == {f.name for f in fields(Thresholds)} - {"timezone"}
    assert settings.delivery.quiet_hours == "21:00-08:00"  # the env form of QuietHours() (QuietHours.text)


@pytest.mark.parametrize(
    "merchants", [{"undo_window_hours": 48, "freeze_days": 1}, {"freeze_days": 0}, {"undo_window_hours": 170}]
)
def test_the_freeze_must_cover_the_undo_window(merchants: dict) -> None:
    with pytest.raises(ValidationError, match=r"freeze_days .* must cover undo_window_hours"):
        Settings(database_url="sqlite://", merchants=merchants)


def test_a_freeze_as_long_as_the_undo_window_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCIRCLE_MERCHANTS__UNDO_WINDOW_HOURS", "48")
    monkeypatch.setenv("AUTOCIRCLE_MERCHANTS__FREEZE_DAYS", "2")
    assert Settings(database_url="sqlite://").merchants.freeze_days == 2
