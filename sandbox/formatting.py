"""Message text as Telegram stores it: parse_mode rendering, trimming, length rules, and the
entities Telegram detects by itself in what people type (``/start`` is a ``bot_command``)."""

from __future__ import annotations

import re
from typing import Any

from .errors import bad_request
from .html_entities import EntityParseError, parse_html, utf16_len

MAX_TEXT = 4096
MAX_CAPTION = 1024

_DETECTORS: list[tuple[str, re.Pattern[str]]] = [
    ("bot_command", re.compile(r"(?<![\w/])/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/])")),
    ("mention", re.compile(r"(?<![\w@])@[a-zA-Z0-9_]{5,32}(?!\w)")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d_]\w*")),
    ("url", re.compile(r"(?<!\w)https?://[^\s<>\"]+")),
]


def render(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]]]:
    """Apply ``parse_mode`` (HTML is parsed; Markdown modes are stored verbatim) and trim."""
    if parse_mode and parse_mode.lower() == "html":
        try:
            text, entities = parse_html(text)
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from exc
    elif parse_mode and parse_mode.lower() not in ("markdown", "markdownv2"):
        raise bad_request(f'unsupported parse_mode "{parse_mode}"')
    return _trim(text, list(entities or []))


def check_text(text: str, *, caption: bool = False) -> None:
    """Telegram's emptiness and length rules, applied after entity parsing."""
    if caption:
        if len(text) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        return
    if not text:
        raise bad_request("message text is empty")
    if len(text) > MAX_TEXT:
        raise bad_request("message is too long")


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram strips surrounding whitespace; entities are shifted and clipped to match."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(text.lstrip())])
    limit = utf16_len(stripped)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, limit)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def detect_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram adds to a typed message: commands, mentions, hashtags, links."""
    found: list[dict[str, Any]] = []
    for kind, pattern in _DETECTORS:
        for match in pattern.finditer(text):
            found.append(
                {
                    "type": kind,
                    "offset": utf16_len(text[: match.start()]),
                    "length": utf16_len(match.group(0)),
                }
            )
    found.sort(key=lambda e: e["offset"])
    return found
