"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured) and the CLI.

PostgreSQL comes from ``AUTOCIRCLE_TEST_PG_URL`` (scripts/test starts a local server and sets
it). Under CI a missing PostgreSQL is an error, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from storage import migrate
from storage.db import make_engine, normalize_url

PG_URL_ENV = "AUTOCIRCLE_TEST_PG_URL"


def _pg_admin_url() -> str | None:
    url = os.environ.get(PG_URL_ENV)
    if not url and os.environ.get("CI"):
        raise RuntimeError(f"CI run without {PG_URL_ENV}: PostgreSQL tests must not skip in CI")
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per run; each test gets a copy (fast and isolated)."""
    path = tmp_path_factory.mktemp("dbtemplate") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this run, migrated once, dropped at the end."""
    admin_url = _pg_admin_url()
    if not admin_url:
        yield None
        return
    name = f"ac_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(admin_url)).set(database=name).render_as_string(
        hide_password=False
    )
    migrate.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(engine: Engine) -> None:
    from sqlmodel import SQLModel

    import storage.schema  # noqa: F401

    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database URL on each backend (PostgreSQL skipped only outside CI)."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    pg_url = request.getfixturevalue("pg_database_url")
    if pg_url is None:
        pytest.skip(f"PostgreSQL not configured ({PG_URL_ENV})")
    engine = make_engine(pg_url)
    _truncate_all(engine)
    engine.dispose()
    return pg_url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty SQLite database URL (for tests that need only one backend)."""
    path = tmp_path / "test.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path) -> str:
    """Point the CLI at the test database and run it from a scratch directory."""
    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    return db_url


# --- end-to-end: the real bot over HTTP against the local Bot API sandbox ------------------

OPERATOR_ID = 900_001


class BotHarness:
    """A running bot (polling the sandbox) on a real database, plus seeding helpers."""

    def __init__(self, sandbox, database_url: str, **settings_overrides) -> None:  # noqa: ANN001
        self.sandbox = sandbox
        self.database_url = database_url
        self.overrides = settings_overrides
        self.app = None
        self.runtime = None

    def settings(self):  # noqa: ANN201
        from bot.config import Settings

        values = dict(
            database_url=self.database_url,
            api_base=self.sandbox.base_url,
            operator_ids=[OPERATOR_ID],
            locale="en",
        )
        values.update(self.overrides)
        return Settings(**values)

    async def start(self) -> None:
        from bot.app import build_app
        from bot.runtime import build_runtime

        self.app = build_app(self.settings())
        self.runtime = build_runtime(self.app)
        self.runtime.sender.config.poll_interval_s = 0.05
        await self.runtime.start_polling(polling_timeout=1)

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None
        if self.app is not None:
            self.app.close()
            self.app = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def session(self):  # noqa: ANN201
        from sqlmodel import Session

        return Session(self.app.engine, expire_on_commit=False)

    # seeding ---------------------------------------------------------------------------
    async def add_partner(self, *args, **kwargs) -> str:  # noqa: ANN002, ANN003
        """Create a partner and return its one-time registration code (off the event loop:
        a blocking write here would stall the bot that shares this loop)."""
        import asyncio

        return await asyncio.to_thread(self._add_partner, *args, **kwargs)

    async def add_owner(self, *args, **kwargs) -> int:  # noqa: ANN002, ANN003
        import asyncio

        return await asyncio.to_thread(self._add_owner, *args, **kwargs)

    def _add_partner(self, advisor_code: str, name: str = "Partner", dealer_code: str = "D001") -> str:
        from flows.community.partners import create_partner
        from storage.clock import utcnow

        with self.session() as session:
            issued = create_partner(
                session, name=name, dealer_code=dealer_code, advisor_code=advisor_code,
                role="sales", now=utcnow(), dealer_name=f"Dealer {dealer_code}",
            )
            session.commit()
            return issued.code

    def _add_owner(
        self,
        external_id: str,
        *,
        name: str = "Owner",
        phone: str | None = None,
        vin: str | None = None,
        advisor_code: str | None = None,
        product_line: str = "passenger",
        purchase_date=None,  # noqa: ANN001
        telegram_user_id: int | None = None,
        locale: str | None = None,
    ) -> int:
        """An imported owner; with ``telegram_user_id`` one who has already verified on the bot."""
        from datetime import date

        from sqlalchemy import select

        from storage.models import Owner, Partner, Vehicle

        with self.session() as session:
            partner_id = None
            if advisor_code:
                partner_id = session.execute(
                    select(Partner.id).where(Partner.advisor_code == advisor_code)
                ).scalar()
            owner = Owner(
                external_id=external_id, name=name, phone=phone, product_line=product_line,
                advisor_code=advisor_code, partner_id=partner_id, dealer_code="D001",
                telegram_user_id=telegram_user_id, locale=locale,
            )
            if telegram_user_id is not None:
                owner.stage = "verified"
            session.add(owner)
            session.flush()
            if vin:
                session.add(Vehicle(owner_id=owner.id, vin=vin, model="Model X",
                                    purchase_date=purchase_date or date(2024, 1, 15)))
            session.commit()
            return owner.id

    async def verify(self, user_id: int, vin: str, start: str = "/start") -> None:
        """A person opens the bot and verifies as the owner whose VIN this is, as the product
        allows (issue 11): a VIN ending only counts on that owner's personal link, so a plain
        ``start`` opens the owner's personal link (issued here) and sends the VIN's last six;
        after a link that names no owner (a referral link ``r_…``, a public parameter) the
        person shares their own phone contact (the owner gets a phone number if it has none)."""
        import asyncio

        from flows.growth import referrals
        from flows.community.onboarding import PUBLIC_START_PARAMS

        await self.sandbox.add_user(user_id, first_name=f"U{user_id}")
        param = start.split(maxsplit=1)[1] if len(start.split(maxsplit=1)) > 1 else None
        if param is None:
            token = await self.personal_token(vin)
            await self.sandbox.send_text(user_id, user_id, f"/start {token}")
            await self.sandbox.wait_for_bot_message(user_id, contains="verify")
            await self.sandbox.send_text(user_id, user_id, vin[-6:])
        elif referrals.is_referral_token(param) or param in PUBLIC_START_PARAMS:
            phone = await asyncio.to_thread(self._phone_of, vin)
            await self.sandbox.send_text(user_id, user_id, start)
            await self.sandbox.wait_for_bot_message(user_id, contains="verify")
            await self.sandbox.share_contact(user_id, phone.lstrip("+"), contact_user_id=user_id)
        else:  # the caller's own personal link
            await self.sandbox.send_text(user_id, user_id, start)
            await self.sandbox.wait_for_bot_message(user_id, contains="verify")
            await self.sandbox.send_text(user_id, user_id, vin[-6:])
        await self.sandbox.wait_for_bot_message(user_id, contains="Verified")

    async def personal_token(self, vin: str) -> str:
        """A personal invite token for the owner of ``vin`` (off the event loop)."""
        import asyncio

        return await asyncio.to_thread(self._personal_token, vin)

    def _owner_of_vin(self, session, vin: str):  # noqa: ANN001, ANN202
        from sqlalchemy import select

        from storage.models import Owner, Vehicle

        owner = session.execute(
            select(Owner).join(Vehicle, Vehicle.owner_id == Owner.id).where(Vehicle.vin == vin)
        ).scalars().first()
        assert owner is not None, f"no owner with VIN {vin}"
        return owner

    def _personal_token(self, vin: str) -> str:
        """A fresh personal invite token for the owner of ``vin`` (as ``/invites`` hands out)."""
        import secrets

        from storage.clock import utcnow
        from storage.models import InviteToken

        with self.session() as session:
            owner = self._owner_of_vin(session, vin)
            token = "t" + secrets.token_urlsafe(12)
            session.add(InviteToken(token=token, owner_id=owner.id, partner_id=owner.partner_id, created_at=utcnow()))
            session.commit()
            return token

    def _phone_of(self, vin: str) -> str:
        """The phone number of the owner of ``vin``, giving one a unique number if it has none."""
        with self.session() as session:
            owner = self._owner_of_vin(session, vin)
            if not owner.phone:
                owner.phone = f"+86137{owner.id:08d}"
                session.commit()
            return owner.phone

    async def register_partner(self, user_id: int, code: str, first_name: str = "Advisor") -> None:
        await self.sandbox.add_user(user_id, first_name=first_name)
        await self.sandbox.send_text(user_id, user_id, f"/partner {code}")
        await self.sandbox.wait_for_bot_message(user_id, contains="Registered")

    async def make_circle(self, partner_user_id: int, title: str = "Owners Circle", line: str = "passenger") -> tuple[int, str]:
        """A group with the partner as creator, the bot as admin, bound with /circle."""
        from sqlalchemy import select

        from storage.models import Circle

        chat = await self.sandbox.add_group(title, creator_id=partner_user_id)
        await self.sandbox.add_bot_to_group(chat["id"], "administrator")
        await self.sandbox.send_text(partner_user_id, chat["id"], f"/circle {line}")
        await self.sandbox.wait_for_bot_message(chat["id"], contains="circle")

        def link() -> str | None:
            with self.session() as session:
                return session.execute(
                    select(Circle.invite_link).where(Circle.chat_id == chat["id"])
                ).scalar()

        return chat["id"], await self.eventually(link)

    async def eventually(self, probe, timeout: float = 5.0):  # noqa: ANN001, ANN201
        """Poll ``probe`` until it returns something truthy: the bot commits after replying."""
        import asyncio

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = probe()
            if value or asyncio.get_running_loop().time() > deadline:
                return value
            await asyncio.sleep(0.02)


@pytest.fixture
async def sandbox():  # noqa: ANN201
    from sandbox import Sandbox, SandboxConfig

    async with Sandbox(SandboxConfig()) as sb:
        yield sb


@pytest.fixture
def daytime_clock():  # noqa: ANN201
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
async def harness(sandbox, sqlite_url: str, daytime_clock, harness_settings: dict):  # noqa: ANN001, ANN201
    bot_harness = BotHarness(sandbox, sqlite_url, **harness_settings)
    await bot_harness.start()
    try:
        yield bot_harness
    finally:
        await bot_harness.stop()


# --- end-to-end flows: app time frozen and moved by the test --------------------------------

import asyncio  # noqa: E402
from datetime import UTC, datetime, time, timedelta  # noqa: E402

from sqlmodel import select  # noqa: E402

from flows.delivery.clock import FrozenClock  # noqa: E402
from flows.engine.playbook import Library, load_library  # noqa: E402
from flows.engine.runner import run_due_flows  # noqa: E402
from flows.segments.recompute import recompute_all  # noqa: E402
from flows.templating import Renderer  # noqa: E402
from storage.events import EventKind, record  # noqa: E402
from storage.models import OutboxMessage  # noqa: E402


@pytest.fixture
def frozen(daytime_clock) -> Iterator[FrozenClock]:  # noqa: ANN001
    """App time frozen at 10:00 Asia/Shanghai today; the test moves it."""
    clock = FrozenClock(datetime.combine(datetime.now(UTC).date(), time(2, 0), UTC))
    clock.install()
    yield clock
    daytime_clock.install()


@pytest.fixture
def library() -> Library:
    return load_library()


class Flows:
    """The test's handle on the operations brain: one runner pass or recompute at app time."""

    def __init__(self, harness, clock: FrozenClock, library: Library) -> None:  # noqa: ANN001
        self.harness, self.clock, self.library = harness, clock, library
        self.renderer = Renderer(default_locale="en")

    async def run(self):  # noqa: ANN201
        """One runner pass, off the event loop (the bot shares it); wakes the sender."""
        result = await asyncio.to_thread(
            run_due_flows, self.harness.app.engine, self.renderer, self.library.flows,
            self.library.playbook, self.clock.now(), timezone=self.harness.app.settings.timezone,
        )
        self.harness.runtime.sender.wake()
        await self.settle()
        return result

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until the sender has delivered everything due now. Time jumps in this test
        are instant while the sender paces each private chat in real time; without this, a
        week's pushes would reach the sender (and the frequency cap) weeks late."""
        now = self.clock.now()

        def drained() -> bool:
            return not self.query(select(OutboxMessage.id).where(
                OutboxMessage.status.in_(("pending", "sending")),  # type: ignore[attr-defined]
                OutboxMessage.not_before <= now))

        await self.harness.eventually(drained, timeout=timeout)

    async def recompute(self):  # noqa: ANN201
        thresholds = self.harness.app.settings.segment_thresholds()
        return await asyncio.to_thread(recompute_all, self.harness.app.engine, thresholds, self.clock.now())

    async def advance(self, **kw: float) -> None:
        """Move app time and do what the scheduler would: recompute, then one runner pass."""
        self.clock.advance(timedelta(**kw))
        await self.recompute()
        await self.run()

    async def approve_referrals(self) -> list:
        """The bot's hourly referral job, run now at app time with the bot's own settings."""
        from bot.runtime import delivery_policy
        from bot.scheduler import JobContext
        from flows.growth import referrals

        settings = self.harness.app.settings
        job = referrals.approve_job(self.renderer, settings.referral_policy())
        context = JobContext(engine=self.harness.app.engine, now=self.clock.now(), policy=delivery_policy(settings))
        settled = await asyncio.to_thread(job, context)
        self.harness.runtime.sender.wake()
        await self.settle()
        return settled

    def query(self, statement):  # noqa: ANN001, ANN201
        with self.harness.session() as session:
            return list(session.exec(statement).all())

    async def event(self, owner_id: int, kind: EventKind, **data) -> None:  # noqa: ANN003
        def write() -> None:
            with self.harness.session() as session:
                record(session, owner_id, kind, self.clock.now(), **data)
                session.commit()

        await asyncio.to_thread(write)


@pytest.fixture
def flows(harness, frozen, library) -> Flows:  # noqa: ANN001
    return Flows(harness, frozen, library)


