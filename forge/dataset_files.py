"""Uploaded file types: JSONL as it is; CSV, Parquet and JSON read into rows and stored as JSONL.

Every reader streams: it yields one `Record` (the row's 1-based line in the upload,
or its row number in a Parquet file; the row; why it could not be read) at a time,
and `stage_upload` validates the rows (`forge.datasets.validate_records`) while it
writes them out, so memory stays flat however large the file is. The stored file
is always JSONL, one row per line: the workers and `GET /api/datasets/{filename}`
read nothing else.

Pure Python plus pyarrow (Parquet only, imported when one arrives): the ingress runs it.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from forge.dataset_names import sanitize_filename
from forge.datasets import STORED_SUFFIX, Record, jsonl_records, validate_records
from forge.errors import BadRequest
from forge.schemas import ValidationReport

# Rows read from Parquet at a time (pyarrow holds one row group's columns meanwhile).
_PARQUET_BATCH = 1024
# Characters read from a JSON file at a time.
_JSON_CHUNK = 1 << 18
# One CSV cell may be this long (the csv module's default, 128 KiB, is short for documents).
_CSV_CELL_LIMIT = 1 << 28
_WHITESPACE = " \t\r\n"
_BLANK = re.compile(f"[{_WHITESPACE}]*")
_NUMBER_CHARS = re.compile(r"[0-9.eE+-]*")


class _Unreadable(Exception):
    """The rest of the file cannot be read (after a JSON syntax error there is no next row to find)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.record: Record = (line, None, message)


def _csv_records(path: Path) -> Iterator[Record]:
    """CSV rows as objects keyed by the header; every value a string, as CSV has no types.

    Python's csv module, not pyarrow's reader: it gives each row's line in the file
    (pyarrow's loses it once quoted cells may hold newlines) and never guesses types
    (pyarrow would turn a column of digits into integers).
    """
    csv.field_size_limit(_CSV_CELL_LIMIT)
    with open(path, "rb") as handle:
        # Decoded a line at a time, so a line that is not UTF-8 is named exactly.
        reader = csv.reader(raw.decode("utf-8-sig" if number == 0 else "utf-8") for number, raw in enumerate(handle))
        try:
            header = next(reader, None)
            if header is None:
                return
            # A column without a name (pandas writes its index so) is no field of the row.
            columns = [(index, name.strip()) for index, name in enumerate(header) if name.strip()]
            names = [name for _, name in columns]
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                yield 1, None, f"the header names column(s) {', '.join(map(repr, duplicates))} twice"
                return
            line = reader.line_num + 1
            for cells in reader:
                if cells:  # a blank line is no row
                    if len(cells) != len(header):
                        yield line, None, f"expected {len(header)} cells (the header's columns), got {len(cells)}"
                    else:
                        yield line, {name: cells[index] for index, name in columns}, None
                line = reader.line_num + 1
        except UnicodeDecodeError:
            yield reader.line_num + 1, None, "line is not valid UTF-8 (the rest of the file was not read)"
        except csv.Error as exc:
            yield reader.line_num, None, f"CSV could not be read: {exc} (the rest of the file was not read)"


def _parquet_records(path: Path) -> Iterator[Record]:
    """Parquet rows as objects, their values typed as the file's schema says (lists and structs too)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(path, "rb") as handle:  # a handle, not the path: pyarrow's errors would show our paths
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowException, OSError) as exc:
            yield 0, None, f"not a readable Parquet file: {_said(exc)}"
            return
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
                for row in batch.to_pylist():
                    number += 1
                    yield number, row, None
        except (pa.ArrowException, OSError) as exc:  # a damaged page: pyarrow reads ahead, so name the first row lost
            yield number + 1, None, f"the file could not be read from this row on: {_said(exc)}"


def _said(exc: Exception) -> str:
    """pyarrow's message, on one line and without the bytes it quotes from a damaged file."""
    return "".join(ch for ch in " ".join(str(exc).split()) if ch.isprintable())


def _json_records(path: Path) -> Iterator[Record]:
    """A JSON array's elements; a .json file holding one object per line (JSON Lines) is read as such.

    Both shapes are what `datasets.load_dataset("json")` accepts. The array is parsed
    an element at a time from a moving window of the file, never as one document.
    """
    with open(path, encoding="utf-8-sig") as handle:
        try:
            start = handle.read(_JSON_CHUNK).lstrip(_WHITESPACE)[:1]
        except UnicodeDecodeError:
            start = None
    if start is None:
        yield 1, None, "the file is not valid UTF-8"
    elif start == "[":
        yield from _JsonArray(path).elements()
    else:
        yield from jsonl_records(path)


class _JsonArray:
    """Reads `[value, value, ...]` from a file one value at a time, tracking the line each starts on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.decoder = json.JSONDecoder()
        self.utf8 = codecs.getincrementaldecoder("utf-8-sig")()
        self.text = ""  # the window: the file from the last dropped point up to what was read
        self.pos = 0  # where in the window reading continues
        self.line = 1  # the file's line at `pos`
        self.eof = False

    def elements(self) -> Iterator[Record]:
        with open(self.path, "rb") as self.handle:
            try:
                yield from self._elements()
            except _Unreadable as unreadable:
                yield unreadable.record
            except UnicodeDecodeError:
                yield self.line, None, "the file is not valid UTF-8 after this line (the rest was not read)"

    def _elements(self) -> Iterator[Record]:
        self._expect("[")
        if self._peek() == "]":
            self.pos += 1
        else:
            while True:
                yield self._value()
                separator = self._peek()
                if separator not in (",", "]"):
                    shown = repr(separator) if separator else "the end of the file"
                    raise _Unreadable(self.line, f"invalid JSON: expected ',' or ']' after an element, got {shown}")
                self.pos += 1
                if separator == "]":
                    break
        if self._peek():
            raise _Unreadable(self.line, "invalid JSON: the file goes on after the array's closing ']'")

    def _value(self) -> Record:
        self._peek()
        line = self.line
        while True:
            try:
                value, end = self.decoder.raw_decode(self.text, self.pos)
            except RecursionError:
                raise _Unreadable(line, "invalid JSON: nested too deeply") from None
            except json.JSONDecodeError as exc:
                if self.eof:
                    error_line = line + self.text.count("\n", self.pos, exc.pos)
                    column = exc.pos - self.text.rfind("\n", 0, exc.pos)
                    raise _Unreadable(error_line, f"invalid JSON: {exc.msg} (column {column})") from None
                self._read()  # the element may go on past the window: read on and parse it again
                continue
            # A number the window cuts may go on in the next chunk (`12` of `123`, `0` of `0.5`).
            cut = _NUMBER_CHARS.match(self.text, end).end() == len(self.text)
            if cut and not self.eof and isinstance(value, (int, float)):
                self._read()
                continue
            self._advance(end)
            return line, value, None

    def _read(self) -> None:
        """Drop the window's read part; append the file's next chunk."""
        self.text = self.text[self.pos :]
        self.pos = 0
        chunk = self.handle.read(_JSON_CHUNK)
        self.eof = not chunk
        self.text += self.utf8.decode(chunk, final=self.eof)

    def _peek(self) -> str:
        """The next non-blank character ('' at the end of the file), with `pos` moved onto it."""
        while True:
            self._advance(_BLANK.match(self.text, self.pos).end())
            if self.pos < len(self.text) or self.eof:
                return self.text[self.pos : self.pos + 1]
            self._read()

    def _advance(self, to: int) -> None:
        self.line += self.text.count("\n", self.pos, to)
        self.pos = to

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise _Unreadable(self.line, f"expected {char!r}")
        self.pos += 1


# ------------------------------------------------------------------- public


@dataclass(frozen=True)
class FileType:
    """An accepted upload's kind: its suffix, its name in messages, and how its rows are read (None: JSONL)."""

    suffix: str
    label: str
    reader: Optional[Callable[[Path], Iterator[Record]]] = None

    @property
    def converted(self) -> bool:
        return self.reader is not None


FILE_TYPES: tuple[FileType, ...] = (
    FileType(STORED_SUFFIX, "JSONL"),
    FileType(".csv", "CSV", _csv_records),
    FileType(".parquet", "Parquet", _parquet_records),
    FileType(".json", "JSON", _json_records),
)
SUFFIXES = tuple(t.suffix for t in FILE_TYPES)


def upload_names(filename: Optional[str]) -> tuple[str, FileType, str]:
    """(the upload's name, its file type, the name it is stored under), or BadRequest for a name not to store."""
    name = sanitize_filename(filename, SUFFIXES)
    file_type = next(t for t in FILE_TYPES if name.endswith(t.suffix))
    stored = os.path.splitext(name)[0] + STORED_SUFFIX
    try:
        sanitize_filename(stored)  # longer than the upload's own name where .csv becomes .jsonl
    except BadRequest as exc:
        raise BadRequest(f"stored as {STORED_SUFFIX}, the {exc.detail}") from None
    return name, file_type, stored


def stage_upload(received: Path, file_type: FileType, target: Path, format: Optional[str]) -> ValidationReport:
    """Validate an upload's rows; a converted upload's rows are written to `target` as JSONL (one row per line).

    A JSONL upload is validated where it was received (`received` is `target`).
    """
    if not file_type.converted:
        return validate_records(jsonl_records(received), format)
    with target.open("w", encoding="utf-8") as out:

        def written(records: Iterator[Record]) -> Iterator[Record]:
            for record in records:
                if record[2] is None:
                    out.write(json.dumps(record[1], ensure_ascii=False, default=_json_value) + "\n")
                yield record

        return validate_records(written(file_type.reader(received)), format)


def upload_message(uploaded: str, file_type: FileType, wanted: str, stored: str,
                   report: ValidationReport) -> Optional[str]:
    """What the upload's answer tells the user was done to their file: converted, renamed, fields normalised."""
    notes = []
    if file_type.converted:
        notes.append(f"converted {uploaded} from {file_type.label} to JSONL ({report.num_examples} rows)")
    if stored != wanted:
        notes.append(f"a dataset named {wanted} exists; stored as {stored}")
    elif file_type.converted:
        notes.append(f"stored as {stored}")
    if report.normalized:
        aliases = ", ".join(f"{alias} -> {canonical}" for alias, canonical in report.normalized.items())
        notes.append(f"{report.format} rows: fields normalised ({aliases})")
    return "; ".join(notes) or None


def _json_value(value: Any) -> Any:
    """A Parquet value JSON has no type for: dates and times in ISO 8601, bytes as UTF-8 text, else its str()."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
