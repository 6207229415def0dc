"""Chat Bot API methods: chat info, members, invite links, join requests, bans."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from .errors import bad_request
from .params import Params
from .state import ChatRecord, InviteLinkRecord, MemberRecord, UserRecord, now_ts

if TYPE_CHECKING:
    from .methods import Handler
    from .server import Sandbox


def _chat(sb: Sandbox, p: Params) -> ChatRecord:
    chat = sb.world.find_chat(p.chat_ref())
    if chat is None:
        raise bad_request("chat not found")
    never_joined = sb.world.bot.id not in sb.world.members.get(chat.id, {})
    if chat.type != "private" and never_joined:
        raise bad_request("chat not found")  # a bot never in a group cannot see it at all
    return chat


def _group(sb: Sandbox, p: Params) -> ChatRecord:
    chat = _chat(sb, p)
    if chat.type == "private":
        raise bad_request("method is available for supergroup and channel chats only")
    return chat


def _user(sb: Sandbox, p: Params) -> UserRecord:
    user = sb.world.users.get(p.require_int("user_id"))
    if user is None:
        raise bad_request("user not found")
    return user


def _require_right(sb: Sandbox, chat: ChatRecord, right: str, reason: str) -> None:
    member = sb.world.bot_member(chat.id)
    if member.status == "creator":
        return
    if member.status != "administrator" or not member.rights.get(right, False):
        raise bad_request(reason)


async def get_chat(sb: Sandbox, p: Params) -> dict[str, Any]:
    return _chat(sb, p).to_full_info()


async def get_chat_member(sb: Sandbox, p: Params) -> dict[str, Any]:
    chat = _chat(sb, p)
    user = _user(sb, p)
    if chat.type == "private" and user.id in (chat.id, sb.world.bot.id):
        return MemberRecord(status="member").to_api(user)
    return sb.world.chat_member_api(chat.id, user.id)


async def get_chat_administrators(sb: Sandbox, p: Params) -> list[dict[str, Any]]:
    chat = _group(sb, p)
    members = sb.world.members.get(chat.id, {})
    return [
        record.to_api(sb.world.user(user_id))
        for user_id, record in members.items()
        if record.status in ("creator", "administrator")
    ]


async def get_chat_member_count(sb: Sandbox, p: Params) -> int:
    chat = _chat(sb, p)
    if chat.type == "private":
        return 2
    return sum(1 for m in sb.world.members.get(chat.id, {}).values() if m.present)


# --- invite links ----------------------------------------------------------------------

_NO_LINK_RIGHTS = "not enough rights to manage chat invite link"


def _new_link(sb: Sandbox, chat: ChatRecord, **fields: Any) -> InviteLinkRecord:
    while True:
        link = "https://t.me/+" + secrets.token_urlsafe(12)
        if link not in sb.world.invite_links:
            break
    record = InviteLinkRecord(invite_link=link, chat_id=chat.id, creator_id=sb.world.bot.id, **fields)
    sb.world.invite_links[link] = record
    return record


async def create_chat_invite_link(sb: Sandbox, p: Params) -> dict[str, Any]:
    chat = _group(sb, p)
    _require_right(sb, chat, "can_invite_users", _NO_LINK_RIGHTS)
    name = p.get_str("name")
    if name is not None and len(name) > 32:
        raise bad_request("INVITE_LINK_NAME_INVALID")
    expire_date = p.get_int("expire_date")
    if expire_date is not None and expire_date != 0 and expire_date <= now_ts():
        raise bad_request("EXPIRE_DATE_INVALID")
    member_limit = p.get_int("member_limit")
    if member_limit is not None and not 1 <= member_limit <= 99999:
        raise bad_request("USAGE_LIMIT_INVALID")
    creates_join_request = p.get_bool("creates_join_request")
    if creates_join_request and member_limit:
        raise bad_request("member limit can't be specified for links requiring administrator approval")
    record = _new_link(
        sb,
        chat,
        name=name,
        expire_date=expire_date or None,
        member_limit=member_limit,
        creates_join_request=creates_join_request,
    )
    return record.to_api(sb.world.bot)


async def revoke_chat_invite_link(sb: Sandbox, p: Params) -> dict[str, Any]:
    chat = _group(sb, p)
    _require_right(sb, chat, "can_invite_users", _NO_LINK_RIGHTS)
    record = sb.world.invite_links.get(p.get_str("invite_link", "") or "")
    if record is None or record.chat_id != chat.id:
        raise bad_request("INVITE_HASH_EXPIRED")
    record.is_revoked = True
    return record.to_api(sb.world.user(record.creator_id))


async def export_chat_invite_link(sb: Sandbox, p: Params) -> str:
    chat = _group(sb, p)
    _require_right(sb, chat, "can_invite_users", _NO_LINK_RIGHTS)
    for record in sb.world.invite_links.values():
        if record.chat_id == chat.id and record.is_primary:
            record.is_revoked = True
            record.is_primary = False
    return _new_link(sb, chat, is_primary=True).invite_link


# --- join requests ---------------------------------------------------------------------


def _join_request(sb: Sandbox, p: Params) -> tuple[ChatRecord, UserRecord]:
    chat = _group(sb, p)
    user = _user(sb, p)
    _require_right(sb, chat, "can_invite_users", "not enough rights")
    request = sb.world.join_requests.get((chat.id, user.id))
    if request is None or request.decision is not None:
        raise bad_request("HIDE_REQUESTER_MISSING")
    return chat, user


def _finish_request(sb: Sandbox, chat: ChatRecord, user: UserRecord, decision: str) -> InviteLinkRecord | None:
    request = sb.world.join_requests[(chat.id, user.id)]
    request.decision = decision
    link = sb.world.invite_links.get(request.invite_link or "")
    if link is not None:
        link.pending = max(link.pending - 1, 0)
    sb.world.changed.notify()
    return link


async def approve_chat_join_request(sb: Sandbox, p: Params) -> bool:
    chat, user = _join_request(sb, p)
    link = _finish_request(sb, chat, user, "approved")
    link_api = None
    if link is not None:
        link.joined += 1
        link_api = link.to_api(sb.world.user(link.creator_id))
    sb.events.change_member(
        chat,
        sb.world.bot,
        user,
        MemberRecord(status="member"),
        invite_link=link_api,
        via_join_request=True,
    )
    sb.events.post_message(chat, user, {"new_chat_members": [user.to_api()]})
    return True


async def decline_chat_join_request(sb: Sandbox, p: Params) -> bool:
    chat, user = _join_request(sb, p)
    _finish_request(sb, chat, user, "declined")
    return True


# --- bans and leaving ------------------------------------------------------------------

_NO_RESTRICT_RIGHTS = "not enough rights to restrict/unrestrict chat member"


async def ban_chat_member(sb: Sandbox, p: Params) -> bool:
    chat = _group(sb, p)
    user = _user(sb, p)
    _require_right(sb, chat, "can_restrict_members", _NO_RESTRICT_RIGHTS)
    current = sb.world.member(chat.id, user.id)
    if current.status == "creator":
        raise bad_request("can't remove chat owner")
    if user.id == sb.world.bot.id:
        raise bad_request("can't remove self")
    was_present = current.present
    until = p.get_int("until_date", 0) or 0
    sb.events.change_member(chat, sb.world.bot, user, MemberRecord(status="kicked", until_date=until))
    if was_present:
        sb.events.post_message(chat, sb.world.bot, {"left_chat_member": user.to_api()})
    return True


async def unban_chat_member(sb: Sandbox, p: Params) -> bool:
    """Like Telegram: without only_if_banned a present member is removed (but may rejoin)."""
    chat = _group(sb, p)
    user = _user(sb, p)
    _require_right(sb, chat, "can_restrict_members", _NO_RESTRICT_RIGHTS)
    current = sb.world.member(chat.id, user.id)
    if current.status == "kicked" or (current.present and not p.get_bool("only_if_banned")):
        if current.status == "creator":
            raise bad_request("can't remove chat owner")
        sb.events.change_member(chat, sb.world.bot, user, MemberRecord(status="left"))
        if current.present:
            sb.events.post_message(chat, sb.world.bot, {"left_chat_member": user.to_api()})
    return True


async def leave_chat(sb: Sandbox, p: Params) -> bool:
    chat = _group(sb, p)
    if not sb.world.bot_member(chat.id).present:
        raise bad_request("USER_NOT_PARTICIPANT")
    sb.events.change_member(chat, sb.world.bot, sb.world.bot, MemberRecord(status="left"))
    return True


HANDLERS: dict[str, Handler] = {
    "getChat": get_chat,
    "getChatMember": get_chat_member,
    "getChatAdministrators": get_chat_administrators,
    "getChatMemberCount": get_chat_member_count,
    "createChatInviteLink": create_chat_invite_link,
    "revokeChatInviteLink": revoke_chat_invite_link,
    "exportChatInviteLink": export_chat_invite_link,
    "approveChatJoinRequest": approve_chat_join_request,
    "declineChatJoinRequest": decline_chat_join_request,
    "banChatMember": ban_chat_member,
    "unbanChatMember": unban_chat_member,
    "leaveChat": leave_chat,
}
