"""Typed configuration: one object, built once in ``main()`` and injected.

Every knob lives here so that ``autocircle config show`` can print the effective
configuration; a knob a flows policy also has takes its default from that policy's dataclass
(``Thresholds``, ``DeliveryPolicy``, ``ReferralPolicy``), so each default is written once.
``flows`` and ``storage`` never see this object: the entry point
hands them plain values (a URL, a thresholds dataclass).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.sender import SenderConfig  # the sending knobs, defined once there
from flows.delivery.delivery_rules import BestHour, DeliveryPolicy, QuietHours
from flows.growth.referrals import DEFAULT_POLICY as REFERRAL_DEFAULTS
from flows.growth.referrals import ReferralPolicy
from flows.membership.points import DEFAULT_AMOUNTS, DEFAULT_LEVELS, PointsPolicy
from flows.segments.rules import Thresholds
from flows.service.service_plan import DEFAULT_PLAN, DueRule, FaultPolicy, OdometerLimits, PlanItem, ServiceRules

if TYPE_CHECKING:
    from flows.opportunities.matching import MatchPolicy
    from flows.service.slots import SlotPolicy

TELEGRAM_API_BASE = "https://api.telegram.org"


_SEGMENTS = Thresholds()  # the segment rules' defaults, defined there


class SegmentSettings(BaseModel):
    """Thresholds of DESIGN.md's segment rules (days, months, counts); the defaults are
    ``flows.segments.rules.Thresholds``'."""

    active_max_days: int = _SEGMENTS.active_max_days
    declining_max_days: int = _SEGMENTS.declining_max_days
    churned_max_days: int = _SEGMENTS.churned_max_days
    novice_max_months: int = _SEGMENTS.novice_max_months
    skilled_max_months: int = _SEGMENTS.skilled_max_months
    growing_after_actions: int = _SEGMENTS.growing_after_actions
    growing_after_days_online: int = _SEGMENTS.growing_after_days_online
    mature_after_actions: int = _SEGMENTS.mature_after_actions
    mature_after_span_days: int = _SEGMENTS.mature_after_span_days
    mature_after_referrals: int = _SEGMENTS.mature_after_referrals
    mature_after_service_visits: int = _SEGMENTS.mature_after_service_visits


class CircleSettings(BaseModel):
    """Group moderation: what an owner circle allows from members not yet verified."""

    remove_unverified_links: bool = True
    join_requests: bool = False
    #: plain chatter is counted in memory and written every this many seconds (bot.circle_lane);
    #: 0 writes each message inside its update, as the routers do
    activity_flush_s: float = Field(default=1.0, ge=0, le=60)


class ReferralSettings(BaseModel):
    """The referral programme (老带新): how long a qualified referral is held before both
    sides are rewarded, how many a referrer may bring per calendar month, and the approved
    counts that earn a tier notice. The defaults are ``flows.growth.referrals.ReferralPolicy``'."""

    hold_days: int = Field(default=REFERRAL_DEFAULTS.hold.days, ge=0)
    monthly_cap: int = Field(default=REFERRAL_DEFAULTS.monthly_cap, ge=1)
    tiers: list[int] = Field(default_factory=lambda: list(REFERRAL_DEFAULTS.tiers))

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        if any(t < 1 for t in value) or value != sorted(set(value)):
            raise ValueError("tiers are distinct positive counts in ascending order, e.g. [1, 3, 5]")
        return value

    def policy(self, timezone: str) -> ReferralPolicy:
        return ReferralPolicy(
            hold=timedelta(days=self.hold_days),
            monthly_cap=self.monthly_cap,
            tiers=tuple(self.tiers),
            timezone=timezone,
        )


class CampaignSettings(BaseModel):
    """Partner campaigns: the control share held out of each campaign (sticky per owner)."""

    holdout_percent: int = Field(default=10, ge=0, lt=100)
    conversion_window_days: int = Field(
        default=7, ge=1, description="a goal event counts as a campaign's conversion only this many days after the send"
    )


class ImportSettings(BaseModel):
    """Owner import: batch size trades memory for speed."""

    batch_size: int = 2000


# --- service moments (issue 7) ----------------------------------------------------------------


class ServiceRuleSettings(BaseModel):
    """Every ``every_km`` or ``every_months`` after the last service, whichever comes first;
    the first service at ``first_km`` / ``first_months`` after purchase."""

    every_km: int = Field(default=10_000, gt=0)
    every_months: int = Field(default=12, gt=0)
    first_km: int = Field(default=5_000, gt=0)
    first_months: int = Field(default=6, gt=0)

    def rule(self) -> DueRule:
        return DueRule(self.every_km, self.every_months, self.first_km, self.first_months)


class ServicePlanItemSettings(BaseModel):
    """One line of the service plan; no interval means every service."""

    code: str
    every_km: int | None = Field(default=None, gt=0)
    every_months: int | None = Field(default=None, gt=0)
    aliases: list[str] = Field(default_factory=list)


class DealerSlotSettings(BaseModel):
    """A dealer's bookable service slots (used by the reminder flow's booking buttons)."""

    weekdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5])  # Monday = 0
    times: list[str] = Field(default_factory=lambda: ["09:00", "10:30", "14:00", "15:30"])
    per_slot: int = Field(default=1, gt=0)
    days_ahead: int = Field(default=14, gt=0)


def _default_plan() -> list[ServicePlanItemSettings]:
    return [
        ServicePlanItemSettings(code=i.code, every_km=i.every_km, every_months=i.every_months, aliases=list(i.aliases))
        for i in DEFAULT_PLAN
    ]


class ServiceSettings(BaseModel):
    """Maintenance: due rules (default and per model), the service plan, odometer
    plausibility, the telematics endpoint and fault alerts, reminder windows and dealer slots.

    The telematics endpoint is served only when ``telematics_secret`` is set: with
    ``autocircle run --webhook`` on the webhook's own server, when polling on
    ``telematics_host:telematics_port`` (port 0: not served)."""

    rule: ServiceRuleSettings = Field(default_factory=ServiceRuleSettings)
    models: dict[str, ServiceRuleSettings] = Field(default_factory=dict)
    plan: list[ServicePlanItemSettings] = Field(default_factory=_default_plan)
    prediction_min_days: int = Field(default=14, ge=1)
    max_km_per_day: int = Field(default=1_500, gt=0)
    remind_within_km: int = 1_000
    remind_within_days: int = 14
    telematics_secret: SecretStr | None = None
    telematics_host: str = "127.0.0.1"
    telematics_port: int = 8090
    telematics_max_readings: int = Field(default=1_000, gt=0)
    fault_alert_max_age_hours: int = Field(default=48, gt=0)
    fault_reopen_days: int = Field(default=7, gt=0)
    dealer_slots: dict[str, DealerSlotSettings] = Field(default_factory=dict)  # dealer code; "*" = any
    batch_size: int = Field(default=500, gt=0)  # service and telematics file imports

    def rules(self) -> ServiceRules:
        return ServiceRules(
            default=self.rule.rule(),
            by_model=tuple((name, rule.rule()) for name, rule in self.models.items()),
            plan=tuple(PlanItem(i.code, i.every_km, i.every_months, tuple(i.aliases)) for i in self.plan),
            min_span_days=self.prediction_min_days,
        )

    def limits(self, timezone: str) -> OdometerLimits:
        return OdometerLimits(max_km_per_day=self.max_km_per_day, timezone=timezone)

    def fault_policy(self) -> FaultPolicy:
        return FaultPolicy(
            alert_max_age=timedelta(hours=self.fault_alert_max_age_hours),
            reopen_after=timedelta(days=self.fault_reopen_days),
        )

    def slot_policies(self) -> dict[str, SlotPolicy]:
        """``dealer_slots`` as plain values for ``flows.service.bookings`` (handlers, the job, the demo)."""
        from flows.service.slots import SlotPolicy

        return {code: SlotPolicy.of(value) for code, value in self.dealer_slots.items()}


_DELIVERY = DeliveryPolicy()  # the delivery rules' defaults, defined there
_DAY = timedelta(days=1)


class DeliverySettings(SenderConfig):
    """Delivery knobs (``AUTOCIRCLE_DELIVERY__RATE_PER_S`` …): quiet hours, the marketing cap,
    and, inherited from ``bot.sender.SenderConfig`` where they are defined once, Telegram's
    limits as the sender sees them and the crash window. The defaults of the rules' own
    knobs are ``flows.delivery.delivery_rules.DeliveryPolicy``'s (and its ``BestHour``'s)."""

    model_config = ConfigDict(extra="ignore")

    quiet_hours: str = Field(_DELIVERY.quiet_hours.text(), description="local quiet hours; 'off' for none")
    marketing_cap: int = Field(_DELIVERY.marketing_cap, description="marketing pushes per owner per cap window")
    cap_window_days: float = _DELIVERY.cap_window / _DAY
    staff_quiet_hours: bool = Field(
        _DELIVERY.staff_quiet_hours, description="quiet hours also for partner/operator notices"
    )
    best_hour: bool = Field(
        _DELIVERY.best_hour.enabled, description="marketing pushes at the owner's usual hour (issue 15)"
    )
    best_hour_plain_percent: int = Field(
        _DELIVERY.best_hour.plain_percent, ge=0, le=100, description="sticky share on the plain schedule"
    )
    best_hour_lookback_days: int = Field(
        _DELIVERY.best_hour.lookback.days, ge=1, description="days of activity the best hour reads"
    )
    best_hour_min_events: int = Field(
        _DELIVERY.best_hour.min_events, ge=1, description="meaningful events before an hour is trusted"
    )

    def policy(self, timezone: str, staff_chat_ids: Iterable[int] = ()) -> DeliveryPolicy:
        return DeliveryPolicy(
            timezone=timezone,
            quiet_hours=QuietHours.parse(self.quiet_hours),
            marketing_cap=self.marketing_cap,
            cap_window=timedelta(days=self.cap_window_days),
            staff_quiet_hours=self.staff_quiet_hours,
            staff_chat_ids=frozenset(staff_chat_ids),
            best_hour=BestHour(
                enabled=self.best_hour,
                plain_percent=self.best_hour_plain_percent,
                lookback=timedelta(days=self.best_hour_lookback_days),
                min_events=self.best_hour_min_events,
            ),
        )

    def sender_config(self) -> SenderConfig:
        """The sender's own knobs (the fields this class inherits)."""
        return SenderConfig(**self.model_dump(include=set(SenderConfig.model_fields)))


class SecuritySettings(BaseModel):
    """Limits that make guessing and replay useless (issue 11)."""

    verify_max_failures_per_user: int = Field(
        default=5, ge=1, description="failed verifications per Telegram user per window"
    )
    verify_max_failures_per_owner: int = Field(
        default=10, ge=1, description="failed verifications per owner record per window"
    )
    verify_window_hours: float = Field(default=24.0, gt=0)
    invite_valid_days: int = Field(default=30, ge=1, description="how long an owner's personal link works")
    telematics_max_body_bytes: int = Field(default=1_000_000, gt=0)
    telematics_max_depth: int = Field(default=8, ge=1)
    telematics_max_age_s: int = Field(default=300, gt=0, description="a signed body older than this is a replay")


class ConsoleSettings(BaseModel):
    """The web console and the Mini App (issue 15): where it is reached and how long sign-ins live."""

    public_url: str | None = Field(
        default=None,
        description="Base URL of the console as people open it (https://… behind a proxy); links from /console start with it",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535, description="`autocircle web` listen port")
    link_minutes: int = Field(default=10, ge=1, description="how long a /console sign-in link works (once)")
    session_hours: float = Field(default=12.0, gt=0, description="how long a signed-in browser stays signed in")
    max_failures: int = Field(
        default=10, ge=1, description="failed sign-ins per client address per window before refusal"
    )
    failure_window_minutes: int = Field(default=15, ge=1)
    init_data_max_age_s: int = Field(default=86400, gt=0, description="Mini App initData older than this is refused")
    page_size: int = Field(default=50, ge=1, le=500)
    min_group: int = Field(default=30, ge=1, description="campaign groups smaller than this: 'too few owners to tell'")


class MerchantSettings(BaseModel):
    """Coupons and commission (issue 13)."""

    undo_window_hours: float = Field(default=24.0, gt=0, description="a redemption can be undone this long")
    freeze_days: float = Field(default=7.0, ge=0, description="a commission line settles after this freeze")
    offers_shown: int = Field(default=5, ge=1, le=20, description="offers listed by /offers")

    @model_validator(mode="after")
    def _undo_before_settling(self) -> MerchantSettings:
        """An undo cancels only a pending commission line: one allowed after the freeze would
        leave a settled line standing for a redemption that no longer exists."""
        if self.freeze_days * 24 < self.undo_window_hours:
            raise ValueError(
                f"merchants: freeze_days ({self.freeze_days:g} days) must cover undo_window_hours "
                f"({self.undo_window_hours:g} h), or an undo after the freeze leaves a settled commission standing"
            )
        return self


class MembershipSettings(BaseModel):
    """Points and levels (issue 13)."""

    points: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_AMOUNTS))
    circle_daily_cap: int = Field(default=5, ge=0, description="circle activity lines per owner per day")
    levels: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_LEVELS),
        description="level -> lifetime points needed (银卡/金卡/黑卡)",
    )

    def policy(self, timezone: str) -> PointsPolicy:
        """The plain values the membership rules take (flows never see the settings)."""
        return PointsPolicy(
            amounts=dict(self.points),
            circle_daily_cap=self.circle_daily_cap,
            levels=tuple(sorted(self.levels.items(), key=lambda t: t[1])),
            timezone=timezone,
        )


class OpportunitySettings(BaseModel):
    """Matching tasks to commercial owners in waves (issue 14): ``AUTOCIRCLE_OPPORTUNITIES__<NAME>``."""

    wave_size: int = Field(default=5, ge=1, le=50, description="owners offered a task per wave")
    wave_radii_km: list[float] = Field(
        default_factory=lambda: [50.0, 150.0, 300.0],
        min_length=1,
        description="the pickup search radius of wave 1, 2, 3 … (km, widening)",
    )
    wave_timeout_minutes: float = Field(default=15.0, gt=0, description="the next, wider wave goes out after this")
    partner_tasks_shown: int = Field(default=10, ge=1, le=30, description="open tasks a partner's /tasks lists")

    def policy(self, operator_ids: list[int] | tuple[int, ...] = ()) -> MatchPolicy:
        """The matching's plain values (flows never see the settings object)."""
        from flows.opportunities.matching import MatchPolicy

        return MatchPolicy(
            per_wave=self.wave_size,
            wave_radii_km=tuple(sorted(self.wave_radii_km)),
            wave_timeout=timedelta(minutes=self.wave_timeout_minutes),
            operator_ids=tuple(operator_ids),
        )


class ScaleSettings(BaseModel):
    """Several bot processes (issue 16): ``AUTOCIRCLE_SCALE__<NAME>``."""

    leader_takeover_s: float = Field(30.0, gt=0, description="a dead scheduler leader is replaced within this")
    chat_lock_s: float = Field(
        60.0, gt=0, description="a chat's update lock expires after this (a killed process's chats wait at most this)"
    )
    update_ttl_s: float = Field(86_400.0, gt=0, description="handled update ids are remembered this long")
    share_limits: bool = Field(
        True, description="with Redis: senders and replies share the rate, the chat's limit and 429 pauses"
    )
    reply_share: float = Field(
        0.2, ge=0, le=0.9, description="shared limits: the rate's share senders leave to replies"
    )
    update_budget_s: float = Field(
        20.0,
        gt=0,
        description="a reply waits for Telegram's limits until its update is this old, then it is redelivered",
    )
    log_format: str = Field("text", pattern="^(text|json)$", description="text or json (one object per line)")
    ops_host: str = Field("0.0.0.0", description="sender/scheduler roles: where /healthz, /readyz, /metrics listen")
    ops_port: int = Field(
        9100, description="sender/scheduler roles: their health and metrics port (web: the webhook port)"
    )


class Settings(BaseSettings):
    """AutoCircle settings, read from ``AUTOCIRCLE_*`` variables and an optional ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOCIRCLE_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / 'autocircle.db'}",
        description="SQLAlchemy URL; sqlite:///file.db or postgresql+psycopg://user:pw@host/db",
    )
    bot_token: SecretStr | None = None
    api_base: str = TELEGRAM_API_BASE
    bot_username: str = Field(
        default="autocircle_bot",
        description="The bot's @username, for deep links made outside the bot (CLI exports)",
    )
    timezone: str = "Asia/Shanghai"
    locale: str = "zh"
    flows_dir: Path | None = Field(
        default=None,
        description="The flow library folder (flow files and playbook.yaml); unset: the one "
        "shipped in the package. Operators copy it out and edit their own.",
    )
    redis_url: SecretStr | None = None
    stop_grace_s: float = Field(
        default=10.0,
        gt=0,
        description="After SIGTERM/SIGINT the bot stops within this many seconds, even under load "
        "(in-flight updates and the sender get most of it; past it the process exits anyway).",
    )
    operator_ids: list[int] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    segments: SegmentSettings = Field(default_factory=SegmentSettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)
    circles: CircleSettings = Field(default_factory=CircleSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    referrals: ReferralSettings = Field(default_factory=ReferralSettings)
    campaigns: CampaignSettings = Field(default_factory=CampaignSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    merchants: MerchantSettings = Field(default_factory=MerchantSettings)
    membership: MembershipSettings = Field(default_factory=MembershipSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    opportunities: OpportunitySettings = Field(default_factory=OpportunitySettings)

    def flow_library_dir(self) -> Path:
        """The flow folder in use: ``flows_dir`` when set, else the shipped library."""
        from flows.engine.flow_files import FLOWS_DIR

        return self.flows_dir or FLOWS_DIR

    def segment_thresholds(self) -> Thresholds:
        """The segment rules' plain values (flows never see the settings object)."""
        return Thresholds.from_values(self.segments.model_dump(), self.timezone)

    def referral_policy(self) -> ReferralPolicy:
        """The referral programme's plain values, months counted in ``timezone``."""
        return self.referrals.policy(self.timezone)


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data with secrets and URL passwords hidden."""
    data = settings.model_dump(mode="json")
    for key, _value in list(data.items()):
        field_value = getattr(settings, key)
        if isinstance(field_value, SecretStr):
            data[key] = _mask_secret(field_value.get_secret_value())
    data["database_url"] = _mask_url_password(settings.database_url)
    return data


def _mask_secret(value: str) -> str:
    if not value:
        return ""
    return value[:4] + "…" + "*" * 6 if len(value) > 8 else "******"


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as is; the engine will refuse it
        return url
    if parsed.password:
        return parsed.render_as_string(hide_password=True)
    return url
