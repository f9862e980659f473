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


def test_chunks_are_bounded_and_memory_stays_flat_whatever_the_size(tmp_path: Path):
    big = tmp_path / "model.safetensors"
    size = 24 * 1024 * 1024
    with big.open("wb") as out:  # half random (incompressible), half zeros (compresses to almost nothing)
        out.write(os.urandom(size // 2))
        out.write(bytes(size // 2))
    chunk = 256 * 1024
    members = [ArchiveMember("m/model.safetensors", size, lambda: big.open("rb")), text_member("m/README.md", "hi")]

    tracemalloc.start()
    try:
        sizes, total = [], 0
        for piece in tar_gz_chunks(members, chunk_bytes=chunk):
            sizes.append(len(piece))
            total += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert max(sizes) <= chunk and len(sizes) > size // 2 // chunk
    assert total < size * 0.6  # the zeros compressed: this is gzip, not a plain tar
    # A few chunks in flight at most; the archive itself is never held (it is 12 MiB).
    assert peak < 8 * chunk, f"peak {peak} bytes"


def test_a_file_shorter_than_listed_breaks_the_stream_instead_of_a_corrupt_archive():
    members = [ArchiveMember("m/short.bin", 10, lambda: io.BytesIO(b"12345"))]
    with pytest.raises(OSError, match="m/short.bin ended 5 bytes short"):
        list(tar_gz_chunks(members))


def test_the_archive_folder_is_named_after_the_model():
    assert archive_folder_name("support-bot_v2.1", 3) == "support-bot_v2.1"
    assert archive_folder_name("my model: ünïcode/../x", 3) == "my-model-n-code-..-x"
    assert archive_folder_name("../..", 7) == "model-7"
