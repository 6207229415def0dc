"""A flow drawn: its steps as nodes and every way from one to the next as an edge.

``autocircle flows show KEY`` prints Mermaid text (paste it into any Markdown viewer that
draws Mermaid) or writes a PNG drawn with matplotlib (no Graphviz needed): steps top to bottom
in file order, each box as tall as its text wrapped (never cut), the plain "next step" edges
straight down, jumps (wait yes/no, branch then/else, ``next``) as labelled arcs on the side.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flows.engine.flow_spec import FlowSpec, Step
from flows.pictures import cjk_font

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Node:
    id: str
    kind: str
    label: str


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""


@dataclass(frozen=True)
class FlowGraph:
    key: str
    trigger: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


END = "__end__"


def _describe(step: Step) -> str:
    action = step.action
    if step.send is not None:
        return f"send {step.send.template}"
    if step.wait is not None:
        return (
            f"wait until {step.wait.until} (≤ {step.wait.timeout})" if step.wait.until else f"wait {step.wait.duration}"
        )
    if step.branch is not None:
        condition = step.branch.if_
        test = next(
            (
                f"{k} {v!r}"
                for k, v in (("=", condition.equals), ("in", condition.in_), ("set", condition.is_set))
                if v is not None
            ),
            "",
        )
        return f"if {condition.field} {test}"
    if step.notify_partner is not None:
        return f"tell partner {step.notify_partner.template}"
    if step.set is not None:
        return f"set {step.set.attribute or 'tag ' + str(step.set.tag)} = {step.set.value!r}"
    if step.exit is not None:
        return f"exit: {step.exit.reason}"
    fields = action.model_dump(by_alias=True) if hasattr(action, "model_dump") else {}
    return f"{step.kind} " + ", ".join(f"{k}={v}" for k, v in fields.items())


def _trigger(spec: FlowSpec) -> str:
    trigger = spec.trigger
    kind = trigger.kind.value
    value = getattr(trigger, kind)
    if trigger.date is not None:
        value = f"{trigger.date.attribute} {trigger.date.offset}"
    elif isinstance(value, list):
        value = ", ".join(value)
    return f"{kind}: {value}"


def flow_graph(spec: FlowSpec) -> FlowGraph:
    """Nodes in file order and every edge the runner can take between them."""
    nodes = [Node(s.id, s.kind, _describe(s)) for s in spec.steps]
    edges: list[Edge] = []
    for i, step in enumerate(spec.steps):
        following = spec.steps[i + 1].id if i + 1 < len(spec.steps) else END
        if step.exit is not None:
            edges.append(Edge(step.id, END))
            continue
        if step.wait is not None and step.wait.until:
            edges.append(Edge(step.id, step.wait.yes or following, "answered"))
            edges.append(Edge(step.id, step.wait.no or following, "timeout"))
            continue
        if step.branch is not None:
            edges.append(Edge(step.id, step.branch.then, "then"))
            edges.append(Edge(step.id, step.branch.else_, "else"))
            continue
        edges.append(Edge(step.id, step.next or following, "next" if step.next else ""))
    return FlowGraph(spec.key, _trigger(spec), tuple(nodes), tuple(edges))


def _mermaid_text(text: str) -> str:
    """Label text Mermaid shows as it is: quotes and brackets replaced by their entities."""
    return re.sub(r'["\[\]{}<>|#]', lambda m: f"#{ord(m.group())};", text)


def to_mermaid(graph: FlowGraph) -> str:
    lines = ["flowchart TD", f'  start(["{_mermaid_text(graph.trigger)}"])']
    ids = {n.id: f"s{i}" for i, n in enumerate(graph.nodes)}
    ids[END] = "finish"
    for node in graph.nodes:
        text = _mermaid_text(f"{node.id}: {node.label}")
        shape = ('{"', '"}') if node.kind in ("branch", "wait") else ('["', '"]')
        lines.append(f"  {ids[node.id]}{shape[0]}{text}{shape[1]}")
    lines.append('  finish(["end"])')
    if graph.nodes:
        lines.append(f"  start --> {ids[graph.nodes[0].id]}")
    for edge in graph.edges:
        arrow = f" -->|{_mermaid_text(edge.label)}| " if edge.label else " --> "
        lines.append(f"  {ids[edge.source]}{arrow}{ids[edge.target]}")
    return "\n".join(lines)


BOX_CHARS = 64  # a box's line at fontsize 9 (longer text wraps onto more lines, never cut)
LINE_HEIGHT = 0.28  # one line of box text, in the picture's units
GAP = 0.6  # between one box and the next


def box_lines(text: str, width: int = BOX_CHARS) -> list[str]:
    """A box's text wrapped at spaces (a long word, or text without spaces, is broken)."""
    return textwrap.wrap(text, width) or [""]


def to_png(graph: FlowGraph, path: Path) -> None:
    """The flow as a picture: boxes down the middle, jumps as arcs at the right."""
    draw(graph).savefig(path, dpi=110)


def draw(graph: FlowGraph) -> Figure:
    """The picture ``to_png`` writes: each box as tall as its wrapped text needs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    font = FontProperties(family=[cjk_font() or "DejaVu Sans", "DejaVu Sans"])
    rows = [Node("__start__", "trigger", graph.trigger), *graph.nodes, Node(END, "end", "end")]
    texts = {n.id: box_lines(n.label if n.id in ("__start__", END) else f"{n.id}: {n.label}") for n in rows}
    half = {n.id: 0.25 + LINE_HEIGHT * len(texts[n.id]) / 2 for n in rows}  # one line: 0.8 tall, as before
    y_of: dict[str, float] = {}
    y = 0.0
    for node in rows:
        y -= half[node.id]
        y_of[node.id] = y
        y -= half[node.id] + GAP
    span = -y - GAP
    figure = Figure(figsize=(9, 1.1 + (span + GAP) / 1.4))  # about an inch a row, as the boxes need
    FigureCanvasAgg(figure)  # the object API: no pyplot state, safe in any thread
    ax = figure.add_subplot()
    colours = {
        "send": "#dbeafe",
        "wait": "#fef3c7",
        "branch": "#fde68a",
        "exit": "#e5e7eb",
        "trigger": "#dcfce7",
        "end": "#e5e7eb",
        "notify_partner": "#ede9fe",
    }
    for node in rows:
        y = y_of[node.id]
        ax.add_patch(
            FancyBboxPatch(
                (-3.2, y - half[node.id]),
                6.4,
                2 * half[node.id],
                boxstyle="round,pad=0.05",
                facecolor=colours.get(node.kind, "#fce7f3"),
                edgecolor="#374151",
            )
        )
        ax.text(0, y, "\n".join(texts[node.id]), ha="center", va="center", fontsize=9, fontproperties=font)
    edges = [Edge("__start__", rows[1].id if len(rows) > 2 else END), *graph.edges]
    order = {n.id: i for i, n in enumerate(rows)}
    for n, edge in enumerate(edges):
        y0, y1 = y_of[edge.source], y_of[edge.target]
        if order[edge.target] == order[edge.source] + 1:
            ax.annotate(
                "",
                xy=(0, y1 + half[edge.target] + 0.02),
                xytext=(0, y0 - half[edge.source] - 0.02),
                arrowprops={"arrowstyle": "-|>", "color": "#374151"},
            )
            if edge.label:
                ax.text(0.15, (y0 + y1) / 2, edge.label, fontsize=8, color="#b45309", va="center")
            continue
        bend = 0.35 + 0.08 * (n % 4)
        ax.add_patch(
            FancyArrowPatch(
                (3.25, y0),
                (3.25, y1),
                connectionstyle=f"arc3,rad={-bend if y1 < y0 else bend}",
                arrowstyle="-|>",
                mutation_scale=12,
                color="#b45309",
            )
        )
        if edge.label:
            ax.text(
                3.35 + bend * abs(y1 - y0) / 2.2, (y0 + y1) / 2, edge.label, fontsize=8, color="#b45309", va="center"
            )
    ax.set_xlim(-3.6, 6.5)
    ax.set_ylim(-span - 0.4, 0.4)
    ax.axis("off")
    ax.set_title(f"flow {graph.key}", fontproperties=font, fontsize=12)
    figure.tight_layout()
    return figure
