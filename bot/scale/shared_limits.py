"""Telegram's limits shared by every process of the bot (issue 16, item 4), in Redis.

Telegram counts the bot's messages per second over ALL of its connections, so two senders
with 25/s each would send 50/s, and the web processes' replies count too. Every process takes
its tokens from buckets in Redis, each step one Lua script (reading, refilling and taking is
atomic and uses Redis's clock: no skew between machines). The buckets:

* **global** (``bucket``): ``rate`` per second (``AUTOCIRCLE_DELIVERY__RATE_PER_S``), holding
  ``rate × burst_s`` tokens. Every message of the bot takes one: pushes and replies alike, so
  together they never pass the rate.
* **senders** (``senders``): ``rate × (1 − reply_share)`` per second
  (``AUTOCIRCLE_SCALE__REPLY_SHARE``, default 0.2). A push takes a token here *and* from the
  global bucket, so all senders together use at most 80% of the rate and at least 20% is
  always left to replies; when nobody writes to the bot the broadcast runs at 80% of the rate.
* **per chat** (``chat_rate:<chat>``): the sender's per-chat limit (a private chat
  ``private_per_s`` with a burst of ``private_burst``, a group ``group_per_min``), shared by
  the pushes and the replies to that chat, so a reply and a push in the same second never
  pass Telegram's per-chat limit either.

Replies come first. A **reply** books its tokens (the chat's, then the global one): a bucket
may go negative, a queue of reservations, and the script answers how long to wait. A
**push** never books ahead: it takes its tokens only when every bucket it needs holds one
*now* (else it is told how long to wait, and nothing is taken). A reply waiting for a token
has therefore always booked it before any push can take it: pushes never starve replies, and
a reply waits at most for the replies booked before it (plus one token's time).

Also shared:

* **one message in flight per chat** among the senders: a push takes the chat's key for the
  send (with a lease, so a crashed sender cannot block the chat for long); another sender
  puts the row back on its schedule and tries a little later.
* **the 429 pause**: a 429 sets ``pause_until`` for everybody; a push waits it out without
  taking anything, a reply's booking is moved behind it.

The replies' side is ``bot.scale.replies`` (a session middleware of the web processes). The
in-flight window after a crash is unchanged and per sender (``SenderConfig.window``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

_HEAD = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local function load(key, rate, capacity)
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1])
  local ts = tonumber(b[2])
  if tokens == nil then return capacity end
  if now > ts then tokens = math.min(capacity, tokens + (now - ts) * rate) end
  return tokens
end
local function save(key, tokens, rate, capacity)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((capacity - tokens) / rate) + 1000)
end
local function wait_for(tokens, rate)
  if tokens >= 1 then return 0 end
  return math.ceil((1 - tokens) / rate)
end
"""

# KEYS: global bucket, senders' bucket, pause, chat in flight, chat bucket
# ARGV: rate/s, capacity, senders' rate/s, senders' capacity, owner, lease ms, chat rate/s,
#       chat capacity
# -> {1, 0} taken: send now; {0, ms} wait (global rate or pause), nothing taken;
#    {-1, ms} this chat must wait (in flight at another sender, or its own limit)
SENDER_TURN = (
    _HEAD
    + """
if redis.call('EXISTS', KEYS[4]) == 1 then return {-1, 200} end
local pause = tonumber(redis.call('GET', KEYS[3]) or '0')
if pause > now then return {0, pause - now} end
local rate, capacity = tonumber(ARGV[1]) / 1000.0, tonumber(ARGV[2])
local srate, scap = tonumber(ARGV[3]) / 1000.0, tonumber(ARGV[4])
local crate, ccap = tonumber(ARGV[7]) / 1000.0, tonumber(ARGV[8])
local chat = load(KEYS[5], crate, ccap)
if chat < 1 then return {-1, wait_for(chat, crate)} end
local s = load(KEYS[2], srate, scap)
if s < 1 then return {0, wait_for(s, srate)} end
local g = load(KEYS[1], rate, capacity)
if g < 1 then return {0, wait_for(g, rate)} end
save(KEYS[1], g - 1, rate, capacity)
save(KEYS[2], s - 1, srate, scap)
save(KEYS[5], chat - 1, crate, ccap)
redis.call('SET', KEYS[4], ARGV[5], 'PX', tonumber(ARGV[6]))
return {1, 0}
"""
)

# KEYS: global bucket, pause, chat bucket
# ARGV: rate/s, capacity, chat rate/s, chat capacity, '1' to book the chat's token first
# -> {0, ms}: the chat's token is booked, ask again (without the chat) after ms;
#    {1, ms}: the global token is booked, send after ms (behind any pause)
REPLY_TURN = (
    _HEAD
    + """
if ARGV[5] == '1' then
  local crate, ccap = tonumber(ARGV[3]) / 1000.0, tonumber(ARGV[4])
  local chat = load(KEYS[3], crate, ccap)
  save(KEYS[3], chat - 1, crate, ccap)
  local w = wait_for(chat, crate)
  if w > 0 then return {0, w} end
end
local rate, capacity = tonumber(ARGV[1]) / 1000.0, tonumber(ARGV[2])
local g = load(KEYS[1], rate, capacity)
save(KEYS[1], g - 1, rate, capacity)
local at = now + wait_for(g, rate)
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > at then at = pause end
return {1, at - now}
"""
)

# KEYS: global bucket, chat bucket; ARGV: rate/s, capacity, chat rate/s, chat capacity, '1' with
# the chat -> a reply that gave up hands back what it booked (later bookings gain, none lose)
REFUND = (
    _HEAD
    + """
local rate, capacity = tonumber(ARGV[1]) / 1000.0, tonumber(ARGV[2])
save(KEYS[1], math.min(capacity, load(KEYS[1], rate, capacity) + 1), rate, capacity)
if ARGV[5] == '1' then
  local crate, ccap = tonumber(ARGV[3]) / 1000.0, tonumber(ARGV[4])
  save(KEYS[2], math.min(ccap, load(KEYS[2], crate, ccap) + 1), crate, ccap)
end
return 1
"""
)

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
class Turn:
    """A sender's answer: ``granted`` (send now, the chat's key is held until ``release``), or
    wait ``wait_s``: only this chat (``chat_busy``: put the row back, send others) or the
    whole sender (the global rate, the senders' share or a 429 pause)."""

    granted: bool
    wait_s: float = 0.0
    chat_busy: bool = False


@dataclass(frozen=True)
class ChatRate:
    """Telegram's per-chat limit as the senders keep it (``SenderConfig``)."""

    private_per_s: float = 1.0
    private_burst: int = 2
    group_per_min: float = 20.0
    group_burst: int = 3

    def of(self, chat_id: int | str) -> tuple[float, float]:
        """(rate per second, capacity) for ``chat_id``: positive ids are private chats."""
        if isinstance(chat_id, int) and chat_id > 0:
            return self.private_per_s, float(max(1, self.private_burst))
        return self.group_per_min / 60.0, float(max(1, self.group_burst))


class SharedLimits:
    """The bot's shared buckets, pause and per-chat turn in Redis (asyncio client)."""

    def __init__(
        self,
        url: str,
        bot_id: int,
        *,
        rate_per_s: float,
        burst_s: float = 0.2,
        chat_lease_s: float = 30.0,
        reply_share: float = 0.2,
        chat_rate: ChatRate | None = None,
        owner: str | None = None,
    ) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url)
        base = f"autocircle:limits:{bot_id}:"
        self.bucket_key = base + "bucket"
        self.senders_key = base + "senders"
        self.pause_key = base + "pause_until"
        self.chat_prefix = base + "chat:"
        self.chat_rate_prefix = base + "chat_rate:"
        self.rate_per_s = rate_per_s
        self.capacity = max(1.0, rate_per_s * burst_s)
        self.reply_share = min(max(reply_share, 0.0), 0.9)
        self.senders_rate_per_s = rate_per_s * (1.0 - self.reply_share)
        self.senders_capacity = max(1.0, self.senders_rate_per_s * burst_s)
        self.chat_rate = chat_rate or ChatRate()
        self.chat_lease_ms = int(chat_lease_s * 1000)
        self.owner = owner or uuid.uuid4().hex  # whose chat keys these are
        self._sender_turn = self.redis.register_script(SENDER_TURN)
        self._reply_turn = self.redis.register_script(REPLY_TURN)
        self._refund = self.redis.register_script(REFUND)
        self._pause = self.redis.register_script(PAUSE)
        self._release = self.redis.register_script(RELEASE)

    async def sender_turn(self, chat_id: int) -> Turn:
        """A push to ``chat_id``: take the tokens and the chat's turn now, or learn how long to
        wait (nothing is taken then)."""
        rate, capacity = self.chat_rate.of(chat_id)
        code, wait_ms = await self._sender_turn(
            keys=[
                self.bucket_key,
                self.senders_key,
                self.pause_key,
                self.chat_prefix + str(chat_id),
                self.chat_rate_prefix + str(chat_id),
            ],
            args=[
                self.rate_per_s,
                self.capacity,
                self.senders_rate_per_s,
                self.senders_capacity,
                self.owner,
                self.chat_lease_ms,
                rate,
                capacity,
            ],
        )
        code, wait_s = int(code), max(int(wait_ms), 0) / 1000.0
        return Turn(granted=code == 1, wait_s=wait_s, chat_busy=code < 0)

    async def reply_turn(self, chat_id: int | str | None) -> tuple[bool, float]:
        """A reply to ``chat_id`` books its tokens: ``(True, wait_s)`` send after ``wait_s``;
        ``(False, wait_s)`` the chat's token is booked for ``wait_s`` from now: wait, then
        call again with ``chat_id=None`` for the global token."""
        rate, capacity = self.chat_rate.of(chat_id) if chat_id is not None else (1.0, 1.0)
        done, wait_ms = await self._reply_turn(
            keys=[self.bucket_key, self.pause_key, self.chat_rate_prefix + str(chat_id)],
            args=[self.rate_per_s, self.capacity, rate, capacity, "1" if chat_id is not None else "0"],
        )
        return int(done) == 1, max(int(wait_ms), 0) / 1000.0

    async def refund(self, chat_id: int | str | None, *, global_token: bool = True) -> None:
        """A reply that will not be sent (past its update's budget) hands back its booked
        tokens: the chat's (when ``chat_id`` is given) and the global one (``global_token``)."""
        rate, capacity = self.chat_rate.of(chat_id) if chat_id is not None else (1.0, 1.0)
        keys = [self.bucket_key, self.chat_rate_prefix + str(chat_id)]
        if global_token:
            await self._refund(
                keys=keys, args=[self.rate_per_s, self.capacity, rate, capacity, "1" if chat_id is not None else "0"]
            )
        elif chat_id is not None:  # only the chat's token was booked
            await self._refund(keys=[keys[1], keys[1]], args=[rate, capacity, rate, capacity, "0"])

    async def release(self, chat_id: int) -> None:
        await self._release(keys=[self.chat_prefix + str(chat_id)], args=[self.owner])

    async def pause(self, seconds: float) -> None:
        """Telegram said 429: every process waits ``seconds`` (the longest pause wins)."""
        await self._pause(keys=[self.pause_key], args=[int(seconds * 1000)])

    async def paused_for(self) -> float:
        until = await self.redis.get(self.pause_key)
        if until is None:
            return 0.0
        now_s, now_us = await self.redis.time()
        return max(0.0, (int(until) - (now_s * 1000 + now_us // 1000)) / 1000.0)

    async def close(self) -> None:
        await self.redis.aclose()
