"""Telegram's flood limits as token buckets, and injected failures ("a 429 storm")."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import SandboxConfig
from .errors import ApiError, too_many_requests

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    """Holds up to ``capacity`` tokens, refilled at ``rate`` tokens per second."""

    capacity: float
    rate: float
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 when one is available now)."""
        self._refill(now)
        if self.tokens >= 1.0:
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0


class RateLimiter:
    """One overall bucket per bot, one per private chat, one per group."""

    def __init__(self, config: SandboxConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._overall = TokenBucket(max(config.bot_rate_per_s, 1.0), config.bot_rate_per_s)
        self._chats: dict[int, TokenBucket] = {}
        # which limit each 429 came from (the bot is not told, as Telegram does not say)
        self.overall_hits = 0
        self.chat_hits = 0

    def _bucket_for(self, chat_id: int, chat_type: str) -> TokenBucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            if chat_type == "private":
                bucket = TokenBucket(max(float(self.config.private_burst), 1.0), self.config.private_rate_per_s)
            else:
                per_min = float(self.config.group_per_min)
                bucket = TokenBucket(max(per_min, 1.0), per_min / 60.0)
            self._chats[chat_id] = bucket
        return bucket

    def acquire(self, chat_id: int, chat_type: str) -> int | None:
        """Consume a send slot; return ``retry_after`` seconds instead when over a limit."""
        if not self.config.enforce_limits:
            return None
        now = self.clock()
        chat_bucket = self._bucket_for(chat_id, chat_type)
        overall, per_chat = self._overall.wait_time(now), chat_bucket.wait_time(now)
        wait = max(overall, per_chat)
        if wait > 0:
            if overall > 0:
                self.overall_hits += 1
            else:
                self.chat_hits += 1
            return max(1, math.ceil(wait))
        self._overall.take(now)
        chat_bucket.take(now)
        return None

    def reset(self) -> None:
        self._chats.clear()
        self._overall = TokenBucket(max(self.config.bot_rate_per_s, 1.0), self.config.bot_rate_per_s)


# Methods a "method=None" failure rule hits: everything except the polling loop itself, so
# a storm on sends does not also stall update delivery (use method="*" for truly all).
_NOT_HIT_BY_DEFAULT = frozenset({"getupdates", "getme"})


@dataclass
class FailureRule:
    """Answer matching calls with ``status`` for ``count`` calls and/or until ``until``."""

    rule_id: int
    methods: frozenset[str] | None  # lower-case names; None = all but getUpdates/getMe
    status: int
    count: int | None
    until: float | None
    retry_after: int
    description: str | None
    hits: int = 0

    def matches(self, method: str, now: float) -> bool:
        if self.methods is None:
            if method in _NOT_HIT_BY_DEFAULT:
                return False
        elif "*" not in self.methods and method not in self.methods:
            return False
        return not self.exhausted(now)

    def exhausted(self, now: float) -> bool:
        if self.count is not None and self.hits >= self.count:
            return True
        return self.until is not None and now >= self.until

    def error(self) -> ApiError:
        if self.status == 429:
            error = too_many_requests(self.retry_after)
            if self.description:
                error.description = self.description
            return error
        return ApiError(self.status, self.description or _default_description(self.status))


def _default_description(status: int) -> str:
    return {
        400: "Bad Request: injected failure",
        401: "Unauthorized",
        403: "Forbidden: injected failure",
        404: "Not Found",
        409: "Conflict: injected failure",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(status, f"Error {status}")


@dataclass
class FaultInjector:
    """Injected errors, checked before a Bot API call does anything."""

    clock: Clock = time.monotonic
    rules: list[FailureRule] = field(default_factory=list)
    _next_id: int = 1

    def add(
        self,
        method: str | list[str] | None,
        status: int,
        count: int | None,
        duration: float | None,
        retry_after: int,
        description: str | None,
    ) -> int:
        if count is None and duration is None:
            count = 1
        if isinstance(method, str):
            method = [method]
        methods = frozenset(m.lower() for m in method) if method is not None else None
        rule = FailureRule(
            rule_id=self._next_id,
            methods=methods,
            status=status,
            count=count,
            until=self.clock() + duration if duration is not None else None,
            retry_after=retry_after,
            description=description,
        )
        self._next_id += 1
        self.rules.append(rule)
        return rule.rule_id

    def check(self, method: str) -> ApiError | None:
        now = self.clock()
        self.rules = [rule for rule in self.rules if not rule.exhausted(now)]
        for rule in self.rules:
            if rule.matches(method.lower(), now):
                rule.hits += 1
                return rule.error()
        return None

    def clear(self, rule_id: int | None = None) -> None:
        self.rules = [r for r in self.rules if rule_id is not None and r.rule_id != rule_id]
