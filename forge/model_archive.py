"""A model folder as a streamed .tar.gz: GET /api/models/{id}/download.

The archive is produced as it is sent, a bounded chunk at a time, so memory stays
flat whatever the model's size (a merged 8B model is 16 GB): each file is read from
storage sequentially (pyarrow's input stream, also on an object store) and passes
through one gzip compressor. Plain generators, no thread: tarfile's stream mode
would write a whole file in one call, so the tar headers come from tarfile and the
file bodies are framed here (a body, then zero padding to the next 512-byte block;
two zero blocks end the archive).
"""

from __future__ import annotations

import io
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from forge.modeling.model_card import README_FILE
from forge.storage import Storage

CHUNK_BYTES = 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE
# zlib's gzip container (wbits 16 + 15): a .tar.gz that `tar xzf` and Python's tarfile read.
_GZIP_WBITS = 31


@dataclass(frozen=True)
class ArchiveMember:
    """A file of the archive: its path inside it, its size, and how to open it for reading."""

    name: str
    size: int
    open: Callable[[], Any]  # a context manager whose value has .read(n) -> bytes


def text_member(name: str, text: str) -> ArchiveMember:
    data = text.encode("utf-8")
    return ArchiveMember(name=name, size=len(data), open=lambda: io.BytesIO(data))


def _header(member: ArchiveMember) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.size, info.mode = member.size, 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)  # PAX: long names and sizes over 8 GiB fit


def _raw_tar(members: Iterable[ArchiveMember], chunk_bytes: int) -> Iterator[bytes]:
    """The uncompressed tar stream, in pieces of at most `chunk_bytes` (headers and padding are smaller)."""
    for member in members:
        yield _header(member)
        remaining = member.size
        with member.open() as stream:
            while remaining:
                piece = stream.read(min(chunk_bytes, remaining))
                if not piece:
                    raise OSError(f"{member.name} ended {remaining} bytes short of its listed size")
                remaining -= len(piece)
                yield piece
        if member.size % _BLOCK:
            yield b"\0" * (_BLOCK - member.size % _BLOCK)
    yield b"\0" * (2 * _BLOCK)


def tar_gz_chunks(members: Iterable[ArchiveMember], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """A .tar.gz of `members`, as chunks of at most `chunk_bytes`; each file is read once, in order."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, _GZIP_WBITS)
    pending = bytearray()
    for piece in _raw_tar(members, chunk_bytes):
        pending += compressor.compress(piece)
        while len(pending) >= chunk_bytes:
            with memoryview(pending) as view:  # one copy of the chunk, not a slice and then its copy
                chunk = bytes(view[:chunk_bytes])
            del pending[:chunk_bytes]
            yield chunk
    pending += compressor.flush()
    for start in range(0, len(pending), chunk_bytes):
        yield bytes(pending[start:start + chunk_bytes])


def model_members(storage: Storage, folder: str, top: str, readme: str) -> list[ArchiveMember]:
    """The files of the model folder at `folder` (a storage path) under `top/`, with `readme` as its README.md.

    A README.md in the folder (PEFT writes a template one) gives way to `readme`.
    """
    members = [ArchiveMember(name=f"{top}/{relative}", size=size,
                             open=lambda path=f"{folder}/{relative}": storage.open_input(path))
               for relative, size in storage.list_files(folder) if relative != README_FILE]
    return [*members, text_member(f"{top}/{README_FILE}", readme)]


def archive_folder_name(model_name: str, model_id: int) -> str:
    """The archive's top folder (and file name): the model's name, kept to characters every filesystem takes."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip(".-")
    return safe or f"model-{model_id}"
