"""A model folder streamed as .tar.gz: what comes out is what was stored, in chunks of bounded size.

Real files on a local storage and on an S3 bucket (moto's loopback server, tests/conftest.py),
read back with Python's tarfile as a user's `tar xzf` would.
"""

from __future__ import annotations

import io
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from forge.model_archive import (
    ArchiveMember,
    archive_folder_name,
    model_members,
    tar_gz_chunks,
    text_member,
)
from forge.storage import Storage


def _extract(chunks: list[bytes]) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def test_a_model_folder_comes_out_whole_with_the_readme_in_place_of_peft_s(storage: Storage, tmp_path: Path):
    folder = tmp_path / "model"
    (folder / "extra").mkdir(parents=True)
    weights = os.urandom(300_000)  # incompressible: the gzip stream must still frame it right
    files = {"adapter_model.safetensors": weights, "adapter_config.json": b'{"r": 4}',
             "forge.json": b'{"task": "text-generation"}', "README.md": b"PEFT's template card",
             "extra/reward.bin": b"", "tokenizer.json": b"x" * 513}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    storage.put(folder, storage.model_dir(4))

    members = model_members(storage, storage.model_dir(4), "support-bot", "# support-bot\n")
    out = _extract(list(tar_gz_chunks(members, chunk_bytes=64 * 1024)))

    expected = {f"support-bot/{name}": data for name, data in files.items() if name != "README.md"}
    assert out == {**expected, "support-bot/README.md": b"# support-bot\n"}


def _stream_file(path: Path, chunk: int) -> tuple[list[int], int]:
    """The chunk sizes of `path`'s archive, and the peak memory traced while it was produced."""
    size = path.stat().st_size
    members = [ArchiveMember("m/model.safetensors", size, lambda: path.open("rb")), text_member("m/README.md", "hi")]
    tracemalloc.start()
    try:
        sizes = [len(piece) for piece in tar_gz_chunks(members, chunk_bytes=chunk)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return sizes, peak


def _model_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:  # half random (incompressible), half zeros (compresses to almost nothing)
        out.write(os.urandom(size // 2))
        out.write(bytes(size // 2))
    return path


def test_chunks_are_bounded_and_memory_stays_flat_whatever_the_size(tmp_path: Path):
    chunk = 256 * 1024
    small = _model_file(tmp_path / "small.safetensors", 6 * 1024 * 1024)
    big = _model_file(tmp_path / "big.safetensors", 24 * 1024 * 1024)

    small_sizes, small_peak = _stream_file(small, chunk)
    sizes, peak = _stream_file(big, chunk)

    assert max(sizes) <= chunk and max(small_sizes) <= chunk
    assert len(sizes) > big.stat().st_size // 2 // chunk
    assert sum(sizes) < big.stat().st_size * 0.6  # the zeros compressed: this is gzip, not a plain tar
    # Four times the file, the same memory: a few chunks in flight, never the archive (12 MiB here).
    assert peak < small_peak + chunk, f"peak {peak} bytes for 24 MiB against {small_peak} for 6 MiB"
    assert peak < 16 * chunk, f"peak {peak} bytes"


def test_a_file_shorter_than_listed_breaks_the_stream_instead_of_a_corrupt_archive():
    members = [ArchiveMember("m/short.bin", 10, lambda: io.BytesIO(b"12345"))]
    with pytest.raises(OSError, match="m/short.bin ended 5 bytes short"):
        list(tar_gz_chunks(members))


def test_the_archive_folder_is_named_after_the_model():
    assert archive_folder_name("support-bot_v2.1", 3) == "support-bot_v2.1"
    assert archive_folder_name("my model: ünïcode/../x", 3) == "my-model-n-code-..-x"
    assert archive_folder_name("../..", 7) == "model-7"
