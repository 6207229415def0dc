"""Every table module, imported once so that SQLModel.metadata is complete (Alembic, tests)."""

from __future__ import annotations

import importlib
import pkgutil

import storage.models  # noqa: F401 - the core tables

TABLE_MODULE_SUFFIX = "_models"


def load_all() -> None:
    """Import ``storage.models`` and every ``storage/*_models.py`` module."""
    import storage

    for info in pkgutil.iter_modules(storage.__path__):
        if info.name.endswith(TABLE_MODULE_SUFFIX):
            importlib.import_module(f"storage.{info.name}")


load_all()
