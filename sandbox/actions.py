"""What simulated people do: write, press buttons, share contacts, join, leave, block.

Mixed into :class:`~sandbox.server.Sandbox`; every action emits the same updates
Telegram would, so the real bot code under test cannot tell the difference.
"""

from __future__ import annotations

import copy
from typing import Any

from .config import SandboxConfig
from .errors import SandboxError
from .events import Events
from .formatting import detect_entities
from .history import History
from .state import (
    DEFAULT_BOT_ADMIN_RIGHTS,
    CallbackRecord,
    ChatRecord,
    JoinRequestRecord,
    MemberRecord,
    UserRecord,
    World,
    now_ts,
)
from .updates import UpdateQueue


class PeopleActions:
    """The control surface tests and demos use to act as people in the simulated world."""

    config: SandboxConfig
    world: World
    history: History
    updates: UpdateQueue
    events: Events

    # --- setting up the world ----------------------------------------------------------

    async def add_user(
        self,
        user_id: int,
        first_name: str = "User",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        phone: str | None = None,
    ) -> dict[str, Any]:
        """Create a person, or update the given fields of an existing one. Returns a User."""
        if user_id <= 0:
            raise SandboxError("user ids are positive")
        user = self.world.users.get(user_id)
        if user is None:
            user = UserRecord(user_id, first_name, last_name, username, language_code, phone)
            self.world.users[user_id] = user
        else:
            if user.is_bot:
                raise SandboxError(f"{user_id} is the bot's id")
            user.first_name = first_name
            for key, value in (
                ("last_name", last_name),
                ("username", username),
                ("language_code", language_code),
                ("phone", phone),
            ):
                if value is not None:
                    setattr(user, key, value)
        return user.to_api()

    async def add_users(self, first_id: int, count: int, first_name: str = "User") -> int:
        """``count`` people ``first_id`` … who have each opened a private chat with the bot
        earlier (so it may write to them), without updates: a broadcast audience in one call."""
        if first_id <= 0 or count < 0:
            raise SandboxError("user ids are positive and count is not negative")
        for user_id in range(first_id, first_id + count):
            await self.add_user(user_id, first_name=f"{first_name}{user_id - first_id}")
            self.world.ensure_private_chat(self.world.user(user_id))
        return count

    async def add_group(
        self,
        title: str,
        chat_id: int | None = None,
        chat_type: str = "supergroup",
        creator_id: int | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """Create a group or supergroup (negative id; generated when omitted). Returns a Chat."""
        if chat_type not in ("group", "supergroup"):
            raise SandboxError("chat_type must be 'group' or 'supergroup'")
        if chat_id is None:
            serial = self.world.next_id()
            chat_id = -(1_000_000_000_000 + serial) if chat_type == "supergroup" else -serial
        if chat_id >= 0:
            raise SandboxError("group chat ids are negative")
        if chat_id in self.world.chats:
            raise SandboxError(f"chat {chat_id} already exists")
        chat = ChatRecord(id=chat_id, type=chat_type, title=title, username=username)
        self.world.chats[chat_id] = chat
        if creator_id is not None:
            self.world.user(creator_id)
            self.world.set_member(chat_id, creator_id, MemberRecord(status="creator"))
        return chat.to_api()

    async def add_bot_to_group(
        self,
        chat_id: int,
        status: str = "administrator",
        by_user_id: int | None = None,
        rights: dict[str, bool] | None = None,
    ) -> dict[str, Any]:
        """Set the bot's status in a group (administrator, member, left, kicked), emitting
        ``my_chat_member`` and, when it newly joins, a ``new_chat_members`` service message.
        ``by_user_id`` defaults to the group's creator. Returns the ``my_chat_member`` update."""
        chat = self._group(chat_id)
        actor = self._actor(chat, by_user_id)
        if status not in ("administrator", "member", "left", "kicked"):
            raise SandboxError(f"unsupported bot status {status!r}")
        was_present = self.world.bot_member(chat_id).present
        record = MemberRecord(status=status)
        if status == "administrator":
            record.rights = {**DEFAULT_BOT_ADMIN_RIGHTS, **(rights or {})}
        update = self.events.change_member(chat, actor, self.world.bot, record)
        assert update is not None
        if record.present and not was_present:
            self.events.post_message(chat, actor, {"new_chat_members": [self.world.bot.to_api()]})
        return update

    async def add_member(
        self, chat_id: int, user_id: int, status: str = "member", emit: bool = False
    ) -> dict[str, Any]:
        """Put a person into a group. Silent by default (setting the scene); with ``emit``
        it looks like joining by themselves: ``chat_member`` plus ``new_chat_members``."""
        chat = self._group(chat_id)
        user = self.world.user(user_id)
        if status not in ("creator", "administrator", "member", "restricted", "left", "kicked"):
            raise SandboxError(f"unsupported status {status!r}")
        record = MemberRecord(status=status)
        if status == "administrator":
            record.rights = {**DEFAULT_BOT_ADMIN_RIGHTS}
        if not emit:
            self.world.set_member(chat.id, user.id, record)
            return record.to_api(user)
        was_present = self.world.member(chat.id, user.id).present
        self.events.change_member(chat, user, user, record)
        if record.present and not was_present:
            self.events.post_message(chat, user, {"new_chat_members": [user.to_api()]})
        return record.to_api(user)

    def member_status(self, chat_id: int, user_id: int) -> str:
        """creator / administrator / member / restricted / left / kicked."""
        return self.world.member(chat_id, user_id).status

    # --- talking -----------------------------------------------------------------------

    async def send_text(
        self, user_id: int, chat_id: int, text: str, reply_to_message_id: int | None = None
    ) -> dict[str, Any]:
        """A person writes ``text`` in a chat (the private chat's id is the user's id).
        Commands, mentions, hashtags and links get entities as Telegram adds them."""
        if not text:
            raise SandboxError("text must not be empty")
        fields: dict[str, Any] = {"text": text}
        entities = detect_entities(text)
        if entities:
            fields["entities"] = entities
        return self._user_message(user_id, chat_id, fields, reply_to_message_id)

    async def share_contact(
        self,
        user_id: int,
        phone: str,
        first_name: str | None = None,
        contact_user_id: int | None = None,
        last_name: str | None = None,
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """A person sends a contact card. Pass ``contact_user_id=user_id`` for "my own number"
        (what the request_contact button sends); omit it or pass another id for a foreign one."""
        user = self.world.user(user_id)
        contact: dict[str, Any] = {
            "phone_number": phone,
            "first_name": first_name or user.first_name,
        }
        if last_name is not None:
            contact["last_name"] = last_name
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        return self._user_message(user_id, user_id if chat_id is None else chat_id, {"contact": contact})

    def _visible_message(self, user_id: int, chat_id: int, message_id: int) -> Any:
        """The stored message ``message_id`` of a chat the user can see (else SandboxError)."""
        self._check_can_see(self.world.user(user_id), self.world.chat(chat_id))
        stored = self.history.get(chat_id, message_id)
        if stored is None:
            raise SandboxError(f"no message {message_id} in chat {chat_id}")
        return stored

    async def press_button(self, user_id: int, chat_id: int, message_id: int, callback_data: str) -> dict[str, Any]:
        """A person taps an inline button; emits ``callback_query``. The button must exist
        on the message as it is now. Returns the CallbackQuery (its ``id`` identifies the
        answer: see :meth:`callback_answer`)."""
        stored = self._visible_message(user_id, chat_id, message_id)
        keyboard = stored.message.get("reply_markup", {}).get("inline_keyboard", [])
        if not any(b.get("callback_data") == callback_data for row in keyboard for b in row):
            raise SandboxError(f"message {message_id} has no button with callback_data {callback_data!r}")
        return await self.forge_callback(user_id, chat_id, message_id, callback_data)

    async def forge_callback(self, user_id: int, chat_id: int, message_id: int, callback_data: str) -> dict[str, Any]:
        """What a modified client can do: a ``callback_query`` with any data on a message the
        person can see, whether or not the message has such a button (Telegram does not
        check). For testing that forged presses change nothing."""
        stored = self._visible_message(user_id, chat_id, message_id)
        user = self.world.user(user_id)
        query_id = str(4_000_000_000_000_000 + self.world.next_id())
        self.world.callbacks[query_id] = CallbackRecord(query_id, user_id, chat_id, message_id, callback_data)
        query = {
            "id": query_id,
            "from": user.to_api(),
            "message": copy.deepcopy(stored.message),
            "chat_instance": str(abs(chat_id) * 31 + 7),
            "data": callback_data,
        }
        self.updates.push("callback_query", query)
        return query

    def callback_answer(self, query_id: str) -> dict[str, Any] | None:
        """What answerCallbackQuery said (``text``, ``show_alert``, ``url``), or None yet."""
        record = self.world.callbacks.get(query_id)
        if record is None:
            raise SandboxError(f"unknown callback query {query_id}")
        return record.answer

    async def wait_for_callback_answer(self, query_id: str, timeout: float = 5.0) -> dict[str, Any]:
        self.callback_answer(query_id)
        answer = await self.world.changed.wait_for(lambda: self.callback_answer(query_id), timeout)
        if answer is None:
            raise TimeoutError(f"callback query {query_id} was not answered within {timeout}s")
        return answer

    # --- joining and leaving -----------------------------------------------------------

    async def join_via_link(self, user_id: int, invite_link: str) -> dict[str, Any]:
        """A person opens an invite link. Links with ``creates_join_request`` emit
        ``chat_join_request`` and return ``{"status": "pending"}`` (then see
        :meth:`wait_for_join_decision`); others add the member, emit ``chat_member`` with the
        ``invite_link`` and a ``new_chat_members`` service message: ``{"status": "joined"}``."""
        user = self.world.user(user_id)
        link = self.world.invite_links.get(invite_link)
        if link is None:
            raise SandboxError(f"unknown invite link {invite_link}")
        reason = link.unusable_reason(now_ts())
        if reason:
            raise SandboxError(reason)
        chat = self.world.chat(link.chat_id)
        member = self.world.member(chat.id, user.id)
        if member.present:
            raise SandboxError("USER_ALREADY_PARTICIPANT")
        if member.status == "kicked":
            raise SandboxError("USER_BANNED_IN_CHANNEL")
        link_api = link.to_api(self.world.user(link.creator_id))
        if link.creates_join_request:
            key = (chat.id, user.id)
            existing = self.world.join_requests.get(key)
            if existing is not None and existing.decision is None:
                raise SandboxError("INVITE_REQUEST_SENT already")
            date = now_ts()
            self.world.join_requests[key] = JoinRequestRecord(chat.id, user.id, link.invite_link, date)
            link.pending += 1
            link_api = link.to_api(self.world.user(link.creator_id))
            update = self.updates.push(
                "chat_join_request",
                {
                    "chat": chat.to_api(),
                    "from": user.to_api(),
                    "user_chat_id": user.id,
                    "date": date,
                    "invite_link": link_api,
                },
            )
            return {"status": "pending", "update_id": update["update_id"]}
        link.joined += 1
        self.events.change_member(chat, user, user, MemberRecord(status="member"), invite_link=link_api)
        message = self.events.post_message(chat, user, {"new_chat_members": [user.to_api()]})
        return {"status": "joined", "message_id": message.message_id}

    async def wait_for_join_decision(self, chat_id: int, user_id: int, timeout: float = 5.0) -> str:
        """Block until the bot approves or declines the join request: "approved"/"declined"."""
        request = self.world.join_requests.get((chat_id, user_id))
        if request is None:
            raise SandboxError(f"user {user_id} has no join request in chat {chat_id}")
        decision = await self.world.changed.wait_for(lambda: request.decision, timeout)
        if decision is None:
            raise TimeoutError(f"join request of {user_id} in {chat_id} undecided after {timeout}s")
        return decision

    async def leave(self, user_id: int, chat_id: int) -> dict[str, Any] | None:
        """A person leaves a group: ``chat_member`` (member -> left) and ``left_chat_member``.
        Returns the chat_member update, or None when the bot is not admin there."""
        user = self.world.user(user_id)
        chat = self._group(chat_id)
        if not self.world.member(chat_id, user_id).present:
            raise SandboxError(f"user {user_id} is not in chat {chat_id}")
        update = self.events.change_member(chat, user, user, MemberRecord(status="left"))
        self.events.post_message(chat, user, {"left_chat_member": user.to_api()})
        return update

    # --- blocking ----------------------------------------------------------------------

    async def block_bot(self, user_id: int) -> dict[str, Any]:
        """The person blocks the bot: ``my_chat_member`` member -> kicked; later sends get 403."""
        user = self.world.user(user_id)
        if user_id in self.world.blocked:
            raise SandboxError(f"user {user_id} already blocked the bot")
        self.world.blocked.add(user_id)
        return self.events.bot_membership_in_private(user, "kicked")

    async def unblock_bot(self, user_id: int) -> dict[str, Any]:
        """The person unblocks the bot: ``my_chat_member`` kicked -> member."""
        user = self.world.user(user_id)
        if user_id not in self.world.blocked:
            raise SandboxError(f"user {user_id} has not blocked the bot")
        self.world.blocked.discard(user_id)
        return self.events.bot_membership_in_private(user, "member")

    async def emit_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Escape hatch: queue any raw update (``kind`` like "message") as given."""
        return self.updates.push(kind, payload)

    # --- helpers -----------------------------------------------------------------------

    def _user_message(
        self,
        user_id: int,
        chat_id: int,
        fields: dict[str, Any],
        reply_to_message_id: int | None = None,
    ) -> dict[str, Any]:
        user = self.world.user(user_id)
        if chat_id == user_id:
            chat = self.world.ensure_private_chat(user)
            if user_id in self.world.blocked:
                # Writing to a blocked bot means pressing "Restart": Telegram unblocks it.
                self.world.blocked.discard(user_id)
                self.events.bot_membership_in_private(user, "member")
        else:
            chat = self.world.chat(chat_id)
            self._check_can_see(user, chat)
        if reply_to_message_id is not None:
            target = self.history.get(chat.id, reply_to_message_id)
            if target is None:
                raise SandboxError(f"no message {reply_to_message_id} in chat {chat.id}")
            fields = {**fields, "reply_to_message": target.as_reply()}
        return self.events.post_message(chat, user, fields).message

    def _check_can_see(self, user: UserRecord, chat: ChatRecord) -> None:
        if chat.type == "private":
            if chat.id != user.id:
                raise SandboxError(f"user {user.id} cannot act in {chat.id}'s private chat")
        elif not self.world.member(chat.id, user.id).present:
            raise SandboxError(f"user {user.id} is not a member of chat {chat.id}")

    def _group(self, chat_id: int) -> ChatRecord:
        chat = self.world.chat(chat_id)
        if chat.type == "private":
            raise SandboxError(f"chat {chat_id} is private, not a group")
        return chat

    def _actor(self, chat: ChatRecord, by_user_id: int | None) -> UserRecord:
        if by_user_id is not None:
            return self.world.user(by_user_id)
        for user_id, member in self.world.members.get(chat.id, {}).items():
            if member.status == "creator":
                return self.world.user(user_id)
        raise SandboxError(f"chat {chat.id} has no creator; pass by_user_id")
