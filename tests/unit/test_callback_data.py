"""Every button's callback data names its handler unambiguously: no two CallbackData classes
share a prefix (a press would be parsed by the wrong handler). The buttons flows put into
outbox rows use the same prefix constants as these classes, so they are covered too."""

from __future__ import annotations

import importlib
import pkgutil

from aiogram.filters.callback_data import CallbackData


def _all_callback_classes() -> list[type[CallbackData]]:
    import bot.keyboards

    for module in pkgutil.iter_modules(bot.routers.__path__):
        importlib.import_module(f"bot.routers.{module.name}")
    found: list[type[CallbackData]] = []
    stack = list(CallbackData.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("bot."):
            found.append(cls)
    return found


def test_prefixes_are_unique() -> None:
    classes = _all_callback_classes()
    assert len(classes) >= 20
    by_prefix: dict[str, list[str]] = {}
    for cls in classes:
        by_prefix.setdefault(cls.__prefix__, []).append(f"{cls.__module__}.{cls.__qualname__}")
    assert {p: names for p, names in by_prefix.items() if len(names) > 1} == {}


def test_no_prefix_is_a_prefix_of_another_with_the_separator() -> None:
    """``fl`` and ``fl:x`` would still parse apart (aiogram splits on ':'), but a prefix must
    not contain the separator itself."""
    for cls in _all_callback_classes():
        assert ":" not in cls.__prefix__, cls
