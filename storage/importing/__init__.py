"""Importing the car maker's owner database: CSV/XLSX exports from dealer systems.

``import_owners(engine, path, ...)`` is the entry point; it knows nothing of the CLI or the
bot and returns a frozen :class:`ImportSummary`. Modules: ``readers`` (stream rows with file
line numbers, detect format and encoding), ``headers`` (column aliases, EN/ZH), ``fields``
(validators), ``rows`` (one row → normalised owner and vehicle or its problems), ``owners``
(batched upsert), ``rejects`` (the rejects CSV), ``summary``.
"""

from storage.importing.errors import ImportFileError
from storage.importing.owners import import_owners
from storage.importing.rejects import default_rejects_path
from storage.importing.summary import ImportProgress, ImportSummary

__all__ = [
    "ImportFileError",
    "ImportProgress",
    "ImportSummary",
    "default_rejects_path",
    "import_owners",
]
