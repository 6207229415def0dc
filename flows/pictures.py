"""Fonts for the pictures the product draws (the matrix, flow diagrams): one CJK-capable
family found once per process, so Chinese labels never render as boxes."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "Noto Sans CJK JP",
    "Noto Serif CJK SC",
)
_CJK_FILE_HINTS = ("notosanscjk", "notoserifcjk", "sourcehansans", "wqy", "simhei", "msyh")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of a CJK-capable font matplotlib can use, or None."""
    from matplotlib import font_manager

    known = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in known:
            return family
    # Fonts installed after matplotlib built its cache: register them by file.
    for path in font_manager.findSystemFonts():
        squashed = Path(path).name.lower().replace("-", "").replace("_", "")
        if any(hint in squashed for hint in _CJK_FILE_HINTS):
            try:
                font_manager.fontManager.addfont(path)
                return font_manager.FontProperties(fname=path).get_name()
            except (OSError, RuntimeError, ValueError):
                continue
    return None
