"""Every message exists in every locale, extends the brand layout, and escapes user values."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.templating import LOCALES, TEMPLATES_DIR, Renderer


def _ids(locale: str) -> set[str]:
    base = TEMPLATES_DIR / locale
    return {p.relative_to(base).with_suffix("").as_posix() for p in base.rglob("*.j2")}


def test_same_templates_in_every_locale() -> None:
    assert _ids("zh") == _ids("en")


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_extends_its_layout(locale: str) -> None:
    for path in (TEMPLATES_DIR / locale).rglob("*.j2"):
        if path.name == "layout.j2" or path.name.startswith("_"):  # partials are included, not sent
            continue
        assert f'{{% extends "{locale}/layout.j2" %}}' in path.read_text(encoding="utf-8"), path


def test_user_values_are_escaped_and_never_evaluated() -> None:
    text = Renderer().render("onboarding/verified", "en", name="<b>x</b> {{ 7*7 }}")
    assert "&lt;b&gt;x&lt;/b&gt; {{ 7*7 }}" in text
    assert "49" not in text


def test_missing_variable_fails_loudly() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        Renderer().render("onboarding/verified", "en")


def test_unknown_locale_falls_back_to_default(tmp_path: Path) -> None:
    assert "欢迎" in Renderer().render("onboarding/verified", "fr", name="A")
