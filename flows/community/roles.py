"""Who is talking to the bot: operator, partner, owner or unknown, resolved per update."""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from storage.models import Owner, Partner


class Role(str, enum.Enum):
    operator = "operator"
    partner = "partner"
    merchant = "merchant"  # a merchant's staff member (issue 13)
    demand = "demand"  # a demand-side account's staff member (issue 14)
    owner = "owner"
    unknown = "unknown"


@dataclass(frozen=True)
class Identity:
    """The resolved caller. ``partner_id``/``owner_id`` are set when the user is linked."""

    user_id: int | None
    role: Role
    partner_id: int | None = None
    owner_id: int | None = None
    merchant_id: int | None = None  # the merchant a merchant-staff account works for
    demand_id: int | None = None  # the demand-side account a demand-staff account works for
    locale: str | None = None

    # For handlers behind a role filter (IsPartner, IsOwner, ...): the id the filter
    # guarantees, as an int; a handler registered without the filter fails loudly.
    def require_partner_id(self) -> int:
        if self.partner_id is None:
            raise PermissionError("not a linked partner")
        return self.partner_id

    def require_owner_id(self) -> int:
        if self.owner_id is None:
            raise PermissionError("not a linked owner")
        return self.owner_id

    def require_demand_id(self) -> int:
        if self.demand_id is None:
            raise PermissionError("not a demand-side staff member")
        return self.demand_id


def resolve_identity(session: Session, user_id: int | None, operator_ids: Collection[int]) -> Identity:
    """Operator by config, then partner, then owner by linked Telegram id; else unknown.

    Only an active partner counts: a deactivated or handed-over partner's account resolves as
    whatever else it is (an owner, or unknown), so partner commands meet the stranger's
    "partners only" (issue 11, item 2). A re-issued code has unlinked the old account already.
    """
    if user_id is None:
        return Identity(user_id=None, role=Role.unknown)
    # One round trip: every lookup is a scalar subquery of the same SELECT (the staff
    # lookups come from their capability packages, which own those tables).
    from flows.merchants.directory import merchant_of_user
    from flows.opportunities.demand import demand_of_user

    linked = col(Owner.telegram_user_id) == user_id
    partner_id, owner_id, locale, merchant_id, demand_id = session.execute(
        select(
            select(col(Partner.id))
            .where(col(Partner.telegram_user_id) == user_id, col(Partner.active).is_(True))
            .limit(1)
            .scalar_subquery(),
            select(col(Owner.id)).where(linked).limit(1).scalar_subquery(),
            select(col(Owner.locale)).where(linked).limit(1).scalar_subquery(),
            merchant_of_user(user_id),
            demand_of_user(user_id),
        )
    ).one()
    if user_id in operator_ids:
        role = Role.operator
    elif partner_id is not None:
        role = Role.partner
    elif owner_id is not None:
        role = Role.owner
    else:
        role = Role.unknown
    if role not in (Role.owner, Role.unknown):  # operators and partners keep their own menus
        merchant_id = demand_id = None
    if merchant_id is not None:  # a merchant's staff account (issue 13) gets the merchant menu
        role, demand_id = Role.merchant, None
    elif demand_id is not None:  # a demand-side account's staff (issue 14) gets the demand menu
        role = Role.demand
    return Identity(
        user_id=user_id,
        role=role,
        partner_id=partner_id,
        owner_id=owner_id,
        locale=locale,
        merchant_id=merchant_id,
        demand_id=demand_id,
    )
