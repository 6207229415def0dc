"""End-to-end tests of the Bot API sandbox, driven by the real aiogram client over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    CallbackQuery,
    ChatJoinRequest,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiohttp import web

from sandbox import Sandbox, SandboxConfig
from sandbox.html_entities import EntityParseError, parse_html

pytestmark = pytest.mark.e2e

CONFIG = SandboxConfig()
TOKEN = f"{CONFIG.bot_id}:SANDBOX-test_token"
ANNA, BORIS, VERA = 101, 102, 103
GROUP = -1001234567890


# --- fixtures and helpers --------------------------------------------------------------


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig()) as sb:
        yield sb


@pytest_asyncio.fixture
async def bot(sandbox: Sandbox) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(sandbox.base_url))
    tg_bot = Bot(TOKEN, session=session)
    yield tg_bot
    await session.close()


@contextlib.asynccontextmanager
async def polling(dp: Dispatcher, tg_bot: Bot) -> AsyncIterator[None]:
    """Run ``dp.start_polling`` in a task for the duration of the block."""
    started = asyncio.Event()

    async def on_startup() -> None:
        started.set()

    dp.startup.register(on_startup)
    task = asyncio.create_task(
        dp.start_polling(tg_bot, handle_signals=False, polling_timeout=1, close_bot_session=False)
    )
    try:
        await asyncio.wait_for(started.wait(), timeout=10)
        yield
    finally:
        with contextlib.suppress(RuntimeError):
            await dp.stop_polling()
        await asyncio.wait_for(task, timeout=10)


async def group_with_admin_bot(sb: Sandbox) -> None:
    await sb.add_user(ANNA, "Anna", username="anna_driver")
    await sb.add_group("Club", chat_id=GROUP, creator_id=ANNA)
    await sb.add_bot_to_group(GROUP, status="administrator")


async def raw_call(sb: Sandbox, method: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """POST a JSON body, bypassing aiogram."""
    url = f"{sb.base_url}/bot{TOKEN}/{method}"
    async with aiohttp.ClientSession() as http, http.post(url, json=kwargs) as resp:
        return resp.status, await resp.json()


def tiny_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# --- conversations through a real Dispatcher -------------------------------------------


async def test_start_with_deep_link_gets_reply(sandbox: Sandbox, bot: Bot) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        await message.answer(f"Hello, <b>{message.from_user.first_name}</b>! token={command.args}", parse_mode="HTML")

    dp = Dispatcher()
    dp.include_router(router)
    await sandbox.add_user(ANNA, "Anna")
    sent = await sandbox.send_text(ANNA, ANNA, "/start ref_42")
    assert sent["entities"][0] == {"type": "bot_command", "offset": 0, "length": 6}

    async with polling(dp, bot):
        reply = await sandbox.wait_for_bot_message(ANNA, timeout=10)

    assert reply["text"] == "Hello, Anna! token=ref_42"
    assert reply["entities"] == [{"type": "bold", "offset": 7, "length": 4}]
    assert reply["raw_text"].startswith("Hello, <b>Anna</b>")
    assert reply["from"]["id"] == CONFIG.bot_id
    history = sandbox.messages(ANNA)
    assert [m["from_bot"] for m in history] == [False, True]
    assert sandbox.request_count("getMe") >= 1


async def test_inline_button_press_reaches_callback_handler(sandbox: Sandbox, bot: Bot) -> None:
    router = Router()

    @router.message(Command("menu"))
    async def menu(message: Message) -> None:
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Oil change", callback_data="svc:oil")]]
        )
        await message.answer("Pick a service", reply_markup=keyboard)

    @router.callback_query(F.data.startswith("svc:"))
    async def picked(query: CallbackQuery) -> None:
        await query.answer("Booked!", show_alert=True)
        await query.message.edit_text(f"You picked {query.data[4:]}")

    dp = Dispatcher()
    dp.include_router(router)
    await sandbox.add_user(ANNA, "Anna")
    async with polling(dp, bot):
        await sandbox.send_text(ANNA, ANNA, "/menu")
        menu_message = await sandbox.wait_for_bot_message(ANNA, timeout=10)
        assert menu_message["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "svc:oil"
        query = await sandbox.press_button(ANNA, ANNA, menu_message["message_id"], "svc:oil")
        answer = await sandbox.wait_for_callback_answer(query["id"], timeout=10)
        assert answer["text"] == "Booked!" and answer["show_alert"] is True
        for _ in range(100):
            current = sandbox.bot_messages(ANNA)[0]
            if current["text"] == "You picked oil":
                break
            await asyncio.sleep(0.05)
    assert current["text"] == "You picked oil"
    assert "edit_date" in current and "reply_markup" not in current


async def test_join_via_invite_link_emits_chat_member_with_link(sandbox: Sandbox, bot: Bot) -> None:
    await group_with_admin_bot(sandbox)
    await sandbox.add_user(BORIS, "Boris")
    link = await bot.create_chat_invite_link(GROUP, name="spring-campaign")
    assert link.invite_link.startswith("https://t.me/+") and link.name == "spring-campaign"

    seen: list[ChatMemberUpdated] = []
    router = Router()

    @router.chat_member()
    async def on_member(event: ChatMemberUpdated) -> None:
        seen.append(event)
        await bot.send_message(event.chat.id, f"Welcome, {event.new_chat_member.user.first_name}")

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(dp, bot):
        result = await sandbox.join_via_link(BORIS, link.invite_link)
        assert result["status"] == "joined"
        await sandbox.wait_for_bot_message(GROUP, timeout=10, contains="Welcome, Boris")

    event = seen[0]
    assert event.old_chat_member.status == "left" and event.new_chat_member.status == "member"
    assert event.invite_link is not None and event.invite_link.invite_link == link.invite_link
    service = [m for m in sandbox.messages(GROUP) if "new_chat_members" in m]
    assert service[-1]["new_chat_members"][0]["id"] == BORIS
    member = await bot.get_chat_member(GROUP, BORIS)
    assert member.status == "member"


async def test_join_request_is_approved_by_bot(sandbox: Sandbox, bot: Bot) -> None:
    await group_with_admin_bot(sandbox)
    await sandbox.add_user(VERA, "Vera")
    link = await bot.create_chat_invite_link(GROUP, creates_join_request=True)
    router = Router()

    @router.chat_join_request()
    async def on_request(request: ChatJoinRequest) -> None:
        assert request.invite_link is not None
        await bot.send_message(request.user_chat_id, "Checking your request")
        await request.approve()

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(dp, bot):
        result = await sandbox.join_via_link(VERA, link.invite_link)
        assert result["status"] == "pending"
        assert await sandbox.wait_for_join_decision(GROUP, VERA, timeout=10) == "approved"
    assert (await bot.get_chat_member(GROUP, VERA)).status == "member"
    assert sandbox.bot_messages(VERA)[0]["text"] == "Checking your request"


# --- long polling semantics ------------------------------------------------------------


async def test_long_poll_returns_as_soon_as_an_update_arrives(sandbox: Sandbox, bot: Bot) -> None:
    await sandbox.add_user(ANNA, "Anna")
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=20))
    await asyncio.sleep(0.2)
    assert not poll.done()
    await sandbox.send_text(ANNA, ANNA, "hi")
    updates = await asyncio.wait_for(poll, timeout=10)
    assert time.monotonic() - started < 10  # far below the 20 s poll timeout
    assert [u.message.text for u in updates] == ["hi"]


async def test_long_poll_waits_for_timeout_when_idle(sandbox: Sandbox, bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert time.monotonic() - started >= 0.9


async def test_offset_confirms_and_discards_earlier_updates(sandbox: Sandbox, bot: Bot) -> None:
    await sandbox.add_user(ANNA, "Anna")
    for text in ("one", "two", "three"):
        await sandbox.send_text(ANNA, ANNA, text)
    first = await bot.get_updates()
    assert [u.message.text for u in first] == ["one", "two", "three"]
    ids = [u.update_id for u in first]
    assert ids == sorted(ids) and len(set(ids)) == 3
    again = await bot.get_updates(limit=2)  # unconfirmed updates are delivered again
    assert [u.update_id for u in again] == ids[:2]
    rest = await bot.get_updates(offset=ids[1] + 1)
    assert [u.update_id for u in rest] == ids[2:]
    assert await bot.get_updates(offset=ids[2] + 1) == []
    assert sandbox.pending_updates() == []


async def test_allowed_updates_filter_chat_member_and_is_remembered(sandbox: Sandbox, bot: Bot) -> None:
    await group_with_admin_bot(sandbox)
    await sandbox.add_user(BORIS, "Boris")
    await sandbox.add_user(VERA, "Vera")
    link = await bot.create_chat_invite_link(GROUP)
    await bot.get_updates(offset=-1)  # forget the bot's own my_chat_member etc.
    last = (await bot.get_updates())[-1].update_id
    await bot.get_updates(offset=last + 1)

    await sandbox.join_via_link(BORIS, link.invite_link)
    default = await bot.get_updates()
    assert [u.event_type for u in default] == ["message"]  # chat_member withheld by default
    await bot.get_updates(offset=default[-1].update_id + 1)

    await sandbox.join_via_link(VERA, link.invite_link)
    asked = await bot.get_updates(allowed_updates=["chat_member"])
    assert [u.event_type for u in asked] == ["chat_member"]
    assert asked[0].chat_member.invite_link.invite_link == link.invite_link

    await sandbox.leave(VERA, GROUP)
    remembered = await bot.get_updates(offset=asked[-1].update_id + 1)  # setting kept
    assert [u.event_type for u in remembered] == ["chat_member"]
    assert remembered[0].chat_member.new_chat_member.status == "left"


async def test_concurrent_long_poll_is_terminated_with_conflict(sandbox: Sandbox, bot: Bot) -> None:
    older = asyncio.create_task(bot.get_updates(timeout=20))
    await asyncio.sleep(0.2)
    newer = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await asyncio.wait_for(older, timeout=10)
    assert await newer == []


# --- errors the bot must handle --------------------------------------------------------


async def test_blocked_user_gives_forbidden(sandbox: Sandbox, bot: Bot) -> None:
    await sandbox.add_user(ANNA, "Anna")
    await sandbox.add_user(BORIS, "Boris")
    await sandbox.send_text(ANNA, ANNA, "/start")
    await bot.send_message(ANNA, "first")
    update = await sandbox.block_bot(ANNA)
    assert update["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(ANNA, "second")
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(BORIS, "hello stranger")
    updates = await bot.get_updates()
    assert updates[-1].my_chat_member.new_chat_member.status == "kicked"
    await sandbox.unblock_bot(ANNA)
    await bot.send_message(ANNA, "welcome back")


async def test_injected_429_and_rate_limit_surface_as_retry_after(bot: Bot) -> None:
    config = SandboxConfig(private_rate_per_s=0.01, private_burst=2)
    async with Sandbox(config) as sb:
        session = AiohttpSession(api=TelegramAPIServer.from_base(sb.base_url))
        tg_bot = Bot(TOKEN, session=session)
        try:
            await sb.add_user(ANNA, "Anna")
            await sb.send_text(ANNA, ANNA, "/start")
            sb.set_failure(method="sendMessage", status=429, retry_after=7, count=1)
            with pytest.raises(TelegramRetryAfter) as storm:
                await tg_bot.send_message(ANNA, "during storm")
            assert storm.value.retry_after == 7
            await tg_bot.send_message(ANNA, "one")
            await tg_bot.send_message(ANNA, "two")
            with pytest.raises(TelegramRetryAfter) as limited:
                await tg_bot.send_message(ANNA, "three")
            assert limited.value.retry_after >= 1
            assert sb.too_many_requests == 2
            assert sb.stats()["errors"]["sendMessage"]["429"] == 2
            assert [m["text"] for m in sb.bot_messages(ANNA)] == ["one", "two"]
        finally:
            await session.close()


async def test_storm_with_duration_and_5xx_for_n_calls(sandbox: Sandbox, bot: Bot) -> None:
    await sandbox.add_user(ANNA, "Anna")
    await sandbox.send_text(ANNA, ANNA, "/start")
    sandbox.set_failure(status=500, count=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(ANNA, "x")
    await bot.send_message(ANNA, "works again")
    sandbox.set_failure(status=429, duration=60, retry_after=3)
    for _ in range(3):
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(ANNA, "x")
    assert await bot.get_updates() is not None  # polling is not hit by method=None
    sandbox.clear_failures()
    await bot.send_message(ANNA, "storm over")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"text": "x" * 4097}, "message is too long"),
        ({"text": "<b>bold</i>", "parse_mode": "HTML"}, "can't parse entities"),
        ({"text": "a < b", "parse_mode": "HTML"}, "can't parse entities"),
        ({"text": "&nbsp;", "parse_mode": "HTML"}, "can't parse entities"),
        ({"text": "   "}, "message text is empty"),
        (
            {
                "text": "pick",
                "reply_markup": InlineKeyboardMarkup(
                    inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="d" * 65)]]
                ),
            },
            "BUTTON_DATA_INVALID",
        ),
    ],
)
async def test_send_message_validation(sandbox: Sandbox, bot: Bot, kwargs: dict[str, Any], error: str) -> None:
    await sandbox.add_user(ANNA, "Anna")
    await sandbox.send_text(ANNA, ANNA, "/start")
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.send_message(ANNA, **kwargs)


async def test_long_html_within_limit_after_parsing_is_accepted(sandbox: Sandbox, bot: Bot) -> None:
    await sandbox.add_user(ANNA, "Anna")
    await sandbox.send_text(ANNA, ANNA, "/start")
    message = await bot.send_message(ANNA, "<b>" + "y" * 4096 + "</b>", parse_mode="HTML")
    assert len(message.text) == 4096 and message.entities[0].type == "bold"


async def test_edit_and_chat_errors(sandbox: Sandbox, bot: Bot) -> None:
    await sandbox.add_user(ANNA, "Anna")
    await sandbox.send_text(ANNA, ANNA, "/start")
    sent = await bot.send_message(ANNA, "same")
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("same", chat_id=ANNA, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("new", chat_id=ANNA, message_id=999)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "nobody")
    edited = await bot.edit_message_text("changed", chat_id=ANNA, message_id=sent.message_id)
    assert edited.text == "changed"
    assert await bot.delete_message(ANNA, sent.message_id)
    assert sandbox.bot_messages(ANNA) == []


# --- transport details -----------------------------------------------------------------


async def test_unknown_method_and_bad_token(sandbox: Sandbox) -> None:
    status, body = await raw_call(sandbox, "sendTelepathy", chat_id=1)
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sandbox.base_url}/botnot-a-token/getMe") as resp:
            assert resp.status == 401
            assert await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with http.get(f"{sandbox.base_url}/bot{TOKEN}/GETME") as resp:
            me = await resp.json()
    assert me["result"]["username"] == CONFIG.bot_username and me["result"]["is_bot"] is True


async def test_json_and_form_bodies_are_both_understood(sandbox: Sandbox) -> None:
    await sandbox.add_user(ANNA, "Anna")
    await sandbox.send_text(ANNA, ANNA, "/start")
    keyboard = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    status, body = await raw_call(sandbox, "sendMessage", chat_id=ANNA, text="json", reply_markup=keyboard)
    assert status == 200 and body["result"]["reply_markup"] == keyboard
    form = {
        "chat_id": str(ANNA),
        "text": "<i>form</i>",
        "parse_mode": "HTML",
        "reply_markup": '{"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}',
    }
    url = f"{sandbox.base_url}/bot{TOKEN}/sendmessage"  # method names are case-insensitive
    async with aiohttp.ClientSession() as http, http.post(url, data=form) as resp:
        form_body = await resp.json()
    assert form_body["ok"] is True and form_body["result"]["text"] == "form"
    assert [m["text"] for m in sandbox.bot_messages(ANNA)] == ["json", "form"]


async def test_documents_and_photos_upload_and_download(sandbox: Sandbox, bot: Bot) -> None:
    await sandbox.add_user(ANNA, "Anna")
    await sandbox.send_text(ANNA, ANNA, "/start")
    doc = await bot.send_document(
        ANNA,
        BufferedInputFile(b"vin;model\n1;X5\n", filename="owners.csv"),
        caption="<b>Export</b>",
        parse_mode="HTML",
    )
    assert doc.document.file_name == "owners.csv" and doc.document.file_size == 15
    assert doc.caption == "Export" and doc.caption_entities[0].type == "bold"
    photo = await bot.send_photo(ANNA, BufferedInputFile(tiny_png(3, 2), filename="chart.png"))
    assert (photo.photo[-1].width, photo.photo[-1].height) == (3, 2)
    again = await bot.send_document(ANNA, doc.document.file_id)  # resend by file_id
    assert again.document.file_id == doc.document.file_id
    downloaded = await bot.download(doc.document.file_id)
    assert downloaded.read() == b"vin;model\n1;X5\n"
    assert [("document" in m, "photo" in m) for m in sandbox.bot_messages(ANNA)] == [
        (True, False),
        (False, True),
        (True, False),
    ]


async def test_webhook_blocks_get_updates_and_receives_updates(sandbox: Sandbox, bot: Bot) -> None:
    received: asyncio.Queue[tuple[str | None, dict[str, Any]]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        await sandbox.add_user(ANNA, "Anna")
        await sandbox.send_text(ANNA, ANNA, "via webhook")
        secret, update = await asyncio.wait_for(received.get(), timeout=10)
        assert secret == "s3cret" and update["message"]["text"] == "via webhook"
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook")
        assert await bot.delete_webhook(drop_pending_updates=True)
        assert await bot.get_updates() == []
    finally:
        await runner.cleanup()


async def test_webhook_delivers_chats_in_parallel_and_each_chat_in_order(sandbox: Sandbox, bot: Bot) -> None:
    """As Telegram does over its max_connections: while one chat's update is unanswered, other
    chats' updates still arrive, and that chat's next update waits for the answer."""
    release = asyncio.Event()
    seen: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        text = (await request.json())["message"]["text"]
        seen.append(text)
        if text == "anna 1":
            await release.wait()  # the bot is slow with Anna's first message
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", max_connections=10)
        await sandbox.add_user(ANNA, "Anna")
        await sandbox.add_user(BORIS, "Boris")
        await sandbox.send_text(ANNA, ANNA, "anna 1")
        await sandbox.send_text(ANNA, ANNA, "anna 2")
        for i in range(5):
            await sandbox.send_text(BORIS, BORIS, f"ben {i}")
        for _ in range(200):
            if len(seen) >= 6:
                break
            await asyncio.sleep(0.02)
        assert seen[0] == "anna 1" and [t for t in seen if t.startswith("ben")] == [f"ben {i}" for i in range(5)]
        assert "anna 2" not in seen  # Anna's chat waits for its first update's answer
        assert (await bot.get_webhook_info()).pending_update_count == 2
        release.set()
        for _ in range(200):
            if "anna 2" in seen:
                break
            await asyncio.sleep(0.02)
        assert seen[-1] == "anna 2"
        for _ in range(100):
            if (await bot.get_webhook_info()).pending_update_count == 0:
                break
            await asyncio.sleep(0.02)
        assert (await bot.get_webhook_info()).pending_update_count == 0
    finally:
        release.set()
        await bot.delete_webhook()
        await runner.cleanup()


async def test_group_info_commands_and_leaving(sandbox: Sandbox, bot: Bot) -> None:
    await group_with_admin_bot(sandbox)
    await sandbox.add_user(BORIS, "Boris")
    await sandbox.add_member(GROUP, BORIS)
    chat = await bot.get_chat(GROUP)
    assert chat.type == "supergroup" and chat.title == "Club"
    admins = await bot.get_chat_administrators(GROUP)
    assert {a.user.id for a in admins} == {ANNA, CONFIG.bot_id}
    commands = [
        BotCommand(command="start", description="Begin"),
        BotCommand(command="garage", description="My cars"),
    ]
    await bot.set_my_commands(commands, scope=BotCommandScopeAllPrivateChats(), language_code="ru")
    stored = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="ru")
    assert [(c.command, c.description) for c in stored] == [
        ("start", "Begin"),
        ("garage", "My cars"),
    ]
    assert await bot.get_my_commands() == []
    assert sandbox.commands({"type": "all_private_chats"}, "ru")[1]["command"] == "garage"
    await bot.set_my_description("Owner circles")
    assert (await bot.get_my_description()).description == "Owner circles"
    await bot.get_updates(offset=-1)
    update = await sandbox.leave(BORIS, GROUP)
    assert update is not None and update["chat_member"]["new_chat_member"]["status"] == "left"
    assert sandbox.messages(GROUP)[-1]["left_chat_member"]["id"] == BORIS
    await sandbox.add_user(VERA, "Vera")
    await sandbox.add_member(GROUP, VERA, emit=True)
    assert await bot.ban_chat_member(GROUP, VERA)
    assert sandbox.member_status(GROUP, VERA) == "kicked"
    updates = await bot.get_updates(allowed_updates=[])  # Telegram's default hides chat_member
    assert {u.event_type for u in updates} == {"message"}
    # Service messages of people's doings arrive; the bot's own (the ban notice) do not.
    assert updates[-2].message.left_chat_member.id == BORIS
    assert updates[-1].message.new_chat_members[0].id == VERA
    assert sandbox.messages(GROUP)[-1]["from"]["id"] == CONFIG.bot_id


async def test_control_http_api(sandbox: Sandbox, bot: Bot) -> None:
    async with aiohttp.ClientSession() as http:

        async def control(action: str, **kwargs: Any) -> Any:
            async with http.post(f"{sandbox.base_url}/control/{action}", json=kwargs) as resp:
                body = await resp.json()
                assert resp.status == 200, body
                return body["result"]

        await control("add_user", user_id=ANNA, first_name="Anna", phone="+8613800000000")
        await control("send_text", user_id=ANNA, chat_id=ANNA, text="/start")
        await bot.send_message(ANNA, "hi from bot")
        message = await control("wait_for_bot_message", chat_id=ANNA, timeout=5, contains="hi")
        assert message["text"] == "hi from bot"
        contact = await control("share_contact", user_id=ANNA, phone="+8613800000000", contact_user_id=ANNA)
        assert contact["contact"]["user_id"] == ANNA
        async with http.get(f"{sandbox.base_url}/control/chats/{ANNA}/messages") as resp:
            history = (await resp.json())["result"]
        assert [m.get("text") for m in history] == ["/start", "hi from bot", None]
        async with http.post(
            f"{sandbox.base_url}/control/send_text",
            json={"user_id": 999, "chat_id": 999, "text": "x"},
        ) as resp:
            assert resp.status == 400
        async with http.get(f"{sandbox.base_url}/control/stats") as resp:
            stats = (await resp.json())["result"]
        assert stats["requests"]["sendMessage"] == 1


def test_html_parser_offsets_are_utf16_and_errors_are_telegram_like() -> None:
    text, entities = parse_html('🚗 <a href="https://x.org/?a=1&amp;b=2">car</a> &lt;3 &#8381;')
    assert text == "🚗 car <3 ₽"
    assert entities == [{"type": "text_link", "offset": 3, "length": 3, "url": "https://x.org/?a=1&b=2"}]
    assert parse_html('<pre><code class="language-python">x</code></pre>')[1] == [
        {"type": "pre", "offset": 0, "length": 1, "language": "python"}
    ]
    for bad in (
        "<b>x",
        "x</b>",
        "<b><i>x</b></i>",
        "<script>x</script>",
        "<span>x</span>",
        "&foo;",
    ):
        with pytest.raises(EntityParseError):
            parse_html(bad)
