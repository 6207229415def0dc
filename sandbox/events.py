"""Turning things that happen into history entries and updates, exactly once and the same way
whether a simulated person or the bot caused them."""

from __future__ import annotations

from typing import Any

from .config import SandboxConfig
from .history import History, StoredMessage
from .state import ChatRecord, MemberRecord, UserRecord, World, now_ts
from .updates import UpdateQueue


class Events:
    """Emits messages and membership changes into history and the bot's update queue."""

    def __init__(self, config: SandboxConfig, world: World, history: History, updates: UpdateQueue):
        self.config = config
        self.world = world
        self.history = history
        self.updates = updates

    # --- messages --------------------------------------------------------------------

    def post_message(
        self,
        chat: ChatRecord,
        sender: UserRecord,
        fields: dict[str, Any],
        *,
        reply_markup: Any = None,
        parse_mode: str | None = None,
        raw_text: str | None = None,
    ) -> StoredMessage:
        """Store a message; if a person wrote it and the bot can see it, emit ``message``."""
        message: dict[str, Any] = {
            "message_id": self.history.allocate_id(chat.id),
            "from": sender.to_api(),
            "chat": chat.to_api(),
            "date": now_ts(),
            **fields,
        }
        if isinstance(reply_markup, dict) and "inline_keyboard" in reply_markup:
            message["reply_markup"] = reply_markup
        stored = StoredMessage(
            chat_id=chat.id,
            message_id=message["message_id"],
            message=message,
            from_bot=sender.is_bot,
            reply_markup=reply_markup,
            parse_mode=parse_mode,
            raw_text=raw_text,
        )
        self.history.add(stored)
        if not sender.is_bot and self.bot_sees(chat, message):
            self.updates.push("message", message)
        return stored

    def bot_sees(self, chat: ChatRecord, message: dict[str, Any]) -> bool:
        """Private chats always; groups only while the bot is a member (privacy mode aware)."""
        if chat.type == "private":
            return chat.id not in self.world.blocked
        bot_member = self.world.bot_member(chat.id)
        if not bot_member.present:
            return False
        if self.config.can_read_all_group_messages or bot_member.status == "administrator":
            return True
        if any(k in message for k in ("new_chat_members", "left_chat_member")):
            return True
        text = message.get("text", "")
        reply = message.get("reply_to_message", {})
        return (
            text.startswith("/")
            or f"@{self.config.bot_username}".lower() in text.lower()
            or reply.get("from", {}).get("id") == self.world.bot.id
        )

    # --- memberships -----------------------------------------------------------------

    def change_member(
        self,
        chat: ChatRecord,
        actor: UserRecord,
        user: UserRecord,
        new: MemberRecord,
        *,
        invite_link: dict[str, Any] | None = None,
        via_join_request: bool = False,
    ) -> dict[str, Any] | None:
        """Apply a membership change and emit ``my_chat_member`` (the bot itself) or
        ``chat_member`` (others; Telegram sends those only to admin bots)."""
        old = self.world.set_member(chat.id, user.id, new)
        payload: dict[str, Any] = {
            "chat": chat.to_api(),
            "from": actor.to_api(),
            "date": now_ts(),
            "old_chat_member": old.to_api(user),
            "new_chat_member": new.to_api(user),
        }
        if invite_link is not None:
            payload["invite_link"] = invite_link
        if via_join_request:
            payload["via_join_request"] = True
        if user.id == self.world.bot.id:
            return self.updates.push("my_chat_member", payload)
        if self.world.bot_is_admin(chat.id):
            return self.updates.push("chat_member", payload)
        return None

    def bot_membership_in_private(self, user: UserRecord, new_status: str) -> dict[str, Any]:
        """``my_chat_member`` in a private chat: the user blocked (kicked) or restarted it."""
        chat = self.world.ensure_private_chat(user)
        old_status = "kicked" if new_status == "member" else "member"
        old = MemberRecord(status=old_status)
        new = MemberRecord(status=new_status)
        payload = {
            "chat": chat.to_api(),
            "from": user.to_api(),
            "date": now_ts(),
            "old_chat_member": old.to_api(self.world.bot),
            "new_chat_member": new.to_api(self.world.bot),
        }
        return self.updates.push("my_chat_member", payload)
