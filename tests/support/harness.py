"""The real bot over HTTP against the local Bot API sandbox, on a real database, with the
seeding helpers end-to-end tests use (``harness`` fixture in ``tests/e2e/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlmodel import col

OPERATOR_ID = 900_001


class BotHarness:
    """A running bot (polling the sandbox) on a real database, plus seeding helpers."""

    def __init__(self, sandbox, database_url: str, **settings_overrides) -> None:
        self.sandbox = sandbox
        self.database_url = database_url
        self.overrides = settings_overrides
        self.app = None
        self.runtime = None

    def settings(self):
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

    def session(self):
        from sqlmodel import Session

        return Session(self.app.engine, expire_on_commit=False)

    def dealer_codes(self) -> set[str]:
        """The dealers' codes as committed: what the unit-of-work tests' handlers write."""
        from sqlmodel import col, select

        from storage.models import Dealer

        with self.session() as session:
            return set(session.exec(select(col(Dealer.code))).all())

    # seeding ---------------------------------------------------------------------------
    async def add_partner(self, *args, **kwargs) -> str:
        """Create a partner and return its one-time registration code (off the event loop:
        a blocking write here would stall the bot that shares this loop)."""
        import asyncio

        return await asyncio.to_thread(self._add_partner, *args, **kwargs)

    async def add_owner(self, *args, **kwargs) -> int:
        import asyncio

        return await asyncio.to_thread(self._add_owner, *args, **kwargs)

    def _add_partner(self, advisor_code: str, name: str = "Partner", dealer_code: str = "D001") -> str:
        from flows.community.partners import create_partner
        from storage.clock import utcnow

        with self.session() as session:
            issued = create_partner(
                session,
                name=name,
                dealer_code=dealer_code,
                advisor_code=advisor_code,
                role="sales",
                now=utcnow(),
                dealer_name=f"Dealer {dealer_code}",
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
        purchase_date=None,
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
                    select(col(Partner.id)).where(col(Partner.advisor_code) == advisor_code)
                ).scalar()
            owner = Owner(
                external_id=external_id,
                name=name,
                phone=phone,
                product_line=product_line,
                advisor_code=advisor_code,
                partner_id=partner_id,
                dealer_code="D001",
                telegram_user_id=telegram_user_id,
                locale=locale,
            )
            if telegram_user_id is not None:
                owner.stage = "verified"
            session.add(owner)
            session.flush()
            if vin:
                session.add(
                    Vehicle(
                        owner_id=owner.id, vin=vin, model="Model X", purchase_date=purchase_date or date(2024, 1, 15)
                    )
                )
            session.commit()
            return owner.id

    async def verify(self, user_id: int, vin: str, start: str = "/start") -> None:
        """A person opens the bot and verifies as the owner whose VIN this is, as the product
        allows (issue 11): a VIN ending only counts on that owner's personal link, so a plain
        ``start`` opens the owner's personal link (issued here) and sends the VIN's last six;
        after a link that names no owner (a referral link ``r_…``, a public parameter) the
        person shares their own phone contact (the owner gets a phone number if it has none)."""
        import asyncio

        from flows.community.onboarding import PUBLIC_START_PARAMS
        from flows.growth import referrals

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

    def _owner_of_vin(self, session, vin: str):
        from sqlalchemy import select

        from storage.models import Owner, Vehicle

        owner = (
            session.execute(
                select(Owner).join(Vehicle, col(Vehicle.owner_id) == col(Owner.id)).where(col(Vehicle.vin) == vin)
            )
            .scalars()
            .first()
        )
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

    async def make_circle(
        self, partner_user_id: int, title: str = "Owners Circle", line: str = "passenger"
    ) -> tuple[int, str]:
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
                    select(col(Circle.invite_link)).where(col(Circle.chat_id) == chat["id"])
                ).scalar()

        return chat["id"], await self.eventually(link)

    async def eventually(self, probe, timeout: float = 5.0):
        """Poll ``probe`` until it returns something truthy: the bot commits after replying."""
        import asyncio

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = probe()
            if value or asyncio.get_running_loop().time() > deadline:
                return value
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_bot(database_url: str, **sandbox_config: Any) -> AsyncIterator[BotHarness]:
    """A sandbox of its own (``SandboxConfig(**sandbox_config)``) and the bot started on it,
    for tests that need other sandbox settings than the shared ``harness`` fixture's."""
    from sandbox import Sandbox, SandboxConfig

    async with Sandbox(SandboxConfig(**sandbox_config)) as sb:
        harness = BotHarness(sb, database_url)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()
