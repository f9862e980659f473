"""The names datasets are stored under: what an upload may be called, a free name when one is taken,
and the closest stored name when a request names none.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Callable, Iterable, Optional

from forge.datasets import STORED_SUFFIX
from forge.errors import BadRequest

_MAX_FILENAME = 200
_ALLOWED_NAME = re.compile(r"[A-Za-z0-9._-]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sanitize_filename(name: str | None, suffixes: tuple[str, ...] = (STORED_SUFFIX,)) -> str:
    """Return an uploaded filename unchanged if it is safe to store and has one of `suffixes`, else BadRequest."""
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
    if not name.endswith(suffixes):
        raise BadRequest(f"filename must end with {' or '.join(repr(suffix) for suffix in suffixes)}")
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


def closest_name(name: str, names: Iterable[str]) -> Optional[str]:
    """The existing name a user most likely meant by `name` (a typo, or its name before conversion), else None."""
    names = list(names)
    # An upload of data.csv is stored as data.jsonl: the stored name is the answer, however far it is.
    stored = os.path.splitext(name)[0] + STORED_SUFFIX
    if stored != name and stored in names:
        return stored
    matches = difflib.get_close_matches(name, names, n=1)
    return matches[0] if matches else None


def missing_dataset(name: str, names: Iterable[str]) -> str:
    """The message for a dataset `name` that is not among the uploaded `names`, suggesting the closest."""
    closest = closest_name(name, names)
    return f"dataset {name!r} does not exist" + (f"; did you mean {closest!r}?" if closest else "")
