"""Invite tokens survive an export unchanged: none starts with a spreadsheet formula character."""

from __future__ import annotations

import secrets

import pytest

from flows.community import invites
from storage.cells import safe_cell


def test_a_token_never_starts_with_a_formula_character(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["-starts-with-dash", "_underscore", "Ab3-fine"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda _n: next(draws))
    assert invites.new_token() == "Ab3-fine"


def test_real_tokens_pass_through_safe_cell_unchanged() -> None:
    tokens = [invites.new_token() for _ in range(2000)]
    assert all(safe_cell(t) == t for t in tokens)
    assert len(set(tokens)) == len(tokens)
