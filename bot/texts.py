"""Sending long rendered text safely: split at line breaks under Telegram's 4096 limit."""

from __future__ import annotations

from aiogram.types import Message

LIMIT = 4000


def split_text(text: str, limit: int = LIMIT) -> list[str]:
    """Split at line breaks so no HTML tag spans two messages (templates close tags per line)."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks or [""]


async def send_long(message: Message, text: str) -> None:
    for chunk in split_text(text):
        await message.answer(chunk)
