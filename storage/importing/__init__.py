"""Importing CSV/XLSX exports from dealer systems: the owner database, service history,
telematics readings.

``import_owners(engine, path, ...)`` is the owner entry point; it knows nothing of the CLI or
the bot and returns a frozen :class:`ImportSummary`. Modules: ``readers`` (stream rows with file
line numbers, detect format and encoding), ``headers`` (column aliases, EN/ZH, per kind of
file), ``fields`` (validators), ``rows`` (one row → normalised owner and vehicle or its
problems), ``owners`` (batched upsert), ``rejects`` (the rejects CSV), ``summary``.

``records`` runs the other imports on the same pieces, with the meaning of a row supplied by
the caller: ``services.import_services`` and ``telematics.import_telematics``.
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
