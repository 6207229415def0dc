"""Every message exists in every locale, extends the brand layout, and escapes user values."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.templating import LOCALES, TEMPLATES_DIR, Renderer, labels


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


def _shape(locale: str) -> dict[str, object]:
    return {k: sorted(v) if isinstance(v, dict) else "word" for k, v in labels(locale).items()}


def test_the_vocabulary_catalogue_has_the_same_words_in_every_locale() -> None:
    assert _shape("zh") == _shape("en")


def test_words_once_in_the_catalogue_are_read_from_it() -> None:
    """ "All lines", campaign template names, campaign statuses, points reasons and product
    lines are the catalogue's (issue 12, item 4), wherever they are shown."""
    from bot.routers.campaigns import _label
    from bot.web.i18n import translator

    zh = labels("zh")
    assert _label("zh", "all_lines") == zh.all_lines == "全部车型线" and _label("en", "all_lines") == "All lines"
    assert translator("en")("all_lines") == "all lines"
    assert _label("zh", "campaigns/member_day") == translator("zh")("campaigns/member_day") == "会员日"
    assert translator("zh")("st_done") == zh.campaign_status["done"] and translator("en")("st_done") == "sent"
    assert zh.points_reason["expired"] == "积分过期" and zh.word("expired") == zh.push_reason["expired"]
    bound = Renderer().render("circle/bound", "zh", title="T", product_line="commercial")
    assert "本群已绑定为商用车车主圈" in bound
    assert "your passenger owner circle" in Renderer().render("circle/bound", "en", title="T", product_line="passenger")
