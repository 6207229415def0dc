"""Message Bot API methods: send, edit, delete, answer callbacks, chat actions, files."""

from __future__ import annotations

import copy
import mimetypes
import struct
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .errors import bad_request, forbidden, too_many_requests
from .formatting import check_text, render
from .history import StoredMessage
from .params import Params, Upload
from .state import ChatRecord, FileRecord, now_ts

if TYPE_CHECKING:
    from .methods import Handler
    from .server import Sandbox

INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
JOIN_REQUEST_CONTACT_WINDOW = 5 * 60  # Telegram lets a bot write to a requester for 5 minutes


# --- shared checks ---------------------------------------------------------------------


def target_chat(sb: Sandbox, p: Params) -> ChatRecord:
    """The chat a message goes to, with Telegram's 400/403 answers for unreachable ones."""
    ref = p.chat_ref()
    world = sb.world
    chat = world.find_chat(ref)
    if chat is None:
        user = world.users.get(ref) if isinstance(ref, int) else None
        if user is None or user.is_bot:
            raise bad_request("chat not found")
        if user.id in world.blocked:
            raise forbidden("bot was blocked by the user")
        if not _may_contact(sb, user.id):
            raise forbidden("bot can't initiate conversation with a user")
        chat = world.ensure_private_chat(user)
    if chat.type == "private":
        if chat.id in world.blocked:
            raise forbidden("bot was blocked by the user")
        return chat
    bot_member = world.bot_member(chat.id)
    if bot_member.status == "kicked":
        raise forbidden(f"bot was kicked from the {chat.type} chat")
    if not bot_member.present:
        raise forbidden(f"bot is not a member of the {chat.type} chat")
    return chat


def _may_contact(sb: Sandbox, user_id: int) -> bool:
    now = now_ts()
    return any(
        request.user_id == user_id and now - request.date < JOIN_REQUEST_CONTACT_WINDOW
        for request in sb.world.join_requests.values()
    )


def check_markup(markup: Any) -> Any:
    """Validate reply_markup the way Telegram does for the parts bots get wrong."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        for row in rows:
            for button in row:
                _check_inline_button(button)
        return markup
    if any(key in markup for key in ("keyboard", "remove_keyboard", "force_reply")):
        return markup
    raise bad_request("can't parse reply keyboard markup JSON object")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Text must be a String")
    actions = [key for key in INLINE_BUTTON_ACTIONS if button.get(key) is not None]
    if not actions:
        raise bad_request("text buttons are unallowed in the inline keyboard")
    data = button.get("callback_data")
    if data is not None:
        raw = str(data).encode("utf-8")
        if not 1 <= len(raw) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
        raise bad_request(f"inline keyboard button URL '{url}' is invalid: unsupported URL protocol")


def _reply_fields(sb: Sandbox, p: Params, chat: ChatRecord) -> dict[str, Any]:
    params = p.get_json("reply_parameters")
    if params is None and p.has("reply_to_message_id"):
        params = {
            "message_id": p.get_int("reply_to_message_id"),
            "allow_sending_without_reply": p.get_bool("allow_sending_without_reply"),
        }
    if params is None:
        return {}
    if not isinstance(params, dict) or "message_id" not in params:
        raise bad_request("can't parse reply parameters JSON object")
    target = sb.history.get(chat.id, int(params["message_id"]))
    if target is None:
        if params.get("allow_sending_without_reply"):
            return {}
        raise bad_request("message to be replied not found")
    return {"reply_to_message": target.as_reply()}


def _rate_limit(sb: Sandbox, chat: ChatRecord) -> None:
    retry_after = sb.limiter.acquire(chat.id, chat.type)
    if retry_after is not None:
        raise too_many_requests(retry_after)


def _deliver(sb: Sandbox, chat: ChatRecord, fields: dict[str, Any], p: Params, **extra: Any) -> dict[str, Any]:
    if p.get_bool("protect_content"):
        fields["has_protected_content"] = True
    stored = sb.events.post_message(chat, sb.world.bot, fields, **extra)
    return copy.deepcopy(stored.message)


# --- sending ---------------------------------------------------------------------------


async def send_message(sb: Sandbox, p: Params) -> dict[str, Any]:
    raw = p.get_str("text", "") or ""
    parse_mode = p.get_str("parse_mode")
    chat = target_chat(sb, p)
    text, entities = render(raw, parse_mode, p.get_json("entities"))
    check_text(text)
    markup = check_markup(p.get_json("reply_markup"))
    fields: dict[str, Any] = {"text": text, **_reply_fields(sb, p, chat)}
    if entities:
        fields["entities"] = entities
    _rate_limit(sb, chat)
    return _deliver(sb, chat, fields, p, reply_markup=markup, parse_mode=parse_mode, raw_text=raw)


async def send_photo(sb: Sandbox, p: Params) -> dict[str, Any]:
    return await _send_media(sb, p, "photo")


async def send_document(sb: Sandbox, p: Params) -> dict[str, Any]:
    return await _send_media(sb, p, "document")


async def _send_media(sb: Sandbox, p: Params, kind: str) -> dict[str, Any]:
    chat = target_chat(sb, p)
    source = p.input_file(kind)
    if source is None:
        raise bad_request(f"there is no {kind} in the request")
    record = _file_record(sb, source, kind)
    raw_caption = p.get_str("caption", "") or ""
    parse_mode = p.get_str("parse_mode")
    caption, entities = render(raw_caption, parse_mode, p.get_json("caption_entities"))
    check_text(caption, caption=True)
    markup = check_markup(p.get_json("reply_markup"))
    fields: dict[str, Any] = {**_reply_fields(sb, p, chat)}
    if kind == "photo":
        fields["photo"] = [_photo_size(record)]
    else:
        fields["document"] = _document(record)
    if caption:
        fields["caption"] = caption
        if entities:
            fields["caption_entities"] = entities
    _rate_limit(sb, chat)
    return _deliver(sb, chat, fields, p, reply_markup=markup, parse_mode=parse_mode, raw_text=raw_caption)


def _file_record(sb: Sandbox, source: Upload | str, kind: str) -> FileRecord:
    files = sb.world.files
    if isinstance(source, str):
        if source in files:
            return files[source]
        if not source.startswith(("http://", "https://")):
            raise bad_request("wrong file identifier/HTTP URL specified")
        filename = urlparse(source).path.rsplit("/", 1)[-1] or None
        record = _new_file(sb, kind, filename=filename, url=source)
    else:
        if not source.content:
            raise bad_request("file must be non-empty")
        record = _new_file(
            sb,
            kind,
            filename=source.filename,
            content=source.content,
            mime_type=source.content_type,
        )
        record.width, record.height = _image_size(source.content)
    if record.mime_type in (None, "application/octet-stream") and record.filename:
        record.mime_type = mimetypes.guess_type(record.filename)[0] or record.mime_type
    return record


def _new_file(sb: Sandbox, kind: str, **fields: Any) -> FileRecord:
    serial = sb.world.next_id()
    content = fields.get("content")
    record = FileRecord(
        file_id=f"SBX{kind[:3].upper()}{serial:08d}",
        file_unique_id=f"U{serial:08d}",
        kind=kind,
        size=len(content) if content is not None else None,
        **fields,
    )
    sb.world.files[record.file_id] = record
    return record


def _image_size(content: bytes) -> tuple[int, int]:
    """Width and height of a PNG or JPEG upload (0x0 when unknown)."""
    if content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) >= 24:
        width, height = struct.unpack(">II", content[16:24])
        return width, height
    if content[:2] == b"\xff\xd8":
        pos = 2
        while pos + 9 < len(content):
            if content[pos] != 0xFF:
                break
            marker = content[pos + 1]
            length = struct.unpack(">H", content[pos + 2 : pos + 4])[0]
            if 0xC0 <= marker <= 0xC3:
                height, width = struct.unpack(">HH", content[pos + 5 : pos + 9])
                return width, height
            pos += 2 + length
    return 0, 0


def _photo_size(record: FileRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "file_id": record.file_id,
        "file_unique_id": record.file_unique_id,
        "width": record.width,
        "height": record.height,
    }
    if record.size is not None:
        data["file_size"] = record.size
    return data


def _document(record: FileRecord) -> dict[str, Any]:
    data: dict[str, Any] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id}
    for key, value in (
        ("file_name", record.filename),
        ("mime_type", record.mime_type),
        ("file_size", record.size),
    ):
        if value is not None:
            data[key] = value
    return data


# --- editing and deleting --------------------------------------------------------------


def _editable(sb: Sandbox, p: Params) -> StoredMessage:
    if p.has("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = sb.world.find_chat(p.chat_ref())
    if chat is None:
        raise bad_request("chat not found")
    stored = sb.history.get(chat.id, p.require_int("message_id", bad_request("message to edit not found")))
    if stored is None:
        raise bad_request("message to edit not found")
    if not stored.from_bot:
        raise bad_request("message can't be edited")
    return stored


_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


def _replace(sb: Sandbox, stored: StoredMessage, message: dict[str, Any], markup: Any) -> dict[str, Any]:
    message["edit_date"] = now_ts()
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        message["reply_markup"] = markup
    else:
        message.pop("reply_markup", None)
    stored.message = message  # a fresh dict: updates already queued keep the old content
    stored.reply_markup = markup
    sb.history.changed.notify()
    return copy.deepcopy(message)


async def edit_message_text(sb: Sandbox, p: Params) -> dict[str, Any]:
    stored = _editable(sb, p)
    if "text" not in stored.message:
        raise bad_request("there is no text in the message to edit")
    raw = p.get_str("text", "") or ""
    parse_mode = p.get_str("parse_mode")
    text, entities = render(raw, parse_mode, p.get_json("entities"))
    check_text(text)
    markup = check_markup(p.get_json("reply_markup"))
    old = stored.message
    if old.get("text") == text and old.get("entities", []) == entities and old.get("reply_markup") == markup:
        raise bad_request(_NOT_MODIFIED)
    message = copy.deepcopy(old)
    message["text"] = text
    message.pop("entities", None)
    if entities:
        message["entities"] = entities
    stored.raw_text, stored.parse_mode = raw, parse_mode
    return _replace(sb, stored, message, markup)


async def edit_message_reply_markup(sb: Sandbox, p: Params) -> dict[str, Any]:
    stored = _editable(sb, p)
    markup = check_markup(p.get_json("reply_markup"))
    if stored.message.get("reply_markup") == markup:
        raise bad_request(_NOT_MODIFIED)
    return _replace(sb, stored, copy.deepcopy(stored.message), markup)


async def delete_message(sb: Sandbox, p: Params) -> bool:
    chat = sb.world.find_chat(p.chat_ref())
    if chat is None:
        raise bad_request("chat not found")
    stored = sb.history.get(chat.id, p.require_int("message_id", bad_request("message to delete not found")))
    if stored is None:
        raise bad_request("message to delete not found")
    if not (stored.from_bot or chat.type == "private" or sb.world.bot_is_admin(chat.id)):
        raise bad_request("message can't be deleted")
    stored.deleted = True
    sb.history.changed.notify()
    return True


# --- callbacks, actions, files ---------------------------------------------------------


async def answer_callback_query(sb: Sandbox, p: Params) -> bool:
    query_id = p.get_str("callback_query_id", "") or ""
    record = sb.world.callbacks.get(query_id)
    if record is None or record.answer is not None:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    text = p.get_str("text")
    if text is not None and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    record.answer = {
        "text": text,
        "show_alert": p.get_bool("show_alert"),
        "url": p.get_str("url"),
        "cache_time": p.get_int("cache_time", 0),
    }
    sb.world.changed.notify()
    return True


async def send_chat_action(sb: Sandbox, p: Params) -> bool:
    chat = target_chat(sb, p)
    action = p.get_str("action", "") or ""
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    sb.world.chat_actions.append((chat.id, action))
    return True


async def get_file(sb: Sandbox, p: Params) -> dict[str, Any]:
    record = sb.world.files.get(p.get_str("file_id", "") or "")
    if record is None:
        raise bad_request("invalid file_id")
    data: dict[str, Any] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id}
    if record.size is not None:
        data["file_size"] = record.size
    if record.content is not None:
        data["file_path"] = f"{record.kind}s/{record.file_id}"
    return data


HANDLERS: dict[str, Handler] = {
    "sendMessage": send_message,
    "sendPhoto": send_photo,
    "sendDocument": send_document,
    "editMessageText": edit_message_text,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "answerCallbackQuery": answer_callback_query,
    "sendChatAction": send_chat_action,
    "getFile": get_file,
}
