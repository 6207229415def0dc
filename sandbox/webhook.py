"""Pushing updates to the bot's webhook as Telegram does: over up to ``max_connections``
connections at once (setWebhook's setting, default 40), each chat's updates one after another,
with the ``X-Telegram-Bot-Api-Secret-Token`` header, and replies carrying a method call. An
update the webhook did not answer with 2xx (a 5xx, a timeout, a refused connection) stays
pending and is delivered again after a backoff (0.5 s doubling to 10 s), as Telegram does. A process behind the webhook therefore sees many chats' updates in parallel."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp

from .errors import ApiError
from .params import Params, Upload
from .state import now_ts
from .updates import update_chat

if TYPE_CHECKING:
    from .server import Sandbox

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookDelivery:
    """Background task delivering pending updates while a webhook URL is set."""

    def __init__(self, sandbox: Sandbox, retry_min: float = 0.5, retry_max: float = 10.0) -> None:
        self.sb = sandbox
        self.retry_min = retry_min
        self.retry_max = retry_max
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self._in_flight: dict[int, Any] = {}  # update_id -> its chat
        self._posts: set[asyncio.Task[None]] = set()
        self._delay = retry_min
        self._resume_at = 0.0

    def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="sandbox-webhook")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for post in list(self._posts):
            post.cancel()
        await asyncio.gather(*self._posts, return_exceptions=True)
        self._posts.clear()
        self._in_flight.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _next(self) -> dict[str, Any] | None:
        hook = self.sb.world.webhook
        if not hook.url or len(self._in_flight) >= max(1, hook.max_connections):
            return None
        if asyncio.get_running_loop().time() < self._resume_at:
            return None
        return self.sb.updates.take_deliverable(set(self._in_flight), set(self._in_flight.values()))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = max(0.0, self._resume_at - loop.time())
            update = await self.sb.updates.changed.wait_for(self._next, timeout=wait or None)
            if update is None:
                continue
            self._in_flight[update["update_id"]] = update_chat(update)
            post = asyncio.create_task(self._deliver(update))
            self._posts.add(post)
            post.add_done_callback(self._posts.discard)

    async def _deliver(self, update: dict[str, Any]) -> None:
        """One connection's work: post, then free the slot (and back off after a failure)."""
        try:
            ok = await self._post(update)
        finally:
            self._in_flight.pop(update["update_id"], None)
        loop = asyncio.get_running_loop()
        if ok:
            self._delay = self.retry_min
        else:  # not acknowledged: the update stays pending and goes again after the backoff
            self._resume_at = loop.time() + self._delay
            # wake the delivery loop when the backoff ends, even if nothing else changes
            loop.call_later(self._delay, self.sb.updates.changed.notify)
            self._delay = min(self._delay * 2, self.retry_max)
        self.sb.updates.changed.notify()

    async def _post(self, update: dict[str, Any]) -> bool:
        hook = self.sb.world.webhook
        headers = {SECRET_HEADER: hook.secret_token} if hook.secret_token else {}
        assert self._session is not None
        try:
            async with self._session.post(
                hook.url, json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=30)
            ) as resp:
                if not 200 <= resp.status < 300:
                    self._fail(f"Wrong response from the webhook: {resp.status} {resp.reason}")
                    return False
                reply = await _read_reply(resp)
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._fail(f"Connection failed: {type(exc).__name__}: {exc}")
            return False
        self.sb.updates.ack(update["update_id"])
        self.delivered += 1
        if reply is not None:
            await self._execute_reply(reply)
        return True

    def _fail(self, message: str) -> None:
        log.debug("webhook delivery failed: %s", message)
        self.sb.world.webhook.last_error_date = now_ts()
        self.sb.world.webhook.last_error_message = message

    async def _execute_reply(self, params: Params) -> None:
        """A webhook may answer with a method call; Telegram executes it (result unseen)."""
        method = params.get_str("method")
        if not method:
            return
        try:
            await self.sb.call_method(method, params)
        except ApiError as exc:
            log.debug("webhook reply %s failed: %s", method, exc.description)


async def _read_reply(resp: aiohttp.ClientResponse) -> Params | None:
    if resp.content_type == "application/json":
        try:
            body = await resp.json()
        except (ValueError, aiohttp.ContentTypeError):
            return None
        return Params(body) if isinstance(body, dict) else None
    if resp.content_type == "multipart/form-data":
        values: dict[str, Any] = {}
        uploads: dict[str, Upload] = {}
        reader = aiohttp.MultipartReader.from_response(resp)
        async for part in reader:
            if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                continue
            if part.filename:
                content = await part.read()
                uploads[part.name] = Upload(part.filename, content, part.headers.get("Content-Type"))
            else:
                values[part.name] = await part.text()
        return Params(values, uploads)
    return None
