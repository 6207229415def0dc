"""End-to-end fixtures: the local Bot API sandbox, the bot harness on it, app clocks and the
flows handle. The helpers themselves live in ``tests/support``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time

import pytest

from flows.delivery.clock import FrozenClock
from flows.engine.playbook import Library, load_library
from tests.support.flows import Flows
from tests.support.harness import BotHarness


@pytest.fixture
async def sandbox():
    from sandbox import Sandbox, SandboxConfig

    async with Sandbox(SandboxConfig()) as sb:
        yield sb


@pytest.fixture
def daytime_clock():
    """App time that runs at real speed from 10:00 Asia/Shanghai today, so pushes are not
    held by quiet hours whenever the suite happens to run (tests of quiet hours set their own)."""
    from datetime import UTC, datetime, time

    from flows.delivery.clock import AcceleratedClock, uninstall

    clock = AcceleratedClock(datetime.combine(datetime.now(UTC).date(), time(2, 0), UTC), rate=1)
    clock.install()
    yield clock
    uninstall()


@pytest.fixture
def harness_settings(request: pytest.FixtureRequest) -> dict:
    """Settings the ``harness`` bot starts with beyond its defaults; a test picks others with
    ``@pytest.mark.parametrize("harness_settings", [{"referrals": {"monthly_cap": 1}}],
    indirect=True)``."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
async def harness(sandbox, sqlite_url: str, daytime_clock, harness_settings: dict):
    bot_harness = BotHarness(sandbox, sqlite_url, **harness_settings)
    await bot_harness.start()
    try:
        yield bot_harness
    finally:
        await bot_harness.stop()


@pytest.fixture
def frozen(daytime_clock) -> Iterator[FrozenClock]:
    """App time frozen at 10:00 Asia/Shanghai today; the test moves it."""
    clock = FrozenClock(datetime.combine(datetime.now(UTC).date(), time(2, 0), UTC))
    clock.install()
    yield clock
    daytime_clock.install()


@pytest.fixture
def library() -> Library:
    return load_library()


@pytest.fixture
def flows(harness, frozen, library) -> Flows:
    return Flows(harness, frozen, library)
