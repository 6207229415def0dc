"""Which group messages the circle lane may take off the update path: only those whose whole
handling is being counted (``bot.routers.group.is_plain_chatter``)."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.types import Message

from bot.config import Settings
from bot.routers.group import is_plain_chatter

PERSON = {"id": 7, "is_bot": False, "first_name": "Li"}


def _message(chat_type: str = "supergroup", **fields: Any) -> Message:
    data: dict[str, Any] = {
        "message_id": 1,
        "date": 1_700_000_000,
        "chat": {"id": -100, "type": chat_type, "title": "Circle"},
        "from": PERSON,
        **fields,
    }
    return Message.model_validate(data)


MODERATING = Settings(database_url="sqlite://")
NOT_MODERATING = Settings(database_url="sqlite://", circles={"remove_unverified_links": False})
LINK = [{"type": "url", "offset": 0, "length": 17}]


@pytest.mark.parametrize(
    ("message", "settings", "plain"),
    [
        (_message(text="morning, everyone"), MODERATING, True),
        (_message("group", text="morning"), MODERATING, True),
        (_message(photo=[{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]), MODERATING, True),
        (_message("private", text="morning"), MODERATING, False),
        (_message(text="hi", **{"from": {"id": 8, "is_bot": True, "first_name": "Bot"}}), MODERATING, False),
        (_message(text="/top"), MODERATING, False),
        (_message(text="/circle@autocircle_bot"), MODERATING, False),
        (
            _message(caption="/welcome hi", photo=[{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]),
            MODERATING,
            False,
        ),
        (_message(new_chat_members=[PERSON]), MODERATING, False),
        (_message(left_chat_member=PERSON), MODERATING, False),
        (_message(text="https://spam.test", entities=LINK), MODERATING, False),
        (_message(text="https://spam.test", entities=LINK), NOT_MODERATING, True),
    ],
)
def test_only_messages_that_are_just_counted_are_plain_chatter(
    message: Message, settings: Settings, plain: bool
) -> None:
    assert is_plain_chatter(message, settings) is plain
