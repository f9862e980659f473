"""The bounded body copy (forge/bounded_copy.py) shared by dataset uploads and /v1/uploads parts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from forge.bounded_copy import CHUNK_BYTES, MULTIPART_FRAMING_BYTES, copy_within, declared_over


class Body:
    """A request body as an UploadFile hands it out: at most `size` bytes per read, b"" at the end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.offset, self.reads = data, 0, []

    async def read(self, size: int) -> bytes:
        self.reads.append(size)
        piece = self.data[self.offset:self.offset + size]
        self.offset += len(piece)
        return piece


class TooLarge(Exception):
    pass


def test_a_body_within_the_limit_lands_whole_in_bounded_reads(tmp_path: Path) -> None:
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 3)
    body, target = Body(data), tmp_path / "body"
    assert asyncio.run(copy_within(body, target, len(data), TooLarge)) == len(data)
    assert target.read_bytes() == data
    assert set(body.reads) == {CHUNK_BYTES}


def test_a_body_over_the_limit_raises_the_callers_error_before_writing_past_it(tmp_path: Path) -> None:
    target = tmp_path / "body"
    with pytest.raises(TooLarge):
        asyncio.run(copy_within(Body(b"x" * (CHUNK_BYTES + 1)), target, CHUNK_BYTES, TooLarge))
    assert target.stat().st_size <= CHUNK_BYTES  # the caller removes what was written


def test_a_declared_length_is_over_only_past_the_limit_and_the_multipart_framing() -> None:
    assert not declared_over(None, 100)
    assert not declared_over("not-a-number", 100)
    assert not declared_over(str(100 + MULTIPART_FRAMING_BYTES), 100)
    assert declared_over(str(101 + MULTIPART_FRAMING_BYTES), 100)
