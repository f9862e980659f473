"""Dataset rules: JSONL validation and the filenames uploads may use.

Pure Python on purpose: the ingress validates uploads before anything heavy
(torch, transformers, datasets) is loaded, and the same report is shown to the
client, so every error names its 1-based line and says what is wrong.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any, Callable

from forge.errors import BadRequest
from forge.schemas import TASKS, LineError, ValidationReport

MIN_EXAMPLES = 10
MAX_REPORTED_ERRORS = 50

# Task -> the string fields every row must carry. Order matters: detection picks
# the first task whose fields all occur in the first object row, so tasks with
# more specific field sets should come before more general ones.
TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "text-generation": ("input", "output"),
}
assert set(TASK_FIELDS) <= set(TASKS), "TASK_FIELDS keys must be tasks of the contract"

# Used when detection finds no task: rows are checked against it so the
# errors say which fields are missing.
_FALLBACK_TASK = "text-generation"

_BOM = b"\xef\xbb\xbf"
_SUFFIX = ".jsonl"
_MAX_FILENAME = 200
_ALLOWED_NAME = re.compile(r"[A-Za-z0-9._-]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _type_name(value: Any) -> str:
    """Name of a parsed JSON value's type, as a client would recognise it."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is a subclass of int
        return "boolean"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def _detect_task(row: dict[str, Any]) -> str:
    """First task whose fields all occur in `row`, else the fallback."""
    for task, fields in TASK_FIELDS.items():
        if all(field in row for field in fields):
            return task
    return _FALLBACK_TASK


def _row_error(row: Any, fields: tuple[str, ...]) -> str | None:
    """What is wrong with one parsed row, or None when it is a valid example."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {_type_name(row)}"
    missing = [field for field in fields if field not in row]
    if missing:
        return "missing " + ("field " if len(missing) == 1 else "fields ") + ", ".join(f"'{f}'" for f in missing)
    for field in fields:
        value = row[field]
        if not isinstance(value, str):
            return f"field '{field}' must be a string, got {_type_name(value)}"
        if not value.strip():
            return f"field '{field}' is empty"
    return None


def validate_jsonl(path: pathlib.Path, task: str | None = None) -> ValidationReport:
    """Check every line of a JSONL dataset; `task=None` detects the task from the first object row.

    Streams the file line by line, so memory stays flat however large it is.
    Raises BadRequest for a task this module has no field rules for.
    """
    if task is not None and task not in TASK_FIELDS:
        raise BadRequest(f"unsupported task {task!r}; supported: {', '.join(TASK_FIELDS)}")
    fields = TASK_FIELDS[task] if task is not None else None

    errors: list[LineError] = []
    total_errors = 0
    num_examples = 0

    def report(line: int, message: str) -> None:
        nonlocal total_errors
        total_errors += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(LineError(line=line, error=message))

    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]  # editors on Windows like to add one
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                report(number, "line is not valid UTF-8")
                continue
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                report(number, f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            # Rows before the first object fail the same way for every task,
            # so the task can be fixed here without a second pass.
            if fields is None and isinstance(row, dict):
                task = _detect_task(row)
                fields = TASK_FIELDS[task]
            problem = _row_error(row, fields or TASK_FIELDS[_FALLBACK_TASK])
            if problem is None:
                num_examples += 1
            else:
                report(number, problem)

    if num_examples < MIN_EXAMPLES:
        # Listed first (line 0 sorts before every line) so the cap never hides it.
        total_errors += 1
        errors.insert(
            0,
            LineError(
                line=0,
                error=f"dataset has {num_examples} valid examples; at least {MIN_EXAMPLES} are required",
            ),
        )
        del errors[MAX_REPORTED_ERRORS:]

    return ValidationReport(
        valid=total_errors == 0,
        errors=errors,
        total_errors=total_errors,
        num_examples=num_examples,
        task=task or _FALLBACK_TASK,
    )


def sanitize_filename(name: str | None) -> str:
    """Return an uploaded filename unchanged if it is safe to store, else raise BadRequest."""
    if not name:
        raise BadRequest("filename is required")
    # Checked before anything that echoes the name, so no control bytes reach a message or log.
    if _CONTROL.search(name):
        raise BadRequest("filename must not contain control characters")
    if "/" in name or "\\" in name:
        raise BadRequest("filename must not contain path separators ('/' or '\\')")
    if ".." in name:
        raise BadRequest("filename must not contain '..'")
    if name.startswith("."):
        raise BadRequest("filename must not start with '.'")
    if len(name) > _MAX_FILENAME:
        raise BadRequest(f"filename is {len(name)} characters long; the limit is {_MAX_FILENAME}")
    if not name.endswith(_SUFFIX):
        raise BadRequest(f"filename must end with '{_SUFFIX}'")
    if not _ALLOWED_NAME.fullmatch(name):
        bad = sorted({ch for ch in name if not _ALLOWED_NAME.fullmatch(ch)})
        raise BadRequest(
            "filename may contain only letters A-Z and a-z, digits, '-', '_' and '.'; "
            f"not allowed: {', '.join(repr(ch) for ch in bad)}"
        )
    return name


def versioned_name(filename: str, taken: Callable[[str], bool]) -> str:
    """`filename` if free, else the first free `stem-2.jsonl`, `stem-3.jsonl`, ...

    Uploading a name twice keeps both files: the second gets a new name.
    """
    if not taken(filename):
        return filename
    stem, suffix = os.path.splitext(filename)
    version = 2
    while taken(candidate := f"{stem}-{version}{suffix}"):
        version += 1
    return candidate
