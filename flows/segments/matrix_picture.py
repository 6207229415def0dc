"""The matrix as a PNG heatmap: rows activity, columns maturity, counts and shares in cells.

Owners never online are drawn apart, beside the matrix. Labels follow the glossary of
DESIGN.md (初级/成长/成熟 × 活跃/衰退/流失/沉睡). Chinese needs a CJK font: the first one
matplotlib's font manager knows (Noto Sans CJK from Debian's fonts-noto-cjk, or the usual
desktop fonts) is used; without one the picture falls back to English labels instead of
drawing empty boxes. Rendering uses the object API (``Figure`` + Agg canvas), never pyplot's
global state, so it is safe to call from the bot's worker threads.
"""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

from flows.pictures import cjk_font
from flows.segments.matrix_report import MatrixReport
from flows.templating import labels
from storage.segments import ACTIVITY_ORDER, MATURITY_ORDER

#: The picture's own words; the vocabulary (segments, product lines, "all lines") comes from the
#: one catalogue per locale, ``flows.templating.labels``.
LABELS = {
    "zh": {
        "title": "车主分层矩阵",
        "maturity": "成熟度",
        "activity": "活跃度",
        "of_all": "占全部",
        "partner": "顾问",
        "dealer": "经销商",
        "all": "全部车主",
        "online": "已上线",
        "total": "合计",
        "as_of": "截至",
        "never": "尚未计算分层",
        "share_note": "格内百分比 = 占已上线车主",
    },
    "en": {
        "title": "Owner segment matrix",
        "maturity": "maturity",
        "activity": "activity",
        "of_all": "of all",
        "partner": "partner",
        "dealer": "dealer",
        "all": "all owners",
        "online": "online",
        "total": "total",
        "as_of": "as of",
        "never": "segments not computed yet",
        "share_note": "cell % = share of owners online",
    },
}


def picture_locale(locale: str | None) -> str:
    """The locale the picture can really be drawn in (English without a CJK font)."""
    if locale == "zh" and cjk_font() is not None:
        return "zh"
    return "en"


def render_matrix_png(report: MatrixReport, *, locale: str | None, timezone: str) -> bytes:
    """The report as a PNG (about 1300×900 px)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    loc = picture_locale(locale)
    text = {**labels(loc).words(), **LABELS[loc]}
    families = [cjk_font() or "DejaVu Sans", "DejaVu Sans"] if loc == "zh" else ["DejaVu Sans"]
    font = FontProperties(family=families)
    bold = FontProperties(family=families, weight="bold")

    figure = Figure(figsize=(8.8, 6.0), dpi=150)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(1, 2, width_ratios=(3, 1), left=0.12, right=0.97, top=0.78, bottom=0.11, wspace=0.18)
    ax = figure.add_subplot(grid[0, 0])
    side = figure.add_subplot(grid[0, 1])

    rows = report.rows()
    values = [[cell.count for cell in cells] for _, cells in rows]
    peak = max((v for row in values for v in row), default=0) or 1
    ax.imshow(values, cmap="YlGnBu", vmin=0, vmax=peak, aspect="auto")
    for r, (_, cells) in enumerate(rows):
        for c, cell in enumerate(cells):
            share = "–" if cell.share is None else f"{cell.share:.0%}"
            colour = "white" if cell.count > peak * 0.55 else "#1b1b1b"
            ax.text(
                c, r - 0.12, f"{cell.count:,}", ha="center", va="center", color=colour, fontproperties=bold, fontsize=15
            )
            ax.text(c, r + 0.22, share, ha="center", va="center", color=colour, fontproperties=font, fontsize=10)
    ax.set_xticks(range(len(MATURITY_ORDER)), [text[m.value] for m in MATURITY_ORDER], fontproperties=font, fontsize=11)
    ax.set_yticks(range(len(ACTIVITY_ORDER)), [text[a.value] for a in ACTIVITY_ORDER], fontproperties=font, fontsize=11)
    ax.set_xlabel(text["maturity"], fontproperties=bold, fontsize=11, labelpad=10)
    ax.set_ylabel(text["activity"], fontproperties=bold, fontsize=11, labelpad=10)
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for edge in range(1, len(ACTIVITY_ORDER)):
        ax.axhline(edge - 0.5, color="white", linewidth=2)
    for edge in range(1, len(MATURITY_ORDER)):
        ax.axvline(edge - 0.5, color="white", linewidth=2)

    side.imshow([[0.5]], cmap="Greys", vmin=0, vmax=5, aspect="auto")
    side.set_xticks([])
    side.set_yticks([])
    share = "–" if report.not_online_share is None else f"{report.not_online_share:.0%}"
    side.text(0, -0.25, text["not_online"], ha="center", va="center", fontproperties=bold, fontsize=12, color="#333333")
    side.text(
        0, 0.02, f"{report.not_online:,}", ha="center", va="center", fontproperties=bold, fontsize=17, color="#1b1b1b"
    )
    side.text(
        0,
        0.25,
        f"{text['of_all']} {share}",
        ha="center",
        va="center",
        fontproperties=font,
        fontsize=10,
        color="#333333",
    )

    figure.text(0.5, 0.955, _title(report, text), ha="center", va="center", fontproperties=bold, fontsize=15)
    figure.text(
        0.5,
        0.905,
        _subtitle(report, text, loc),
        ha="center",
        va="center",
        fontproperties=font,
        fontsize=10,
        color="#444444",
    )
    figure.text(
        0.5,
        0.045,
        _footer(report, text, timezone),
        ha="center",
        va="center",
        fontproperties=font,
        fontsize=9,
        color="#555555",
    )

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _title(report: MatrixReport, text: dict[str, str]) -> str:
    line = text[report.product_line] if report.product_line else text["all_lines"]
    return f"{text['title']} · {line}"


def _subtitle(report: MatrixReport, text: dict[str, str], loc: str) -> str:
    scope = report.scope
    if scope.kind == "all":
        who = text["all"]
    else:
        name = scope.name if loc == "zh" or scope.name.isascii() else ""
        who = f"{text[scope.kind]} {scope.code} {name}".strip()
    return f"{who}  ·  {text['online']} {report.online:,}  ·  {text['total']} {report.total:,}"


def _footer(report: MatrixReport, text: dict[str, str], timezone: str) -> str:
    if report.as_of is None:
        when = text["never"]
    else:
        local = report.as_of.astimezone(ZoneInfo(timezone))
        when = f"{text['as_of']} {local:%Y-%m-%d %H:%M} ({timezone})"
    return f"{when}  ·  {text['share_note']}"
