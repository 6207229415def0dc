"""Bot API request decoding: JSON, urlencoded and multipart bodies plus the query string.

aiogram's AiohttpSession posts ``application/x-www-form-urlencoded`` (or multipart when a
file is attached) where every non-string value is JSON-encoded ("true", "123",
'{"inline_keyboard": ...}') and files are referenced as ``attach://<part name>``; plain
JSON clients send native values. The typed getters below accept both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import ApiError, bad_request


@dataclass
class Upload:
    """A file that arrived in a multipart body."""

    filename: str | None
    content: bytes
    content_type: str | None


_MISSING = object()


class Params:
    """Typed access to the parameters of one Bot API call."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.uploads = uploads or {}

    @classmethod
    async def from_request(cls, request: web.Request) -> Params:
        values: dict[str, Any] = dict(request.query)
        uploads: dict[str, Upload] = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise bad_request("can't parse JSON body") from exc
                if not isinstance(body, dict):
                    raise bad_request("JSON body must be an object")
                values.update(body)
            elif request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        uploads[key] = Upload(
                            filename=value.filename,
                            content=value.file.read(),
                            content_type=value.content_type,
                        )
                    else:
                        values[key] = value
        return cls(values, uploads)

    def has(self, name: str) -> bool:
        return self.values.get(name) is not None or name in self.uploads

    def get_str(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, (dict, list)):
            raise bad_request(f'field "{name}" must be of type String')
        return value if isinstance(value, str) else str(value)

    def require_str(self, name: str, error: ApiError | None = None) -> str:
        value = self.get_str(name)
        if value is None:
            raise error or bad_request(f"{name} is empty")
        return value

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise bad_request(f'field "{name}" must be of type Integer')
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{name}" must be of type Integer') from None

    def require_int(self, name: str, error: ApiError | None = None) -> int:
        value = self.get_int(name)
        if value is None:
            raise error or bad_request(f"{name} is empty")
        return value

    def get_bool(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return bool(value)
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off", ""):
            return False
        raise bad_request(f'field "{name}" must be of type Boolean')

    def get_json(self, name: str, default: Any = None) -> Any:
        """A structured field; form bodies carry it as a JSON string."""
        value = self.values.get(name, _MISSING)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value

    def chat_ref(self, name: str = "chat_id") -> int | str:
        value = self.values.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        if isinstance(value, str) and value.startswith("@"):
            return value
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None

    def input_file(self, name: str) -> Upload | str | None:
        """An uploaded file (direct or via ``attach://``), or a file_id / URL string."""
        if name in self.uploads:
            return self.uploads[name]
        value = self.get_str(name)
        if value is None:
            return None
        if value.startswith("attach://"):
            part = value[len("attach://") :]
            if part not in self.uploads:
                raise bad_request(f'file attachment "{part}" not found')
            return self.uploads[part]
        return value
