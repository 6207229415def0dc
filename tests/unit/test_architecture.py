"""The layer rule of DESIGN.md: bot → flows → storage; flows and storage never import aiogram."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("flows", {"aiogram", "bot", "typer"}), ("storage", {"aiogram", "bot", "flows", "typer"})],
)
def test_layer_does_not_import_upwards(package: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & forbidden)
        for path in (ROOT / package).rglob("*.py")
        if _imports(path) & forbidden
    }
    assert offenders == {}


def test_flows_holds_only_capability_packages_and_a_few_cross_cutting_modules() -> None:
    loose = sorted(p.stem for p in (ROOT / "flows").glob("*.py") if p.stem != "__init__")
    assert loose == ["errors", "pictures", "templating"]
    packages = sorted(p.name for p in (ROOT / "flows").iterdir() if (p / "__init__.py").exists())
    assert packages == [
        "community",
        "console",
        "delivery",
        "engine",
        "growth",
        "membership",
        "merchants",
        "opportunities",
        "reports",
        "segments",
        "service",
    ]


def _importers_of(target: str, roots: tuple[str, ...]) -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for root in roots
        for path in (ROOT / root).rglob("*.py")
        if target in _imports(path)
    }


def test_only_the_cli_the_demo_tests_and_benchmarks_import_the_sandbox() -> None:
    """The sandbox is a stand-in for Telegram, a peer of api.telegram.org: the product's
    layers never reach for it, and it reaches for none of them."""
    offenders = {
        p for p in _importers_of("sandbox", ("bot", "flows", "storage", "templates")) if not p.startswith("bot/cli/")
    }
    assert offenders == set()
    assert not any(_imports(p) & {"bot", "flows", "storage", "demo"} for p in (ROOT / "sandbox").rglob("*.py"))


def test_only_the_cli_and_tests_import_the_demo() -> None:
    offenders = {
        p for p in _importers_of("demo", ("bot", "flows", "storage", "sandbox")) if not p.startswith("bot/cli/")
    }
    assert offenders == set()


def _flows_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("flows."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("flows"):
            names.update(f"{node.module}.{a.name}" if node.module == "flows" else node.module for a in node.names)
    return names


ENGINE_MAY_IMPORT = ("flows.engine", "flows.delivery", "flows.errors", "flows.pictures", "flows.templating")


def test_the_engine_imports_no_capability_package() -> None:
    """Capabilities register their flow words with ``flows.engine.registry``; the engine's
    only way out is the outbox (``flows.delivery``)."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _flows_modules(path) if not m.startswith(ENGINE_MAY_IMPORT))
        for path in (ROOT / "flows" / "engine").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


PRIVATE_ROOTS = ("bot", "flows", "storage", "sandbox", "demo")


def _unit(module: str) -> str:
    """What owns a module's private names: a package under a top-level one (``flows.community``,
    ``bot.web``) or a top-level package's own module (``storage.events``, ``bot.config``)."""
    return ".".join(module.split(".")[:2])


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_takes_another_packages_private_names() -> None:
    """``from flows.community.partners import _looks_like_code`` in ``flows.merchants`` reaches
    into another package's insides: a name used across packages is public (no underscore).
    Dunder names (``__version__``) are not private."""
    offenders: dict[str, list[str]] = {}
    for root in PRIVATE_ROOTS:
        for path in (ROOT / root).rglob("*.py"):
            here = _unit(_module_of(path))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
                    continue
                if node.module.split(".")[0] not in PRIVATE_ROOTS or _unit(node.module) == here:
                    continue
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    offenders.setdefault(str(path.relative_to(ROOT)), []).extend(
                        f"{node.module}.{name}" for name in private
                    )
    assert offenders == {}


def test_flows_docstring_names_every_package_and_each_says_its_public_face() -> None:
    """One look shows the architecture: ``flows/__init__`` names every package, and each
    package's docstring says what it owns and which functions are its public face."""
    packages = sorted(p.name for p in (ROOT / "flows").iterdir() if (p / "__init__.py").exists())
    overview = ast.get_docstring(ast.parse((ROOT / "flows" / "__init__.py").read_text(encoding="utf-8"))) or ""
    assert [p for p in packages if f"``{p}``" not in overview] == []
    silent = [
        p
        for p in packages
        if not any(
            words
            in (ast.get_docstring(ast.parse((ROOT / "flows" / p / "__init__.py").read_text(encoding="utf-8"))) or "")
            for words in ("Public face", "Public functions")
        )
    ]
    assert silent == []
