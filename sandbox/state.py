"""The simulated world: people, chats, memberships, invite links, files, bot settings.

Records know how to render themselves as Bot API objects (``to_api``) so every update and
every response is built the same way and validates against aiogram's models.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from .config import SandboxConfig
from .errors import SandboxError
from .notify import Notifier

ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_send_welcome_messages",
    "can_pin_messages",
    "can_manage_topics",
)
DEFAULT_BOT_ADMIN_RIGHTS = {
    **dict.fromkeys(ADMIN_RIGHTS, True),
    "can_promote_members": False,
}
RESTRICTED_PERMISSIONS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_edit_tag",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)
PRESENT_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})


def now_ts() -> int:
    return int(time.time())


@dataclass
class UserRecord:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    phone: str | None = None
    is_bot: bool = False

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


@dataclass
class ChatRecord:
    id: int
    type: str  # private | group | supergroup
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    description: str | None = None

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name", "last_name"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data

    def to_full_info(self) -> dict[str, Any]:
        """ChatFullInfo, including the fields aiogram insists on."""
        data = self.to_api()
        data.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        if self.description is not None:
            data["description"] = self.description
        if self.type != "private":
            data["permissions"] = {
                "can_send_messages": True,
                "can_send_other_messages": True,
                "can_invite_users": True,
            }
        return data


@dataclass
class MemberRecord:
    status: str  # creator | administrator | member | restricted | left | kicked
    until_date: int = 0
    rights: dict[str, bool] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        return self.status in PRESENT_STATUSES

    def to_api(self, user: UserRecord) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "user": user.to_api()}
        if self.status == "creator":
            data["is_anonymous"] = False
        elif self.status == "administrator":
            data.update(can_be_edited=False, is_anonymous=False)
            data.update({right: self.rights.get(right, False) for right in ADMIN_RIGHTS})
        elif self.status == "kicked":
            data["until_date"] = self.until_date
        elif self.status == "restricted":
            data.update(is_member=True, until_date=self.until_date)
            data.update(dict.fromkeys(RESTRICTED_PERMISSIONS, False))
        return data


@dataclass
class InviteLinkRecord:
    invite_link: str
    chat_id: int
    creator_id: int
    name: str | None = None
    expire_date: int | None = None
    member_limit: int | None = None
    creates_join_request: bool = False
    is_primary: bool = False
    is_revoked: bool = False
    joined: int = 0
    pending: int = 0

    def to_api(self, creator: UserRecord) -> dict[str, Any]:
        data: dict[str, Any] = {
            "invite_link": self.invite_link,
            "creator": creator.to_api(),
            "creates_join_request": self.creates_join_request,
            "is_primary": self.is_primary,
            "is_revoked": self.is_revoked,
        }
        for key in ("name", "expire_date", "member_limit"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.creates_join_request:
            data["pending_join_request_count"] = self.pending
        return data

    def unusable_reason(self, now: int) -> str | None:
        if self.is_revoked:
            return "INVITE_HASH_EXPIRED (revoked)"
        if self.expire_date is not None and now >= self.expire_date:
            return "INVITE_HASH_EXPIRED"
        if self.member_limit is not None and self.joined >= self.member_limit:
            return "USERS_TOO_MUCH"
        return None


@dataclass
class JoinRequestRecord:
    chat_id: int
    user_id: int
    invite_link: str | None
    date: int
    decision: str | None = None  # approved | declined


@dataclass
class CallbackRecord:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    answer: dict[str, Any] | None = None


@dataclass
class FileRecord:
    file_id: str
    file_unique_id: str
    kind: str  # photo | document
    filename: str | None = None
    mime_type: str | None = None
    size: int | None = None
    content: bytes | None = None
    url: str | None = None
    width: int = 0
    height: int = 0


@dataclass
class WebhookState:
    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None

    def to_api(self, pending: int, allowed: list[str] | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "url": self.url,
            "has_custom_certificate": False,
            "pending_update_count": pending,
        }
        if self.url:
            data["max_connections"] = self.max_connections
            if allowed is not None:
                data["allowed_updates"] = allowed
        if self.last_error_date is not None:
            data["last_error_date"] = self.last_error_date
            data["last_error_message"] = self.last_error_message
        return data


class World:
    """All entities of one sandbox; nothing is shared between sandboxes."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.bot = UserRecord(
            id=config.bot_id,
            first_name=config.bot_first_name,
            username=config.bot_username,
            is_bot=True,
        )
        self.users: dict[int, UserRecord] = {self.bot.id: self.bot}
        self.chats: dict[int, ChatRecord] = {}
        self.members: dict[int, dict[int, MemberRecord]] = {}
        self.blocked: set[int] = set()
        self.invite_links: dict[str, InviteLinkRecord] = {}
        self.join_requests: dict[tuple[int, int], JoinRequestRecord] = {}
        self.callbacks: dict[str, CallbackRecord] = {}
        self.files: dict[str, FileRecord] = {}
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}  # chat id (None: default) -> MenuButton
        self.descriptions: dict[str, str] = {}
        self.short_descriptions: dict[str, str] = {}
        self.chat_actions: list[tuple[int, str]] = []
        self.webhook = WebhookState()
        self.changed = Notifier()  # callback answers, join request decisions
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A fresh number for callback ids, file ids, invite hashes and chat ids."""
        return next(self._ids)

    # --- lookups -----------------------------------------------------------------------

    def user(self, user_id: int) -> UserRecord:
        try:
            return self.users[user_id]
        except KeyError:
            raise SandboxError(f"unknown user {user_id}; call add_user first") from None

    def chat(self, chat_id: int) -> ChatRecord:
        try:
            return self.chats[chat_id]
        except KeyError:
            raise SandboxError(f"unknown chat {chat_id}") from None

    def find_chat(self, ref: int | str) -> ChatRecord | None:
        """Resolve a Bot API ``chat_id`` (a number or ``@username``)."""
        if isinstance(ref, str) and ref.startswith("@"):
            name = ref[1:].lower()
            return next(
                (c for c in self.chats.values() if c.username and c.username.lower() == name),
                None,
            )
        try:
            return self.chats.get(int(ref))
        except (TypeError, ValueError):
            return None

    def member(self, chat_id: int, user_id: int) -> MemberRecord:
        return self.members.get(chat_id, {}).get(user_id) or MemberRecord(status="left")

    def set_member(self, chat_id: int, user_id: int, record: MemberRecord) -> MemberRecord:
        """Store a membership and return the previous one."""
        old = self.member(chat_id, user_id)
        self.members.setdefault(chat_id, {})[user_id] = record
        return old

    def bot_member(self, chat_id: int) -> MemberRecord:
        return self.member(chat_id, self.bot.id)

    def bot_is_admin(self, chat_id: int) -> bool:
        return self.bot_member(chat_id).status in ("administrator", "creator")

    def has_private_chat(self, user_id: int) -> bool:
        chat = self.chats.get(user_id)
        return chat is not None and chat.type == "private"

    def ensure_private_chat(self, user: UserRecord) -> ChatRecord:
        chat = self.chats.get(user.id)
        if chat is None:
            chat = ChatRecord(
                id=user.id,
                type="private",
                username=user.username,
                first_name=user.first_name,
                last_name=user.last_name,
            )
            self.chats[user.id] = chat
        return chat

    def chat_member_api(self, chat_id: int, user_id: int) -> dict[str, Any]:
        return self.member(chat_id, user_id).to_api(self.user(user_id))
