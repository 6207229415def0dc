"""Seeding helpers for the merchant tests (a merchant, an offer, owners, a partner)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert
from sqlmodel import Session, col, select

from flows.community.partners import create_partner
from flows.merchants import directory, offers
from storage.clock import utcnow
from storage.models import Owner, Partner


def seed_merchant(session: Session, code: str = "M001", **offer_kw) -> tuple[int, int]:
    """A merchant and one live offer; returns (merchant_id, offer_id)."""
    merchant, _ = directory.add_merchant(
        session, code=code, name=f"Wash {code}", kind="car_life", category="car_wash", city="Shanghai", dealers="D001"
    )
    kw = dict(
        title="Free wash",
        value_kind="free_item",
        item="wash",
        valid_days=30,
        category="car_wash",
        commission_kind="fixed",
        commission_fen=500,
        status="live",
    )
    kw.update(offer_kw)
    offer = offers.create_offer(session, merchant_code=code, **kw)
    return merchant.id, offer.id


def seed_partner(session: Session, advisor: str = "A001", telegram_user_id: int | None = 7001) -> int:
    create_partner(session, name="Advisor", dealer_code="D001", advisor_code=advisor, role="sales", now=utcnow())
    partner = session.query(Partner).filter(col(Partner.advisor_code) == advisor).one()
    partner.telegram_user_id = telegram_user_id
    session.add(partner)
    session.flush()
    return partner.id


def seed_owners(session: Session, n: int, partner_id: int | None = None, prefix: str = "O") -> list[int]:
    now = utcnow() - timedelta(days=1)
    rows = [
        dict(
            external_id=f"{prefix}{i:05d}",
            name=f"Owner {i}",
            product_line="passenger",
            dealer_code="D001",
            partner_id=partner_id,
            stage="verified",
            attributes={},
            created_at=now,
            updated_at=now,
            maturity="beginner",
            activity="active",
            action_count=0,
            referral_count=0,
            service_visits=0,
            unreachable=False,
            opted_out=False,
        )
        for i in range(n)
    ]
    session.execute(insert(Owner), rows)
    session.flush()
    return list(
        session.exec(
            select(col(Owner.id)).where(col(Owner.external_id).like(f"{prefix}%")).order_by(col(Owner.id))
        ).all()
    )
