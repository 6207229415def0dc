"""Keyboards and the CallbackData classes they emit (short prefixes, typed fields)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from flows.community.onboarding import DealerChoice
from flows.templating import DEFAULT_LOCALE, LOCALES, labels
from storage.segments import Familiarity


class FamiliarityCb(CallbackData, prefix="fam"):
    """Names the owner the question was asked for: a press for any other owner is refused."""

    owner_id: int
    value: Familiarity


class LocaleCb(CallbackData, prefix="loc"):
    owner_id: int
    value: str


class ProspectCb(CallbackData, prefix="prs"):
    """The inline "I'm not an owner yet" button older versions sent under ``/start``. No
    keyboard emits it now (the way out is a reply button, ``verify_contact``), but presses on
    messages already sent still start the prospect form."""


class DealerCb(CallbackData, prefix="dlr"):
    code: str


def label(locale: str | None, key: str) -> str:
    """A button's text in ``locale`` (also for a message that names the button below it):
    the ``button`` section of the locale's catalogue, or a familiarity word, capitalised
    where the language capitalises a button's first word."""
    words = labels(locale or DEFAULT_LOCALE)
    text = words.button.get(key) or words.familiarity[key]
    return text[:1].upper() + text[1:]


#: what a press of the "I'm not an owner yet" reply button sends, in every locale
NOT_AN_OWNER_TEXTS = frozenset(labels(locale).button["prospect"] for locale in LOCALES)


def is_not_an_owner(text: str | None) -> bool:
    """Whether a text message is a press of the "I'm not an owner yet" reply button (in any
    locale: the person may have changed language since the keyboard was sent)."""
    return text is not None and text.strip() in NOT_AN_OWNER_TEXTS


def share_contact(locale: str | None) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=label(locale, "share"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def verify_contact(locale: str | None) -> ReplyKeyboardMarkup:
    """The keyboard while a person verifies: share their own phone contact, or the way out
    for someone without a car (a plain text button, see ``is_not_an_owner``)."""
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=label(locale, "share"), request_contact=True)],
            [KeyboardButton(text=label(locale, "prospect"))],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def remove() -> ReplyKeyboardRemove:
    return ReplyKeyboardRemove()


def familiarity(locale: str | None, owner_id: int, suggested: Familiarity) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for value in Familiarity:
        mark = " ✓" if value is suggested else ""
        builder.button(
            text=label(locale, value.value) + mark, callback_data=FamiliarityCb(owner_id=owner_id, value=value)
        )
    return builder.as_markup()


def languages(owner_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text="中文", callback_data=LocaleCb(owner_id=owner_id, value="zh"))
    builder.button(text="English", callback_data=LocaleCb(owner_id=owner_id, value="en"))
    return builder.as_markup()


def dealer_choice(choices: list[DealerChoice]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for choice in choices:
        builder.button(text=choice.name, callback_data=DealerCb(code=choice.code))
    builder.adjust(1)
    return builder.as_markup()


def url_button(text: str, url: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=text, url=url)]])


def join_circle(locale: str | None, url: str) -> InlineKeyboardMarkup:
    return url_button(label(locale, "join"), url)


def verify_link(locale: str | None, url: str) -> InlineKeyboardMarkup:
    return url_button(label(locale, "verify"), url)
