"""The one error an import raises: the file itself cannot be imported."""

from __future__ import annotations


class ImportFileError(Exception):
    """The file cannot be read as an owner export (missing, empty, wrong format, missing
    required columns). ``str(exc)`` is one line that names the reason; bad rows never raise,
    they go to the rejects file."""
