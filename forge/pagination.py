"""Opaque cursors for paginated listings: the sort key of a page's last item, safe in a URL.

A client passes the `next_cursor` of one page as `cursor` to get the next; it never
needs to read one. A cursor this service did not give out is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json

from forge.errors import BadRequest


def encode_cursor(*key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> tuple[str, ...]:
    """The key `encode_cursor` was given, which must have `parts` strings."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):  # not base64, not UTF-8 or not JSON
        key = None
    if not (isinstance(key, list) and len(key) == parts and all(isinstance(k, str) for k in key)):
        raise BadRequest(f"cursor {cursor[:80]!r} is not one this service gave out; pass a next_cursor as it came")
    return tuple(key)
