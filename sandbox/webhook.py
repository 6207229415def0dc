"""Pushing updates to the bot's webhook, one at a time, like Telegram does (with the
``X-Telegram-Bot-Api-Secret-Token`` header, retries, and replies carrying a method call)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp

from .errors import ApiError
from .params import Params, Upload
from .state import now_ts

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

    def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="sandbox-webhook")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ready(self) -> bool | None:
        hook = self.sb.world.webhook
        return True if hook.url and self.sb.updates.pending_count else None

    async def _run(self) -> None:
        delay = self.retry_min
        while True:
            await self.sb.updates.changed.wait_for(self._ready, timeout=None)
            batch = self.sb.updates.take_batch(1)
            if not batch:
                continue
            if await self._post(batch[0]):
                delay = self.retry_min
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)

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
        self.sb.updates.confirm(update["update_id"] + 1)
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
                uploads[part.name] = Upload(
                    part.filename, content, part.headers.get("Content-Type")
                )
            else:
                values[part.name] = await part.text()
        return Params(values, uploads)
    return None
