"""The whole service with FORGE_STORAGE=s3://…: upload, train, generate, download, merge, delete.

A second app in the session's cluster (own manager, own FORGE_HOME) keeps its
datasets, Ray Train checkpoints and models in an S3 bucket. The bucket is served by
moto's standalone S3 server on loopback (tests/conftest.py): no S3 service can be
reached from here, and that server is the one fake this test admits to. Everything
else (pyarrow's S3FileSystem, Ray Train's storage, the Playground's copy) is real.
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest
from support import SAMPLE_DATASET, Service, assert_error_shape, side_app

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

PROMPT = "What is 3 plus 4?"


@pytest.fixture(scope="module")
def s3_service(service: Service, s3_location, tmp_path_factory: pytest.TempPathFactory):
    location = s3_location("service")
    environ = {"FORGE_HOME": str(tmp_path_factory.mktemp("s3_home")), "FORGE_STORAGE": location}
    with side_app(service, "s3", environ, playground_max_replicas=1) as s3:
        yield s3, location


def _bucket(location: str):
    from forge.storage import open_filesystem

    return open_filesystem(location)


def _keys(location: str, folder: str) -> list[str]:
    import pyarrow.fs as pafs

    filesystem, root = _bucket(location)
    found = filesystem.get_file_info(pafs.FileSelector(f"{root}/{folder}", recursive=True, allow_not_found=True))
    return sorted(f.path.removeprefix(f"{root}/") for f in found if f.type == pafs.FileType.File)


def test_upload_train_generate_and_delete_with_storage_in_a_bucket(s3_service):
    service, location = s3_service
    uploaded = service.upload(SAMPLE_DATASET, name="s3.jsonl")
    assert uploaded.status_code == 200, uploaded.text
    assert _keys(location, "datasets") == ["datasets/s3.jsonl"]  # no staging object left behind
    filesystem, root = _bucket(location)
    assert filesystem.get_file_info(f"{root}/datasets/s3.jsonl").size == SAMPLE_DATASET.stat().st_size
    listed = service.get("/api/datasets").json()["datasets"]
    assert [d["filename"] for d in listed] == ["s3.jsonl"]

    # A rejected upload leaves nothing in the bucket either.
    bad = service.post("/api/upload_dataset", files={"file": ("bad.jsonl", b"{not json}\n", "application/jsonl")})
    assert_error_shape(bad, 400)
    assert _keys(location, "datasets") == ["datasets/s3.jsonl"]

    # A CSV is converted on the API replica and only its JSONL goes up; nothing stays in scratch/.
    rows = "".join(f"What is {i} plus {i}?,{2 * i}\n" for i in range(12))
    csv_upload = service.post("/api/upload_dataset", files={"file": ("s3.csv", b"input,output\n" + rows.encode(),
                                                                         "text/csv")})
    assert csv_upload.status_code == 200, csv_upload.text
    assert csv_upload.json()["filename"] == "s3-2.jsonl"
    assert _keys(location, "datasets") == ["datasets/s3-2.jsonl", "datasets/s3.jsonl"]
    assert service.client.dataset("s3-2.jsonl")["rows"][1] == {"input": "What is 1 plus 1?", "output": "2"}
    assert list((Path(service.home) / "scratch").iterdir()) == []

    started = service.start(dataset="s3.jsonl", max_steps=12, save_steps=6, eval_split=0.1)
    assert started.status_code == 200, started.text
    job_id = started.json()["job_id"]
    checkpoints: set[str] = set()
    status: dict = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = service.status(job_id)
        checkpoints |= {k.split("/")[2] for k in _keys(location, f"runs/{job_id}") if "/checkpoint/" in k}
        if status["status"] in TERMINAL_STATUSES:
            break
        time.sleep(0.2)
    assert status["status"] == "completed", status
    # Ray Train kept its checkpoints in the bucket while the job ran.
    assert checkpoints & {"train-000006", "train-000012"}, checkpoints

    model_id = status["model_id"]
    assert service.get(f"/api/models/{model_id}").json()["job_id"] == job_id
    keys = _keys(location, f"models/{model_id}")
    assert f"models/{model_id}/adapter_model.safetensors" in keys and f"models/{model_id}/forge.json" in keys
    assert _keys(location, f"runs/{job_id}") == []  # a completed job's checkpoints are removed
    assert not [k for k in _keys(location, "models") if ".staging-" in k]
    # Nothing shared was written to the local FORGE_HOME.
    assert not any((Path(service.home) / folder).exists() for folder in ("datasets", "models", "runs"))

    body = {"model_id": model_id, "prompt": PROMPT, "max_new_tokens": 8, "temperature": 0}
    first = service.post("/api/playground/generate", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["generated_text"] == service.post("/api/playground/generate", json=body).json()[
        "generated_text"]

    # Downloaded straight from the bucket: every file of the model, with the README card in place of PEFT's.
    with tarfile.open(fileobj=io.BytesIO(service.get(f"/api/models/{model_id}/download").content)) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames()}
    assert names == {k.split("/", 2)[2] for k in keys} | {"README.md"}

    # Merged in a Ray task that reads and writes the bucket; no staging object stays.
    merged = service.post(f"/api/models/{model_id}/merge", timeout=600)
    assert merged.status_code == 200, merged.text
    merged_id = merged.json()["model"]["id"]
    merged_keys = _keys(location, f"models/{merged_id}")
    assert f"models/{merged_id}/model.safetensors" in merged_keys
    assert not [k for k in _keys(location, "models") if ".merge-" in k]
    merged_body = {**body, "model_id": merged_id}
    answer = first.json()["generated_text"]
    assert service.post("/api/playground/generate", json=merged_body).json()["generated_text"] == answer

    deleted = service.delete(f"/api/models/{model_id}")
    assert deleted.status_code == 200, deleted.text
    assert _keys(location, f"models/{model_id}") == []
    assert_error_shape(service.get(f"/api/models/{model_id}"), 404)
    assert_error_shape(service.post("/api/playground/generate", json=body), 404)
    # The merged model is self-contained: its adapter model's deletion leaves its files and its answers as they were
    # (tests/unit/test_model_store.py loads one from its folder after such a deletion).
    assert _keys(location, f"models/{merged_id}") == merged_keys
    assert service.post("/api/playground/generate", json=merged_body).json()["generated_text"] == answer
