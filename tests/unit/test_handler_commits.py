"""A handler never commits the update's session itself (issue 11, item 6): the update commits
once after its handler, and ``bot.middlewares.commit_before_reply`` is the one explicit step
for a reply that must be acted on at once, so every such place is findable by that name."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_router_calls_commit_directly() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "bot" / "routers").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit"
    ]
    assert offenders == []
