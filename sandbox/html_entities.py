"""Telegram's HTML ``parse_mode``: turn markup into plain text plus MessageEntity dicts.

Written to reject what Telegram rejects (unknown tags, mismatched or unclosed tags,
unsupported ``&entities;``, a bare ``<``) so that escaping bugs surface in tests instead
of in production. Offsets and lengths are counted in UTF-16 code units, as Telegram does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

# Tag name -> entity type; None means the type depends on attributes.
TAG_TYPES: dict[str, str | None] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": None,
    "tg-emoji": "custom_emoji",
}

_ENTITY_RE = re.compile(r"&(#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,8}|[a-zA-Z][a-zA-Z0-9]{0,31});")
_TAG_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*")


class EntityParseError(ValueError):
    """The markup is malformed; the message becomes ``can't parse entities: <msg>``."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    offset: int  # UTF-16 offset in the output text
    language: str | None = None
    children: list[dict[str, Any]] = field(default_factory=list)


class _Parser:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.out: list[str] = []
        self.out_len = 0  # UTF-16 units emitted so far
        self.stack: list[_OpenTag] = []
        self.entities: list[dict[str, Any]] = []

    def byte_offset(self, index: int) -> int:
        return len(self.src[:index].encode("utf-8"))

    def emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.out_len += utf16_len(chunk)

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        src = self.src
        while self.pos < len(src):
            ch = src[self.pos]
            if ch == "&":
                self.emit(self.read_entity())
            elif ch == "<":
                if src.startswith("</", self.pos):
                    self.read_end_tag()
                else:
                    self.read_start_tag()
            else:
                nxt = self._next_special(self.pos)
                self.emit(src[self.pos : nxt])
                self.pos = nxt
        if self.stack:
            raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def _next_special(self, start: int) -> int:
        indices = [i for i in (self.src.find("&", start), self.src.find("<", start)) if i >= 0]
        return min(indices) if indices else len(self.src)

    def read_entity(self) -> str:
        text, self.pos = _decode_entity_at(self.src, self.pos, self.byte_offset)
        return text

    def read_start_tag(self) -> None:
        start = self.pos
        match = _TAG_NAME_RE.match(self.src, self.pos + 1)
        name = match.group(0).lower() if match else ""
        if name not in TAG_TYPES:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {self.byte_offset(start)}')
        assert match is not None
        self.pos = match.end()
        attrs = self.read_attributes(start)
        tag = _OpenTag(name=name, attrs=attrs, offset=self.out_len)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset(start)}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise EntityParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {self.byte_offset(start)}'
            )
        if name == "code":
            lang_class = attrs.get("class", "")
            if lang_class.startswith("language-") and self.stack and self.stack[-1].name == "pre":
                tag.language = lang_class[len("language-") :]
        self.stack.append(tag)

    def read_attributes(self, tag_start: int) -> dict[str, str]:
        src = self.src
        attrs: dict[str, str] = {}
        while True:
            while self.pos < len(src) and src[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(src):
                raise EntityParseError(f"Unclosed start tag at byte offset {self.byte_offset(tag_start)}")
            if src[self.pos] == ">":
                self.pos += 1
                return attrs
            match = _ATTR_NAME_RE.match(src, self.pos)
            if match is None:
                raise EntityParseError(
                    f"Expected equal sign in declaration of an attribute of the tag at byte "
                    f"offset {self.byte_offset(tag_start)}"
                )
            attr = match.group(0).lower()
            self.pos = match.end()
            value = ""
            if self.pos < len(src) and src[self.pos] == "=":
                self.pos += 1
                value = self.read_attribute_value(tag_start)
            attrs[attr] = value

    def read_attribute_value(self, tag_start: int) -> str:
        src = self.src
        if self.pos >= len(src):
            raise EntityParseError(f"Unclosed start tag at byte offset {self.byte_offset(tag_start)}")
        quote = src[self.pos]
        if quote in "\"'":
            end = src.find(quote, self.pos + 1)
            if end < 0:
                raise EntityParseError(f"Unclosed end of attribute value at byte offset {self.byte_offset(tag_start)}")
            raw = src[self.pos + 1 : end]
            self.pos = end + 1
        else:
            end = self.pos
            while end < len(src) and not src[end].isspace() and src[end] != ">":
                end += 1
            raw = src[self.pos : end]
            self.pos = end
        return _decode_attribute(raw, self.byte_offset(tag_start))

    def read_end_tag(self) -> None:
        start = self.pos
        close = self.src.find(">", self.pos)
        if close < 0:
            raise EntityParseError(f"Unclosed end tag at byte offset {self.byte_offset(start)}")
        name = self.src[self.pos + 2 : close].strip().lower()
        self.pos = close + 1
        if not self.stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {self.byte_offset(start)}")
        top = self.stack.pop()
        if top.name != name:
            raise EntityParseError(
                f"Unmatched end tag at byte offset {self.byte_offset(start)}, "
                f'expected "</{top.name}>", found "</{name}>"'
            )
        self.close_tag(top)

    def close_tag(self, tag: _OpenTag) -> None:
        length = self.out_len - tag.offset
        if tag.name == "code" and tag.language is not None:
            self.stack[-1].language = tag.language  # folded into the enclosing <pre>
            return
        if length <= 0:
            return  # Telegram drops empty entities
        kind = TAG_TYPES[tag.name]
        if tag.name == "blockquote":
            kind = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
        assert kind is not None
        entity: dict[str, Any] = {"type": kind, "offset": tag.offset, "length": length}
        if kind == "text_link":
            href = tag.attrs.get("href", "").strip()
            if not href:
                return  # <a> without a target is plain text for Telegram
            entity["url"] = href
        elif kind == "pre" and tag.language:
            entity["language"] = tag.language
        elif kind == "custom_emoji":
            entity["custom_emoji_id"] = tag.attrs["emoji-id"]
        self.entities.append(entity)


def _decode_entity_at(src: str, pos: int, byte_offset: Callable[[int], int]) -> tuple[str, int]:
    """Decode the ``&...;`` at ``pos``; a lone ``&`` that starts no entity stays literal."""
    match = _ENTITY_RE.match(src, pos)
    if match is None:
        return "&", pos + 1
    body = match.group(1)
    if body.startswith("#"):
        digits = body[1:]
        code = int(digits[1:], 16) if digits[:1] in ("x", "X") else int(digits)
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise EntityParseError(f"Invalid numeric HTML entity at byte offset {byte_offset(pos)}")
        return chr(code), match.end()
    if body not in NAMED_ENTITIES:
        raise EntityParseError(f'Unsupported HTML entity "&{body};" at byte offset {byte_offset(pos)}')
    return NAMED_ENTITIES[body], match.end()


def _decode_attribute(raw: str, tag_offset: int) -> str:
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        amp = raw.find("&", pos)
        if amp < 0:
            out.append(raw[pos:])
            break
        out.append(raw[pos:amp])
        text, pos = _decode_entity_at(raw, amp, lambda _index: tag_offset)
        out.append(text)
    return "".join(out)


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Return ``(plain_text, entities)`` or raise :class:`EntityParseError`."""
    return _Parser(source).run()
