"""Request counters, so tests can assert how the bot used the API (and how often it hit 429)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, int]] = field(default_factory=Counter)
    too_many_requests: int = 0

    def record_request(self, method: str) -> None:
        self.requests[method] += 1

    def record_error(self, method: str, status: int) -> None:
        self.errors[(method, status)] += 1
        if status == 429:
            self.too_many_requests += 1

    def snapshot(self) -> dict[str, Any]:
        errors: dict[str, dict[str, int]] = {}
        for (method, status), count in sorted(self.errors.items()):
            errors.setdefault(method, {})[str(status)] = count
        return {
            "requests": dict(sorted(self.requests.items())),
            "errors": errors,
            "too_many_requests": self.too_many_requests,
        }
