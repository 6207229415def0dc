"""A webhook update that failed for a passing reason is delivered again (issue 16): a web
process (``--role web``'s wiring) behind the sandbox's webhook delivery. A reply that meets a
429 longer than the update's time budget, or a 502 from the Bot API, rolls the update back and
its webhook answers 500; the sandbox, like Telegram, delivers it again and the person gets one
reply (the update dedupe had not recorded the failed pass). A permanent error (Telegram's 400)
goes to the errors router and is answered 200: not delivered again."""

from __future__ import annotations

import asyncio

import pytest

from bot.scale.redeliver import is_transient
from sandbox import Sandbox, SandboxConfig
from tests.support.web_role import web_process

USER = 4343


@pytest.fixture
def pg_url(pg_database_url: str | None) -> str:
    if pg_database_url is None:
        pytest.skip("PostgreSQL not configured (AUTOCIRCLE_TEST_PG_URL)")
    return pg_database_url


async def test_transient_failures_are_delivered_again_permanent_ones_answered(pg_url: str) -> None:
    async with (
        Sandbox(SandboxConfig()) as sb,
        web_process(sb, pg_url, redis_db=8, scale={"update_budget_s": 2.0}) as (runtime, _parts, _port),
    ):
        await sb.add_user(USER, first_name="Ann")
        for status, retry_after in ((429, 5), (502, 1)):  # longer than the budget; a Bot API 5xx
            before = len(sb.bot_messages(USER))
            sb.set_failure("sendMessage", status, count=1, retry_after=retry_after)
            await sb.send_text(USER, USER, "/help")
            await sb.wait_for_bot_message(USER, contains="/start", timeout=20)
            await sb.wait_updates_consumed(10)
            assert len(sb.bot_messages(USER)) == before + 1, status
            assert "500" in (sb.world.webhook.last_error_message or ""), sb.world.webhook.last_error_message
            sb.world.webhook.last_error_message = None
        assert sb.stats()["errors"]["sendMessage"] == {"429": 1, "502": 1}
        # permanent: the errors router answers it (200) and it is not delivered again
        before = len(sb.bot_messages(USER))
        requests = sb.request_count("sendMessage")
        sb.set_failure("sendMessage", 400, count=1)
        await sb.send_text(USER, USER, "/help")
        await sb.wait_updates_consumed(10)
        await asyncio.sleep(1.0)
        assert len(sb.bot_messages(USER)) == before and sb.request_count("sendMessage") == requests + 1
        assert sb.world.webhook.last_error_message is None
        assert runtime.dp["scale"].dedupe.duplicates == 0


def test_what_is_transient() -> None:
    from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError, TelegramRetryAfter
    from aiogram.methods import SendMessage
    from redis.exceptions import ConnectionError as RedisConnectionError
    from sqlalchemy.exc import IntegrityError, OperationalError

    method = SendMessage(chat_id=1, text="x")
    assert is_transient(TelegramRetryAfter(method, "flood", 3))
    assert is_transient(TelegramNetworkError(method, "timeout"))
    assert is_transient(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    assert is_transient(RedisConnectionError("refused"))
    assert not is_transient(TelegramBadRequest(method, "chat not found"))
    assert not is_transient(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_transient(ValueError("a bug"))
