"""Stream the rows of a CSV or XLSX export, each with its line in the file.

Nothing is loaded whole: CSV goes through ``csv.reader`` over a text stream, XLSX through
openpyxl's read-only ``iter_rows``. The format comes from the file's content, not its name
(an ``.xlsx`` saved as ``.csv`` still reads). CSV encoding is detected from the bytes: a BOM
(UTF-8 or UTF-16), else the first non-ASCII stretch decides between UTF-8 and GBK/GB18030 (the
latter is read with the GB18030 codec, a superset of GBK). Bytes that do not decode become
U+FFFD and the row that holds them is flagged, so one bad byte rejects one row, not the file.

Line numbers are the file's: the header is line 1 when it is the first line, and a quoted
field spanning two lines makes the rows after it count both. For XLSX the "line" is the
sheet's row number.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from storage.importing.errors import ImportFileError
from storage.importing.headers import looks_like_header

# Rows above the header that a file may carry (an export title, a date line).
HEADER_SEARCH_ROWS = 10
_SAMPLE = 64 * 1024
_SCAN_CHUNK = 1024 * 1024
_DELIMITERS = (",", "\t", ";", "|")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_ENOUGH_TEXT = 8  # non-ASCII characters read before a bad byte that settle the encoding

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an old .xls workbook or an encrypted one: save it as .xlsx or CSV"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x7fELF", "a program"),
    (b"{\\rtf", "an RTF document"),
)


class _Replacements:
    """Counts bytes the decoder could not read; a row is checked only after one happened."""

    count = 0


def _replace_and_count(exc: UnicodeError) -> tuple[str, int]:
    _Replacements.count += 1
    assert isinstance(exc, UnicodeDecodeError)  # registered for decoding only
    return "\ufffd", exc.end


_ERRORS = "autocircle.import.replace"
codecs.register_error(_ERRORS, _replace_and_count)


Row = tuple[int, list[object], str | None]  # (file line, values, problem with the row itself)
HeaderTest = Callable[[list[object]], bool]  # does this row look like the header?


class RowSource(Protocol):
    # read-only members: each source sets them its own way (class attribute, __init__)
    @property
    def format(self) -> str: ...  # "csv" or "xlsx"
    @property
    def encoding(self) -> str | None: ...
    @property
    def header(self) -> list[object]: ...
    @property
    def header_line(self) -> int: ...
    @property
    def unit(self) -> str: ...  # what progress counts: "bytes" or "rows"
    @property
    def total(self) -> int | None: ...

    def rows(self) -> Iterator[Row]: ...

    def done(self) -> int: ...

    def close(self) -> None: ...


def open_source(path: Path, is_header: HeaderTest = looks_like_header) -> RowSource:
    """Open ``path`` for reading rows; raise :class:`ImportFileError` when it cannot be.
    ``is_header`` recognises the header row (the owner export's by default)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - owned by the returned source
    except FileNotFoundError:
        raise ImportFileError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise ImportFileError(f"not a file: {path}") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        head = handle.read(_SAMPLE)
        handle.seek(0)
        if not head.strip():
            raise ImportFileError(f"file is empty: {path}")
        if head.startswith(b"PK\x03\x04"):
            return XlsxSource(handle, path, is_header)
        for magic, what in _MAGIC:
            if head.startswith(magic):
                raise ImportFileError(f"{path.name} is not a CSV or XLSX file: it is {what}")
        return CsvSource(handle, path, head, is_header)
    except BaseException:
        handle.close()
        raise


def _first_header(source_rows: Iterator[Row], path: Path, is_header: HeaderTest) -> tuple[int, list[object], list[Row]]:
    """Find the header: the first of the first few non-empty rows that names the required
    fields (else the first non-empty row, which the column check then refuses with reasons).
    Returns it and the rows read past it, to be yielded again."""
    seen: list[Row] = []
    for row in source_rows:
        if _is_blank(row[1]):
            continue
        if is_header(row[1]):
            return row[0], row[1], []
        seen.append(row)
        if len(seen) >= HEADER_SEARCH_ROWS:
            break
    if not seen:
        raise ImportFileError(f"file is empty: {path}")
    line, values, _ = seen[0]
    return line, values, seen[1:]


def _is_blank(values: list[object]) -> bool:
    for value in values:  # noqa: SIM110 - the loop reads better than all(not (...))
        if value is not None and (type(value) is not str or value.strip()):
            return False
    return True


class _AfterHeader:
    """The data rows of a source: those read past while finding the header, then the rest;
    blank rows skipped."""

    _pending: list[Row]
    _records: Iterator[Row]

    def rows(self) -> Iterator[Row]:
        yield from self._pending
        self._pending = []
        for row in self._records:
            if not _is_blank(row[1]):
                yield row


class CsvSource(_AfterHeader):
    format = "csv"
    unit = "bytes"

    def __init__(self, handle: BinaryIO, path: Path, head: bytes, is_header: HeaderTest) -> None:
        self._handle = handle
        self.total = path.stat().st_size
        self.encoding, codec = _detect_encoding(handle, head, path)
        handle.seek(0)
        sample = codecs.getincrementaldecoder(codec)(errors="replace").decode(head)
        _refuse_binary(sample, path)
        self._text = io.TextIOWrapper(handle, encoding=codec, errors=_ERRORS, newline="")
        self._reader = csv.reader(self._text, delimiter=_delimiter(sample))
        self._records = self._physical_rows()
        self.header_line, self.header, self._pending = _first_header(self._records, path, is_header)

    def _physical_rows(self) -> Iterator[Row]:
        reader = self._reader
        replaced_before = _Replacements.count
        last_line = 0
        try:
            for values in reader:
                start = last_line + 1
                last_line = reader.line_num
                problem = None
                if _Replacements.count != replaced_before and any("\ufffd" in v for v in values):
                    problem = f"bytes that are not valid {self.encoding} text"
                cells: list[object] = [*values]  # list[str] is not a list[object] to the type checker
                yield start, cells, problem
        except csv.Error as exc:
            raise ImportFileError(f"line {last_line + 1}: malformed CSV ({exc})") from None

    def done(self) -> int:
        return self._handle.tell()

    def close(self) -> None:
        self._text.close()


def _detect_encoding(handle: BinaryIO, head: bytes, path: Path) -> tuple[str, str]:
    """(name to report, codec to read with)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "utf-16"
    if b"\x00" in head:
        raise ImportFileError(f"{path.name} is not a CSV or XLSX file: it holds binary data")
    window, at_end = _first_non_ascii(handle, head)
    if window is None:
        return "utf-8", "utf-8"  # plain ASCII so far and to the end
    decoded_before_error: dict[str, int] = {}
    for name in ("utf-8", "gbk", "gb18030"):
        try:
            codecs.getincrementaldecoder(name)().decode(window, final=at_end)
        except UnicodeDecodeError as exc:
            good = window[: exc.start].decode(name, errors="ignore")
            decoded_before_error[name] = sum(1 for ch in good if ord(ch) > 127)
            continue
        return name, "gb18030" if name == "gbk" else name
    # No codec reads it all: a stray bad byte in an otherwise good file. Take the codec that
    # read the most non-ASCII text before failing (the wrong one fails within a few
    # characters); the bad bytes then reject their rows.
    name = max(decoded_before_error, key=decoded_before_error.__getitem__)
    if decoded_before_error[name] >= _ENOUGH_TEXT:
        return name, "gb18030" if name == "gbk" else name
    raise ImportFileError(f"{path.name} is not a CSV or XLSX file: its text is neither UTF-8 nor GBK/GB18030")


def _first_non_ascii(handle: BinaryIO, head: bytes) -> tuple[bytes | None, bool]:
    """The bytes from the first non-ASCII byte on (up to 64 KiB), and whether that is the end."""
    chunk, offset = head, 0
    while True:
        m = _NON_ASCII.search(chunk)
        if m:
            handle.seek(offset + m.start())
            window = handle.read(_SAMPLE)
            return window, len(window) < _SAMPLE
        offset += len(chunk)
        handle.seek(offset)
        chunk = handle.read(_SCAN_CHUNK)
        if not chunk:
            return None, True


def _refuse_binary(sample: str, path: Path) -> None:
    controls = sum(1 for ch in sample if ch < " " and ch not in "\t\r\n")
    if controls > max(2, len(sample) // 100):
        raise ImportFileError(f"{path.name} is not a CSV or XLSX file: it holds binary data")


def _delimiter(sample: str) -> str:
    """The separator used by the first lines: comma unless tabs, semicolons or bars dominate."""
    lines = sample.splitlines()[:20]
    counts = {d: sum(line.count(d) for line in lines) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


class XlsxSource(_AfterHeader):
    format = "xlsx"
    unit = "rows"
    encoding = None

    def __init__(self, handle: BinaryIO, path: Path, is_header: HeaderTest) -> None:
        import zipfile

        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        self._handle = handle
        try:
            # A file object, not the path: openpyxl refuses names not ending in .xlsx.
            self._book = load_workbook(handle, read_only=True, data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
            raise ImportFileError(
                f"{path.name} is not a CSV or XLSX file: a zip archive that is not a readable "
                f"workbook ({type(exc).__name__})"
            ) from None
        sheet = self._book.active or self._book.worksheets[0]
        # The declared size is only a progress estimate: reading ignores it (some writers
        # declare less than they wrote).
        self.total = sheet.max_row
        sheet.reset_dimensions()
        self._sheet = sheet
        self._row = 0
        self._records = self._physical_rows()
        self.header_line, self.header, self._pending = _first_header(self._records, path, is_header)

    def _physical_rows(self) -> Iterator[Row]:
        for number, values in enumerate(self._sheet.iter_rows(values_only=True), start=1):
            self._row = number
            yield number, list(values), None

    def done(self) -> int:
        return self._row

    def close(self) -> None:
        self._book.close()
        self._handle.close()
