"""Typed configuration: one object, built once in ``main()`` and injected.

Every knob lives here with its default so that ``autocircle config show`` can print the
effective configuration. ``flows`` and ``storage`` never see this object: the entry point
hands them plain values (a URL, a thresholds dataclass).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

TELEGRAM_API_BASE = "https://api.telegram.org"


class SegmentSettings(BaseModel):
    """Thresholds of DESIGN.md's segment rules (days, months, counts)."""

    active_max_days: int = 7
    declining_max_days: int = 30
    churned_max_days: int = 90
    novice_max_months: int = 6
    skilled_max_months: int = 36
    growing_after_actions: int = 3
    growing_after_days_online: int = 30
    mature_after_actions: int = 10
    mature_after_span_days: int = 60
    mature_after_referrals: int = 1
    mature_after_service_visits: int = 2


class CircleSettings(BaseModel):
    """Group moderation: what an owner circle allows from members not yet verified."""

    remove_unverified_links: bool = True
    join_requests: bool = False


class ImportSettings(BaseModel):
    """Owner import: batch size trades memory for speed."""

    batch_size: int = 2000


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
    redis_url: SecretStr | None = None
    operator_ids: list[int] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    segments: SegmentSettings = Field(default_factory=SegmentSettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)
    circles: CircleSettings = Field(default_factory=CircleSettings)


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data with secrets and URL passwords hidden."""
    data = settings.model_dump(mode="json")
    for key, value in list(data.items()):
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
