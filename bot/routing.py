"""Leaner event propagation through the router tree: same routing, less work per router.

A private message passes through some 35 routers before the one that handles it (the chat
filter, then each module's role filter). aiogram's ``Router.propagate_event`` wraps *every*
router's visit in its observer's outer middlewares, building a ``functools.wraps`` wrapper and
a closure each time even when the observer has none: measured as a third of the update's
routing CPU. ``lean_propagation`` gives each router a ``propagate_event`` that calls aiogram's
own ``_propagate_event`` directly when its observer has no outer middleware (checked at every
call, so middlewares added later still run), and answers "unhandled" at once for a router with
no handler and no sub-router for the update type. Filters, handlers and their order are
aiogram's, untouched.
"""

from __future__ import annotations

import types
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject


def lean_propagation(root: Router) -> int:
    """Install the lean ``propagate_event`` on ``root`` and every router below it (call after
    all routers are included); returns how many routers it changed."""
    changed = 0
    for router in root.chain_tail:
        router.propagate_event = types.MethodType(_propagate_event, router)  # type: ignore[method-assign]  # reason: per instance, aiogram calls it by attribute
        changed += 1
    return changed


async def _propagate_event(self: Router, update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
    observer = self.observers.get(update_type)
    if observer is not None and len(observer.outer_middleware):
        return await Router.propagate_event(self, update_type, event, **kwargs)  # aiogram's own path
    if not self.sub_routers and (observer is None or not observer.handlers):
        return UNHANDLED
    kwargs["event_router"] = self
    return await self._propagate_event(observer=observer, update_type=update_type, event=event, **kwargs)
