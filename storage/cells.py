"""Spreadsheet cells that cannot become formulas (OWASP "CSV injection").

Every CSV and XLSX the product writes passes text built from imported or user data through
``safe_cell``: a value that a spreadsheet would read as a formula (it starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return) gets a leading apostrophe, which Excel,
LibreOffice and Google Sheets show as plain text. Numbers (``int``/``float``) and dates pass
unchanged: they are the writer's own values, never text a user typed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet may show it: strings that look like formulas neutralised."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    """``safe_cell`` over a row."""
    return [safe_cell(v) for v in values]
