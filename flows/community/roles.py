"""Who is talking to the bot: operator, partner, owner or unknown, resolved per update."""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Select, bindparam, select
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


USER_PARAM = "identity_user_id"  # the bound parameter of ``identity_columns``


@lru_cache(maxsize=1)
def identity_columns() -> tuple[Any, ...]:
    """The identity lookups as scalar subqueries of one SELECT, bound to ``USER_PARAM``.

    Built once: a statement object is reused with new parameters instead of being rebuilt per
    update (building it and its cache key was most of the lookup's CPU). The staff lookups come
    from their capability packages, which own those tables. The update's middleware adds the
    conversation state to the same SELECT (one round trip per update); ``identity_from_row``
    reads the answer.
    """
    from flows.merchants.directory import merchant_of_user
    from flows.opportunities.demand import demand_of_user

    user_id = bindparam(USER_PARAM, type_=BigInteger)
    linked = col(Owner.telegram_user_id) == user_id
    return (
        select(col(Partner.id))
        .where(col(Partner.telegram_user_id) == user_id, col(Partner.active).is_(True))
        .limit(1)
        .scalar_subquery(),
        select(col(Owner.id)).where(linked).limit(1).scalar_subquery(),
        select(col(Owner.locale)).where(linked).limit(1).scalar_subquery(),
        merchant_of_user(user_id),  # type: ignore[arg-type]  # reason: a bound parameter stands for the int
        demand_of_user(user_id),  # type: ignore[arg-type]  # reason: a bound parameter stands for the int
    )


@lru_cache(maxsize=1)
def _identity_statement() -> Select[Any]:
    return select(*identity_columns())


def resolve_identity(session: Session, user_id: int | None, operator_ids: Collection[int]) -> Identity:
    """Operator by config, then partner, then owner by linked Telegram id; else unknown.

    Only an active partner counts: a deactivated or handed-over partner's account resolves as
    whatever else it is (an owner, or unknown), so partner commands meet the stranger's
    "partners only" (issue 11, item 2). A re-issued code has unlinked the old account already.
    """
    if user_id is None:
        return Identity(user_id=None, role=Role.unknown)
    # through the session, so a change the caller has not flushed yet (a partner just
    # deactivated) is seen
    row = session.execute(_identity_statement(), {USER_PARAM: user_id}).one()
    return identity_from_row(user_id, operator_ids, tuple(row))


def identity_from_row(user_id: int, operator_ids: Collection[int], row: Sequence[Any]) -> Identity:
    """The identity from the values of ``identity_columns`` (in that order)."""
    partner_id, owner_id, locale, merchant_id, demand_id = row
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
