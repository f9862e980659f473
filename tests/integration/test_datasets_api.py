"""A dataset read back a page at a time and deleted over HTTP (a dataset in use: tests/integration/test_queue.py)."""

from __future__ import annotations

import json

import pytest
from support import SAMPLE_DATASET, Service, assert_error_shape

pytestmark = pytest.mark.integration


def test_a_dataset_is_previewed_a_page_at_a_time_and_deleted(service: Service):
    rows = [json.loads(line) for line in SAMPLE_DATASET.read_text().splitlines() if line.strip()]
    name = service.client.upload(SAMPLE_DATASET, name="preview.jsonl")["filename"]

    first = service.client.dataset(name, limit=5)
    assert (first["filename"], first["format"], first["num_examples"]) == (name, "pairs", len(rows))
    assert first["size_mb"] > 0 and first["rows"] == rows[:5]
    assert (first["offset"], first["next_offset"]) == (0, 5)
    last = service.client.dataset(name, offset=len(rows) - 2, limit=5)
    assert last["rows"] == rows[-2:] and last["next_offset"] is None

    assert service.client.delete_dataset(name)["status"] == "deleted"
    assert name not in [d["filename"] for d in service.client.datasets()]
    assert not (service.home / "datasets" / name).exists()
    assert_error_shape(service.get(f"/api/datasets/{name}"), 404)
    assert_error_shape(service.delete(f"/api/datasets/{name}"), 404)
    # A job cannot name it any more.
    assert_error_shape(service.start(dataset=name), 400)


@pytest.mark.parametrize("query", ["offset=-1", "limit=0", "limit=101", "offset=x"])
def test_a_bad_page_is_400(service: Service, query: str):
    # The query is checked before the dataset is looked up.
    assert_error_shape(service.get(f"/api/datasets/any.jsonl?{query}"), 400)
