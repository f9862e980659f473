"""A request body written to disk under a byte limit: dataset uploads and /v1/uploads parts arrive this way.

A body is refused twice over: by its declared length before anything is read, and by
the bytes counted as they arrive (a client may declare less than it sends, or send
chunks). Each chunk is written from a worker thread, so the ingress's event loop goes
on serving other requests while a large body lands on a slow disk.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable, Optional, Protocol

CHUNK_BYTES = 1024 * 1024
# Multipart framing around the file: a body this much over the limit may still hold a file within it.
MULTIPART_FRAMING_BYTES = 64 * 1024


class AsyncReadable(Protocol):
    """What a body is read from (FastAPI's UploadFile is one): at most `size` bytes per call, b"" at the end."""

    async def read(self, size: int) -> bytes: ...


def declared_over(content_length: Optional[str], limit: int) -> bool:
    """Whether a request's Content-Length says its body cannot hold a file of at most `limit` bytes."""
    return bool(content_length and content_length.isdigit() and int(content_length) > limit + MULTIPART_FRAMING_BYTES)


async def copy_within(source: AsyncReadable, target: Path, limit: int,
                      too_large: Callable[[], Exception]) -> int:
    """Copy `source` into `target`, raising `too_large()` once more than `limit` bytes arrive: the bytes written."""
    written = 0
    with target.open("wb") as out:
        while chunk := await source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > limit:
                raise too_large()
            await asyncio.to_thread(out.write, chunk)
    return written
