"""The Bot API method table: names (case-insensitive, like Telegram) to handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .params import Params

if TYPE_CHECKING:
    from .server import Sandbox

Handler = Callable[["Sandbox", Params], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    name: str  # canonical camelCase name, used in stats
    handler: Handler


class MethodTable:
    """Collects handlers from the method modules under their Telegram names."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def register(self, name: str, handler: Handler) -> None:
        self._methods[name.lower()] = Method(name, handler)

    def find(self, name: str) -> Method | None:
        return self._methods.get(name.lower())

    def names(self) -> list[str]:
        return sorted(m.name for m in self._methods.values())


def build_method_table() -> MethodTable:
    from . import methods_bot, methods_chats, methods_messages

    table = MethodTable()
    for module in (methods_bot, methods_chats, methods_messages):
        for name, handler in module.HANDLERS.items():
            table.register(name, handler)
    return table
