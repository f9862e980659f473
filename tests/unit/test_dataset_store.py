"""Datasets without Ray: registered under a free name, read a page at a time, deleted unless a job uses them.

Real SQLite registry and real files under a local FORGE_STORAGE (tmp_path).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from forge.dataset_store import DatasetStore
from forge.errors import Conflict, NotFound
from forge.schemas import ValidationReport

pytestmark = pytest.mark.anyio
ROWS = [{"input": f"question {i}", "output": f"answer {i}"} for i in range(7)]


@pytest.fixture
def store(local_storage, storage_registry) -> DatasetStore:
    return DatasetStore(storage_registry, local_storage)


async def _upload(store: DatasetStore, name: str, tmp_path: Path) -> str:
    tmp_path.mkdir(exist_ok=True)
    staged = tmp_path / f"staged-{name}"
    # A blank line in the middle, as editors leave them: not a row.
    lines = [json.dumps(r) for r in ROWS]
    staged.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")
    report = ValidationReport(valid=True, num_examples=len(ROWS), format="pairs")
    return (await store.register(str(staged), name, report)).filename


async def test_rows_come_a_page_at_a_time_as_stored(store, tmp_path):
    name = await _upload(store, "faq.jsonl", tmp_path)
    assert await store.rows(name, 0, 3) == (ROWS[:3], True)
    assert await store.rows(name, 3, 3) == (ROWS[3:6], True)
    assert await store.rows(name, 6, 3) == (ROWS[6:], False)
    assert await store.rows(name, 0, 7) == (ROWS, False)
    assert await store.rows(name, 50, 3) == ([], False)
    with pytest.raises(NotFound):
        await store.rows("missing.jsonl", 0, 3)


async def test_a_second_upload_of_a_name_gets_a_versioned_one(store, tmp_path):
    assert await _upload(store, "faq.jsonl", tmp_path) == "faq.jsonl"
    assert await _upload(store, "faq.jsonl", tmp_path) == "faq-2.jsonl"
    assert [d.filename for d in store.all()] == ["faq.jsonl", "faq-2.jsonl"]


async def test_two_uploads_of_one_name_at_once_keep_both_files_under_distinct_names(store, tmp_path):
    # Registrations interleave on the manager's event loop while their files move (in threads).
    first, second = await asyncio.gather(*(_upload(store, "faq.jsonl", tmp_path / str(i)) for i in range(2)))
    assert sorted([first, second]) == ["faq-2.jsonl", "faq.jsonl"]
    assert sorted(d.filename for d in store.all()) == ["faq-2.jsonl", "faq.jsonl"]
    for name in (first, second):
        assert await store.rows(name, 0, 10) == (ROWS, False)
    # Nothing is left reserved: the next upload of the name gets the next version.
    assert await _upload(store, "faq.jsonl", tmp_path) == "faq-3.jsonl"


async def test_a_missing_dataset_names_the_closest_one(store, tmp_path):
    await _upload(store, "alpaca.jsonl", tmp_path)
    with pytest.raises(NotFound, match="dataset 'alpca.jsonl' does not exist; did you mean 'alpaca.jsonl'"):
        store.get("alpca.jsonl")


async def test_a_dataset_in_use_is_kept_and_one_that_is_not_goes_with_its_file(store, tmp_path):
    name = await _upload(store, "faq.jsonl", tmp_path)
    stored = Path(store.storage.dataset_path(name))
    with pytest.raises(Conflict, match="used by train_a"):
        await store.delete(name, used_by={"train_a"})
    assert stored.is_file() and store.get(name)
    await store.delete(name, used_by=set())
    assert not stored.exists() and store.all() == []
    with pytest.raises(NotFound):
        await store.delete(name, used_by=set())
