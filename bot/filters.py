"""Router-level filters: role checks live here, not in handlers; and the pass that runs the
pure ones on the event loop."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.filters import BaseFilter
from aiogram.filters.logic import _AndFilter, _InvertFilter, _OrFilter
from aiogram.fsm.state import State, StatesGroup
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


def run_pure_filters_inline(router: Router) -> int:
    """Evaluate magic (``F…``) and state filters on the event loop instead of in a thread.

    aiogram 3.31 runs every filter that is not a coroutine function through
    ``asyncio.to_thread`` (``CallableObject.call``): a thread hop each, about a dozen per update.
    ``F…`` and ``State``/``StatesGroup`` filters only compare attributes of the event or the
    already loaded state, so running them inline gives the same answer without the hop. Other
    synchronous callbacks keep aiogram's thread, as their authors may block. Walks the router
    tree once (call after all routers are included); returns how many filters it changed.
    """
    changed = 0
    for each in router.chain_tail:
        for observer in each.observers.values():
            handlers = (
                [observer._handler, *observer.handlers] if hasattr(observer, "_handler") else list(observer.handlers)
            )
            for handler in handlers:
                for filter_object in handler.filters or ():
                    changed += _inline(filter_object)
    return changed


def _inline(filter_object: FilterObject) -> int:
    """Make one filter (and the filters inside ``and_f``/``or_f``/``~``) run without a hop."""
    changed = 0
    callback = filter_object.callback
    if isinstance(callback, _InvertFilter):
        changed += _inline(callback.target)
    elif isinstance(callback, (_AndFilter, _OrFilter)):
        for target in callback.targets:
            changed += _inline(target)
    if filter_object.awaitable:
        return changed
    if filter_object.magic is not None or _is_state_filter(callback):
        filter_object.callback = _as_coroutine(callback)
        filter_object.awaitable = True
        changed += 1
    return changed


def _is_state_filter(callback: Any) -> bool:
    if inspect.isclass(callback):
        return issubclass(callback, StatesGroup)
    if inspect.ismethod(callback):
        callback = callback.__self__
    return isinstance(callback, (State, StatesGroup))


def _as_coroutine(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return call
