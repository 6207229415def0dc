"""Each refusal ``redeem`` gives has its own answer in every locale, and the answer names no
reason ``redeem`` never gives (sold out is the claim's answer, not the counter's)."""

from __future__ import annotations

import re

import pytest

from flows.merchants.redemption import REDEEM_REFUSALS
from flows.templating import LOCALES, TEMPLATES_DIR, Renderer


@pytest.mark.parametrize("locale", LOCALES)
def test_redeem_refused_answers_exactly_the_refusals_of_redeem(locale: str) -> None:
    source = (TEMPLATES_DIR / locale / "merchants" / "redeem_refused.j2").read_text(encoding="utf-8")
    named = set(re.findall(r"reason == '(\w+)'", source))
    assert named == set(REDEEM_REFUSALS) - {"unknown"}  # unknown is the else branch
    texts = {Renderer().render("merchants/redeem_refused", locale, reason=r, code="AB") for r in REDEEM_REFUSALS}
    assert len(texts) == len(REDEEM_REFUSALS)


def test_the_refusals_are_the_ones_redeem_raises() -> None:
    import inspect

    from flows.merchants import redemption

    raised = set(re.findall(r'RedeemError\("(\w+)"\)', inspect.getsource(redemption.redeem)))
    assert raised == {*REDEEM_REFUSALS, "needs_value"}
