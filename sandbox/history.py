"""Per-chat message history (from people and from the bot) and waiting for bot replies."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .notify import Notifier

MessagePredicate = Callable[[dict[str, Any]], bool]


@dataclass
class StoredMessage:
    """One message as Telegram would hold it, plus what a test wants to inspect."""

    chat_id: int
    message_id: int
    message: dict[str, Any]  # the Bot API Message object
    from_bot: bool
    reply_markup: Any = None  # any keyboard as sent; Message objects only carry inline ones
    parse_mode: str | None = None
    raw_text: str | None = None  # text before parse_mode rendering
    deleted: bool = False

    def as_reply(self) -> dict[str, Any]:
        """The form embedded as ``reply_to_message`` (Telegram does not nest replies)."""
        return {k: copy.deepcopy(v) for k, v in self.message.items() if k != "reply_to_message"}

    def view(self) -> dict[str, Any]:
        """The Message dict plus sandbox extras (``from_bot``, ``raw_text``, ``deleted`` ...)."""
        data = copy.deepcopy(self.message)
        if self.reply_markup is not None:
            data["reply_markup"] = copy.deepcopy(self.reply_markup)
        data["from_bot"] = self.from_bot
        data["parse_mode"] = self.parse_mode
        data["raw_text"] = self.raw_text
        data["deleted"] = self.deleted
        return data


class History:
    """Messages per chat in order; bot replies can be awaited one by one."""

    def __init__(self) -> None:
        self._chats: dict[int, list[StoredMessage]] = {}
        self._index: dict[tuple[int, int], StoredMessage] = {}
        self._last_id: dict[int, int] = {}
        self._consumed: dict[int, set[int]] = {}
        self.changed = Notifier()

    def allocate_id(self, chat_id: int) -> int:
        self._last_id[chat_id] = self._last_id.get(chat_id, 0) + 1
        return self._last_id[chat_id]

    def add(self, stored: StoredMessage) -> None:
        self._chats.setdefault(stored.chat_id, []).append(stored)
        self._index[(stored.chat_id, stored.message_id)] = stored
        self.changed.notify()

    def get(self, chat_id: int, message_id: int) -> StoredMessage | None:
        stored = self._index.get((chat_id, message_id))
        return None if stored is None or stored.deleted else stored

    def messages(self, chat_id: int, *, only_bot: bool = False, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [
            stored.view()
            for stored in self._chats.get(chat_id, [])
            if (include_deleted or not stored.deleted) and (stored.from_bot or not only_bot)
        ]

    def all_chat_ids(self) -> list[int]:
        return list(self._chats)

    async def wait_for_bot_message(
        self, chat_id: int, timeout: float, predicate: MessagePredicate | None = None
    ) -> dict[str, Any] | None:
        """The earliest bot message in the chat not yet returned by this method (and matching
        ``predicate``); replies that arrived before the call count, so there is no race."""
        consumed = self._consumed.setdefault(chat_id, set())

        def check() -> dict[str, Any] | None:
            for stored in self._chats.get(chat_id, []):
                if not stored.from_bot or stored.message_id in consumed:
                    continue
                view = stored.view()
                if predicate is None or predicate(view):
                    consumed.add(stored.message_id)
                    return view
            return None

        return await self.changed.wait_for(check, timeout)
