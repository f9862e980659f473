"""Storage on a local path and on an S3 bucket (moto's loopback server: see tests/conftest.py).

The same operations, the same results: what the service does with datasets, runs and
models must not depend on where FORGE_STORAGE points.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.settings import Settings
from forge.storage import Storage, local_file, publish_folder


# `storage`: tests/unit/conftest.py, once on a local path and once on S3.


def _folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "adapter_model.safetensors").write_bytes(b"\0" * 1000)
    (root / "sub" / "forge.json").write_text('{"task": "text-generation"}')
    return root


def test_a_folder_goes_up_moves_and_comes_back_whole(storage: Storage, tmp_path: Path):
    staging, target = storage.staging_dir("train_x"), storage.model_dir(7)
    storage.put(_folder(tmp_path / "adapter"), staging)
    assert storage.size_bytes(staging) == 1000 + len('{"task": "text-generation"}')

    storage.move(staging, target)
    assert not storage.exists(staging) and storage.exists(f"{target}/sub/forge.json")

    copy = storage.local_copy(target, "model-7")
    assert (copy / "sub" / "forge.json").read_text() == '{"task": "text-generation"}'
    assert (copy / "adapter_model.safetensors").stat().st_size == 1000
    assert not [p for p in copy.parent.iterdir() if p.name.endswith(".partial")]

    storage.remove_tree(target)
    assert not storage.exists(target) and storage.size_bytes(target) == 0
    storage.remove_tree(target)  # absent is fine


def test_a_flat_folder_comes_back_too(storage: Storage, tmp_path: Path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "adapter_config.json").write_text("{}")
    storage.put(flat, storage.model_dir(8))
    assert (storage.local_copy(storage.model_dir(8), "model-8") / "adapter_config.json").read_text() == "{}"


def test_a_file_is_renamed_into_datasets(storage: Storage, tmp_path: Path):
    local = tmp_path / "rows.jsonl"
    local.write_text('{"input": "a", "output": "b"}\n')
    staged = storage.upload_staging_path()
    assert staged.startswith(storage.datasets_dir + "/.upload-")
    storage.put(local, staged)
    storage.move(staged, storage.dataset_path("rows.jsonl"))
    assert not storage.exists(staged)
    assert storage.size_bytes(storage.dataset_path("rows.jsonl")) == local.stat().st_size


def test_workers_read_and_write_through_the_location_string(storage: Storage, tmp_path: Path):
    """A job spec carries locations (a path or a URI with its options); workers open them alone."""
    local = tmp_path / "rows.jsonl"
    local.write_text('{"input": "a", "output": "b"}\n')
    storage.put(local, storage.dataset_path("rows.jsonl"))
    location = storage.uri(storage.dataset_path("rows.jsonl"))
    fetched = local_file(location, tmp_path / "worker")
    assert fetched.read_text() == local.read_text()

    publish_folder(_folder(tmp_path / "adapter"), storage.uri(storage.staging_dir("train_y")))
    publish_folder(_folder(tmp_path / "adapter2"), storage.uri(storage.staging_dir("train_y")))  # replaces
    assert storage.exists(f"{storage.staging_dir('train_y')}/sub/forge.json")


def test_locations_shown_to_users_carry_no_endpoint_options(tmp_path: Path):
    uri = "s3://bucket/prod?endpoint_override=127.0.0.1:9&scheme=http"
    storage = Storage(Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_STORAGE": uri}))
    assert storage.root == "bucket/prod"
    assert storage.uri(storage.model_dir(3)) == "s3://bucket/prod/models/3?endpoint_override=127.0.0.1:9&scheme=http"
    assert storage.display(storage.model_dir(3)) == "s3://bucket/prod/models/3"
    assert storage.path_of(storage.display(storage.model_dir(3))) == "bucket/prod/models/3"

    local = Storage(Settings.from_env({"FORGE_HOME": str(tmp_path)}))
    assert local.is_local and local.display(local.model_dir(3)) == str(tmp_path.resolve() / "models" / "3")
