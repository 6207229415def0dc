"""Debian's Chromium for the browser tests: outside CI a machine without it skips them (with
the fix named); under CI (``CI`` set) a missing browser is a failure, never a silent skip, as
a missing PostgreSQL is (``tests/conftest.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
MISSING = "Debian's chromium is not installed at {path} (scripts/system-deps installs it)"


def require_chromium(path: str = CHROMIUM) -> str:
    """``path`` if Chromium is there; else skip the test, or fail it under CI."""
    if Path(path).exists():
        return path
    reason = MISSING.format(path=path)
    if os.environ.get("CI"):
        pytest.fail(f"CI run without a browser: {reason}; browser tests must not skip in CI")
    pytest.skip(reason)
