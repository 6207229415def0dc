"""Error types: Bot API failures in Telegram's exact wire shape, and misuse of the control API."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Bot API call failed; rendered as ``{"ok": false, "error_code", "description"}``."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class SandboxError(Exception):
    """A test or demo asked the simulated world for something impossible (unknown user, ...)."""


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def forbidden(reason: str) -> ApiError:
    return ApiError(403, f"Forbidden: {reason}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429,
        f"Too Many Requests: retry after {retry_after}",
        {"retry_after": retry_after},
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def method_not_found() -> ApiError:
    return ApiError(404, "Not Found: method not found")


def conflict(reason: str) -> ApiError:
    return ApiError(409, f"Conflict: {reason}")
