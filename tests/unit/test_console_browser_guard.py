"""The browser tests never skip silently in CI: without Chromium they fail there, and skip
(naming the fix) on a developer's machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import require_chromium


def test_a_missing_browser_fails_under_ci(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must not skip in CI"):
        require_chromium(str(tmp_path / "no-chromium"))


def test_a_missing_browser_skips_elsewhere(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="scripts/system-deps"):
        require_chromium(str(tmp_path / "no-chromium"))


def test_a_present_browser_is_used(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("")
    assert require_chromium(str(browser)) == str(browser)
