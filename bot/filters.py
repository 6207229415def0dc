"""Router-level filters: role checks live here, not in handlers."""

from __future__ import annotations

from aiogram.filters import BaseFilter
from aiogram.types import TelegramObject

from flows.community.roles import Identity, Role


class HasRole(BaseFilter):
    """Passes when the caller's resolved role is one of ``roles``."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, event: TelegramObject, identity: Identity) -> bool:
        return identity.role in self.roles


class IsPartner(BaseFilter):
    """Passes for a registered partner, even when that partner is also an operator."""

    async def __call__(self, event: TelegramObject, identity: Identity) -> bool:
        return identity.partner_id is not None
