"""The bot's update queue: monotonically numbered updates, ``allowed_updates`` filtering and
long polling with Telegram's ``offset`` confirmation semantics."""

from __future__ import annotations

from typing import Any

from .errors import conflict
from .notify import Notifier

# What Telegram withholds when allowed_updates is unset or an empty list.
EXCLUDED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def update_kind(update: dict[str, Any]) -> str:
    return next(key for key in update if key != "update_id")


def update_chat(update: dict[str, Any]) -> Any:
    """The chat an update belongs to (a callback's message chat, else the sender), or None."""
    for kind, payload in update.items():
        if kind == "update_id" or not isinstance(payload, dict):
            continue
        chat = payload.get("chat") or (payload.get("message") or {}).get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return chat["id"]
        sender = payload.get("from") or payload.get("user")
        if isinstance(sender, dict) and "id" in sender:
            return ("user", sender["id"])
    return None


class UpdateQueue:
    """Pending updates until the bot confirms them with a higher ``offset``."""

    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._allowed: frozenset[str] | None = None  # None = Telegram's default set
        self._poll_generation = 0
        self._closed = False
        self.webhook_active = False
        self.changed = Notifier()
        self.delivered = 0
        self.dropped = 0

    # --- producing -----------------------------------------------------------------

    def push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self._pending.append(update)
        self.changed.notify()
        return update

    # --- allowed_updates -----------------------------------------------------------

    @property
    def allowed_updates(self) -> list[str] | None:
        return sorted(self._allowed) if self._allowed is not None else None

    def set_allowed(self, allowed: list[str] | None) -> None:
        """``None`` keeps the previous setting; ``[]`` restores Telegram's default."""
        if allowed is None:
            return
        self._allowed = frozenset(allowed) if allowed else None

    def is_allowed(self, kind: str) -> bool:
        if self._allowed is None:
            return kind not in EXCLUDED_BY_DEFAULT
        return kind in self._allowed

    # --- consuming -----------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def pending(self) -> list[dict[str, Any]]:
        return list(self._pending)

    def confirm(self, offset: int | None) -> None:
        """Forget updates below ``offset``; a negative offset keeps only the last ``-offset``."""
        if offset is None or offset == 0:
            return
        before = len(self._pending)
        if offset < 0:
            self._pending = self._pending[offset:]
        else:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        if len(self._pending) != before:
            self.changed.notify()

    def drop_all(self) -> None:
        self.dropped += len(self._pending)
        self._pending.clear()
        self.changed.notify()

    def take_deliverable(self, in_flight: set[int], busy_chats: set[Any]) -> dict[str, Any] | None:
        """The oldest update a webhook connection may send now: not already in flight and not
        of a chat that has one in flight (each chat's updates go in order, chats in parallel).
        Updates the bot did not ask for are discarded as in ``take_batch``."""
        kept: list[dict[str, Any]] = []
        found: dict[str, Any] | None = None
        for update in self._pending:
            if found is None and update["update_id"] not in in_flight:
                if not self.is_allowed(update_kind(update)):
                    self.dropped += 1
                    continue
                if update_chat(update) not in busy_chats or update_chat(update) is None:
                    found = update
            kept.append(update)
        self._pending = kept
        return found

    def ack(self, update_id: int) -> None:
        """Forget one delivered update (a webhook answered it with 2xx)."""
        before = len(self._pending)
        self._pending = [u for u in self._pending if u["update_id"] != update_id]
        if len(self._pending) != before:
            self.changed.notify()

    def take_batch(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` deliverable updates; updates the bot did not ask for are discarded
        (Telegram never creates them), so they cannot surface after a later setting change."""
        batch: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        for update in self._pending:
            if len(batch) >= limit:
                kept.append(update)
            elif self.is_allowed(update_kind(update)):
                batch.append(update)
                kept.append(update)
            else:
                self.dropped += 1
        self._pending = kept
        return batch

    async def long_poll(
        self, offset: int | None, limit: int, timeout: float, allowed: list[str] | None
    ) -> list[dict[str, Any]]:
        """getUpdates: confirm, then answer at once if anything is pending, else wait up to
        ``timeout`` seconds. A newer poll ends an older one with 409, as Telegram does."""
        self._poll_generation += 1
        generation = self._poll_generation
        self.changed.notify()  # wake an older poll so it can notice it was superseded
        self.set_allowed(allowed)
        self.confirm(offset)

        def check() -> list[dict[str, Any]] | None:
            if self.webhook_active:
                raise conflict(
                    "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
                )
            if generation != self._poll_generation:
                raise conflict(
                    "terminated by other getUpdates request; make sure that only one bot instance is running"
                )
            batch = self.take_batch(limit)
            if batch or self._closed:
                return batch
            return None

        batch = await self.changed.wait_for(check, max(timeout, 0.0))
        if batch is None:
            return self.take_batch(limit)
        self.delivered += len(batch)
        return batch

    def close(self) -> None:
        """Release every waiting long poll (the server is shutting down)."""
        self._closed = True
        self.changed.notify()

    def reopen(self) -> None:
        self._closed = False

    async def wait_empty(self, timeout: float) -> bool:
        """True once the bot has confirmed every update (handy before asserting)."""
        result = await self.changed.wait_for(lambda: True if not self._pending else None, timeout)
        return bool(result)
