"""Telegram's limits shared by every sender (issue 16, item 4), in Redis.

Telegram counts the bot's messages per second over ALL of its connections, so two senders
with 25/s each would send 50/s. Here the senders (and, optionally, the web processes'
replies) take their tokens from ONE bucket in Redis, with one Lua script so that reading,
refilling and taking a token is atomic and uses Redis's clock (no skew between machines):

* **global rate**: a token bucket ``rate`` per second holding ``capacity`` tokens. A token
  may be booked ahead (tokens go negative, a queue of reservations): the script answers how
  long to wait, the caller sleeps, then sends. Each sender keeps at most one booking open, so
  the queue stays short and an interactive reply is never far behind.
* **one message in flight per chat**: the same script refuses (``-1``) while another sender
  holds the chat's key, and otherwise takes it for the send (with a lease so a crashed sender
  cannot block the chat for long). Per-chat order and the per-chat limit then hold across
  senders; the caller puts the row back on its schedule and tries a little later.
* **the 429 pause**: a 429 sets ``pause_until`` for everybody; the script adds it to every
  wait.

The in-flight window after a crash is unchanged and per sender (``SenderConfig.window``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

ACQUIRE = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local rate = tonumber(ARGV[1]) / 1000.0
local capacity = tonumber(ARGV[2])
local lease = tonumber(ARGV[4])
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil then tokens = capacity; ts = now end
if now > ts then tokens = math.min(capacity, tokens + (now - ts) * rate); ts = now end
local at = now
if tokens < 1 then at = now + math.ceil((1 - tokens) / rate) end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], 600000)
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > at then at = pause end
if ARGV[5] == '1' then
  redis.call('SET', KEYS[3], ARGV[3], 'PX', lease + (at - now))
end
return at - now
"""

PAUSE = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > current then
  redis.call('SET', KEYS[1], tostring(until_ms), 'PX', tonumber(ARGV[1]) + 1000)
end
return until_ms - now
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Grant:
    """A booked token: send after ``wait_s``; ``holds_chat`` until ``release``."""

    wait_s: float
    chat_id: int | None


class SharedLimits:
    """The bot's shared bucket, pause and per-chat turn in Redis (asyncio client)."""

    def __init__(
        self,
        url: str,
        bot_id: int,
        *,
        rate_per_s: float,
        burst_s: float = 0.2,
        chat_lease_s: float = 30.0,
        owner: str | None = None,
    ) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url)
        base = f"autocircle:limits:{bot_id}:"
        self.bucket_key = base + "bucket"
        self.pause_key = base + "pause_until"
        self.chat_prefix = base + "chat:"
        self.rate_per_s = rate_per_s
        self.capacity = max(1.0, rate_per_s * burst_s)
        self.chat_lease_ms = int(chat_lease_s * 1000)
        self.owner = owner or uuid.uuid4().hex  # whose chat keys these are
        self._acquire = self.redis.register_script(ACQUIRE)
        self._pause = self.redis.register_script(PAUSE)
        self._release = self.redis.register_script(RELEASE)

    async def acquire(self, chat_id: int | None = None) -> Grant | None:
        """Book a global token (and the chat's turn when ``chat_id`` is given); None when the
        chat has a message in flight at another sender (no token is taken then)."""
        chat_key = self.chat_prefix + str(chat_id if chat_id is not None else 0)
        wait_ms = await self._acquire(
            keys=[self.bucket_key, self.pause_key, chat_key],
            args=[self.rate_per_s, self.capacity, self.owner, self.chat_lease_ms, "1" if chat_id is not None else "0"],
        )
        if int(wait_ms) < 0:
            return None
        return Grant(max(int(wait_ms), 0) / 1000.0, chat_id)

    async def release(self, chat_id: int) -> None:
        await self._release(keys=[self.chat_prefix + str(chat_id)], args=[self.owner])

    async def pause(self, seconds: float) -> None:
        """Telegram said 429: every sender waits ``seconds`` (the longest pause wins)."""
        await self._pause(keys=[self.pause_key], args=[int(seconds * 1000)])

    async def paused_for(self) -> float:
        until = await self.redis.get(self.pause_key)
        if until is None:
            return 0.0
        now_s, now_us = await self.redis.time()
        return max(0.0, (int(until) - (now_s * 1000 + now_us // 1000)) / 1000.0)

    async def close(self) -> None:
        await self.redis.aclose()
