"""Narrowing aiogram's optional fields in handlers whose filters guarantee them.

aiogram types every field Telegram may omit as optional: ``Message.from_user`` (absent
for channel posts), ``Message.text`` (absent for media), ``CallbackQuery.message`` (absent
for inline-mode messages, ``InaccessibleMessage`` when older than 48 hours). The handlers
here are registered with filters (private/group chats, ``F.text``, our own keyboards) that
rule those cases out; these helpers say so once, and fail loudly if a filter is missing.
"""

from __future__ import annotations

from aiogram.types import CallbackQuery, Message, User


def sender(message: Message) -> User:
    """The user who sent ``message`` (set for every message in private and group chats)."""
    if message.from_user is None:
        raise ValueError("message without a sender (a channel post?)")
    return message.from_user


def text_of(message: Message) -> str:
    """The message text; handlers behind ``F.text`` always have one ("" otherwise)."""
    return message.text or ""


def callback_message(callback: CallbackQuery) -> Message:
    """The message carrying the pressed button (our keyboards are on messages we sent)."""
    if not isinstance(callback.message, Message):
        raise ValueError("button on an inaccessible or inline message")
    return callback.message
