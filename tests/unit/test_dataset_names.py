"""The names datasets are stored under (forge/dataset_names.py): allowed names, versions, the closest name."""

from __future__ import annotations

import pytest

from forge.dataset_names import closest_name, missing_dataset, sanitize_filename, versioned_name
from forge.errors import BadRequest


@pytest.mark.parametrize(
    "name, reason",
    [
        ("../../x.jsonl", "path separators"),
        ("/etc/passwd", "path separators"),
        ("a/b.jsonl", "path separators"),
        ("a\\b.jsonl", "path separators"),
        ("a..b.jsonl", "'..'"),
        (".hidden.jsonl", "start with '.'"),
        ("x" * 300 + ".jsonl", "limit is 200"),
        ("data.txt", "end with '.jsonl'"),
        ("data.JSONL", "end with '.jsonl'"),
        ("", "required"),
        (None, "required"),
        ("my data.jsonl", "only letters"),
        ("d\u00e4ta.jsonl", "only letters"),
        ("bad\x00.jsonl", "control characters"),
        ("bad\n.jsonl", "control characters"),
    ],
)
def test_sanitize_filename_rejects(name, reason):
    with pytest.raises(BadRequest) as info:
        sanitize_filename(name)
    assert reason in info.value.detail
    assert info.value.status_code == 400


def test_sanitize_filename_names_allowed_characters():
    with pytest.raises(BadRequest) as info:
        sanitize_filename("my data.jsonl")
    assert "letters" in info.value.detail and "digits" in info.value.detail
    assert "' '" in info.value.detail


@pytest.mark.parametrize("name", ["dataset.jsonl", "my_data-v1.2.jsonl", "x" * 194 + ".jsonl"])
def test_sanitize_filename_accepts(name):
    assert sanitize_filename(name) == name


def test_versioned_name_free_name_unchanged():
    assert versioned_name("data.jsonl", lambda name: False) == "data.jsonl"


def test_versioned_name_counts_up():
    taken = {"data.jsonl", "data-2.jsonl", "data-3.jsonl"}
    assert versioned_name("data.jsonl", taken.__contains__) == "data-4.jsonl"
    assert versioned_name("other.jsonl", taken.__contains__) == "other.jsonl"


def test_versioned_name_first_duplicate():
    assert versioned_name("my_data-v1.2.jsonl", {"my_data-v1.2.jsonl"}.__contains__) == "my_data-v1.2-2.jsonl"


# ------------------------------------------------------------- the closest name


def test_a_missing_dataset_suggests_the_closest_uploaded_name():
    uploaded = ["alpaca.jsonl", "chat.jsonl", "summaries-2.jsonl"]
    assert missing_dataset("alpca.jsonl", uploaded) == "dataset 'alpca.jsonl' does not exist; did you mean 'alpaca.jsonl'?"
    assert closest_name("summaries.jsonl", uploaded) == "summaries-2.jsonl"
    assert missing_dataset("invoices.jsonl", uploaded) == "dataset 'invoices.jsonl' does not exist"
    assert closest_name("anything.jsonl", []) is None


def test_the_name_of_a_converted_upload_suggests_what_it_was_stored_as():
    # data.csv was stored as data.jsonl; a request naming the CSV gets the stored name even among near misses.
    assert closest_name("data.csv", ["data.jsonl", "data-2.csv.jsonl", "dates.jsonl"]) == "data.jsonl"
    assert closest_name("q.parquet", ["q.jsonl"]) == "q.jsonl"
