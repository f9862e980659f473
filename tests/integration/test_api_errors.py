"""Every failure the API can answer, in the contract's error shape, over real HTTP.

A generate racing the delete of its model (200 or 404, never 500) is checked in
test_user_story.py's delete step, on the model the story deletes anyway.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from support import SAMPLE_DATASET, Service, assert_error_shape

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dataset(service: Service) -> str:
    upload = service.upload(SAMPLE_DATASET, name="for_error_tests.jsonl")
    assert upload.status_code == 200, upload.text
    return upload.json()["filename"]


def _datasets_dir_listing(service: Service) -> set[str]:
    return {p.name for p in (Path(service.home) / "datasets").iterdir()}


def test_unknown_route_is_404(service: Service):
    body = assert_error_shape(service.get("/api/does-not-exist"), 404)
    assert "/api/does-not-exist" in body["detail"]


def test_an_unknown_query_parameter_is_400_naming_it(service: Service):
    body = assert_error_shape(service.get("/api/jobs", params={"limt": 5}), 400)
    assert "'limt'" in body["detail"]
    assert service.get("/api/jobs", params={"limit": 5}).status_code == 200
    openai_style = service.get("/v1/files", params={"limit": 5, "purpse": "fine-tune"})
    assert openai_style.status_code == 400 and openai_style.json()["error"]["param"] == "purpse"


def test_a_single_valued_query_parameter_given_twice_is_400_and_a_list_one_takes_several(service: Service):
    body = assert_error_shape(service.get("/api/jobs", params=[("limit", 5), ("limit", 6)]), 400)
    assert "'limit' takes one value" in body["detail"]
    openai_style = service.get("/v1/files", params=[("after", "a.jsonl"), ("after", "b.jsonl")])
    assert openai_style.status_code == 400 and openai_style.json()["error"]["param"] == "after"
    for path in ("/v1/files", "/v1/fine_tuning/jobs"):  # an empty cursor names no object
        empty = service.get(path, params={"after": ""})
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "after", empty.text
    several = service.get("/api/jobs", params=[("status", "completed"), ("status", "failed")])
    assert several.status_code == 200, several.text
    assert {job["status"] for job in several.json()["jobs"]} <= {"completed", "failed"}


def test_wrong_method_is_405_in_error_shape(service: Service):
    assert_error_shape(requests.put(service.url + "/api/health", timeout=30), 405)
    # A path served by two routes allows the methods of both.
    response = requests.put(service.url + "/api/models/1", timeout=30)
    assert "allowed: DELETE, GET, PATCH" in assert_error_shape(response, 405)["detail"]
    assert response.headers["allow"] == "DELETE, GET, PATCH"


@pytest.mark.parametrize(
    "fields, field_name",
    [
        ({"lora_r": 0}, "lora_r"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"num_train_epochs": 0}, "num_train_epochs"),
        ({"strategy": "ppo"}, "strategy"),
        ({"task": "translation"}, "task"),
        ({"model_name": ""}, "model_name"),
        ({"num_epochs": 3}, "num_epochs"),
        ({"eval_split": 1.0}, "eval_split"),
        ({"lora_r": "sixteen"}, "lora_r"),
        ({"num_train_epochs": 1.5}, "num_train_epochs"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"per_device_train_batch_size": -1}, "per_device_train_batch_size"),
        ({"provider": "deepspeed"}, "provider"),
        ({"optim": "lion"}, "optim"),
        ({"max_steps": 0}, "max_steps"),
        ({"save_steps": 0}, "save_steps"),
        ({"save_total_limit": 0}, "save_total_limit"),
        ({"num_workers": 0}, "num_workers"),
        ({"use_4bit": "maybe"}, "use_4bit"),
    ],
)
def test_invalid_training_request_is_400_never_422(service: Service, fields: dict, field_name: str):
    body = assert_error_shape(service.start(dataset="text_generation.jsonl", **fields), 400)
    assert field_name in body["detail"]


def test_malformed_json_body_is_400(service: Service):
    response = service.post("/api/start_training", data="{not json", headers={"content-type": "application/json"})
    assert_error_shape(response, 400)


def test_unknown_dataset_is_400(service: Service):
    body = assert_error_shape(service.start(dataset="never-uploaded.jsonl"), 400)
    assert "never-uploaded.jsonl" in body["detail"]


def test_dataset_path_outside_roots_is_400(service: Service):
    body = assert_error_shape(service.start(dataset=str(SAMPLE_DATASET)), 400)
    assert "outside the allowed dataset roots" in body["detail"]


@pytest.mark.parametrize("model_name", ["/no/such/model/dir", "./missing-model"])
def test_unresolvable_local_model_is_400(service: Service, dataset: str, model_name: str):
    body = assert_error_shape(service.start(dataset=dataset, model_name=model_name), 400)
    assert model_name in body["detail"]


def test_hub_model_that_cannot_be_fetched_is_400(service: Service, dataset: str):
    """The Hugging Face Hub cannot be reached from this machine: the id is neither cached nor fetchable."""
    body = assert_error_shape(
        service.start(dataset=dataset, model_name="nobody-here/no-such-model"), 400
    )
    assert "nobody-here/no-such-model" in body["detail"]


def test_invalid_upload_is_400_with_validation_and_leaves_nothing(service: Service, tmp_path: Path):
    before = _datasets_dir_listing(service)
    bad = tmp_path / "bad.jsonl"
    lines = [json.dumps({"input": f"q{i}", "output": f"a{i}"}) for i in range(15)]
    lines[2] = "{not json"
    lines[5] = json.dumps({"input": "only input"})
    lines[7] = json.dumps({"input": 3, "output": "x"})
    bad.write_text("\n".join(lines) + "\n")
    body = assert_error_shape(service.upload(bad), 400)
    validation = body["validation"]
    assert validation["valid"] is False
    assert [e["line"] for e in validation["errors"]] == [3, 6, 8]
    assert "invalid JSON" in validation["errors"][0]["error"]
    assert "output" in validation["errors"][1]["error"]
    assert "input" in validation["errors"][2]["error"]
    assert _datasets_dir_listing(service) == before
    assert "bad.jsonl" not in [d["filename"] for d in service.get("/api/datasets").json()["datasets"]]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "at least 10"),
        (bytes(range(256)) * 64, "not valid UTF-8"),
        (json.dumps([{"input": "a", "output": "b"}] * 20).encode(), "expected a JSON object, got array"),
        (b"\n".join([json.dumps({"input": "q", "output": "a"}).encode()] * 12 + [b"caf\xe9"]), "not valid UTF-8"),
    ],
    ids=["empty", "binary", "json-array", "latin-1-line"],
)
def test_hostile_upload_is_400_and_leaves_nothing(service: Service, tmp_path: Path, content: bytes, expected: str):
    before = _datasets_dir_listing(service)
    upload = tmp_path / "hostile.jsonl"
    upload.write_bytes(content)
    body = assert_error_shape(service.upload(upload), 400)
    assert body["validation"]["valid"] is False
    assert expected in json.dumps(body["validation"])
    assert _datasets_dir_listing(service) == before
    assert service.get("/api/health").status_code == 200


def test_too_few_examples_is_400(service: Service, tmp_path: Path):
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(json.dumps({"input": "a", "output": "b"}) for _ in range(3)) + "\n")
    body = assert_error_shape(service.upload(small), 400)
    assert "at least 10" in json.dumps(body["validation"])


@pytest.mark.parametrize(
    "name", ["../../x.jsonl", "a/b.jsonl", ".hidden.jsonl", "data.txt", "/etc/passwd", "x" * 300 + ".jsonl"]
)
def test_unsafe_upload_filename_is_400(service: Service, name: str):
    before = _datasets_dir_listing(service)
    assert_error_shape(service.upload(SAMPLE_DATASET, name=name), 400)
    assert _datasets_dir_listing(service) == before


def test_same_name_upload_gets_a_versioned_name(service: Service):
    first = service.upload(SAMPLE_DATASET, name="twice.jsonl").json()
    second = service.upload(SAMPLE_DATASET, name="twice.jsonl").json()
    assert first["filename"] == "twice.jsonl"
    assert second["filename"] == "twice-2.jsonl"
    assert "twice-2.jsonl" in second["message"]


def test_upload_over_the_size_limit_is_413_and_leaves_nothing(service: Service, tmp_path: Path):
    """The session runs with FORGE_MAX_UPLOAD_MB=2."""
    before = _datasets_dir_listing(service)
    big = tmp_path / "big.jsonl"
    row = json.dumps({"input": "x" * 1000, "output": "y" * 1000}) + "\n"
    big.write_text(row * 1600)  # about 3.2 MB
    assert_error_shape(service.upload(big), 413)
    assert _datasets_dir_listing(service) == before


def test_upload_without_file_is_400(service: Service):
    assert_error_shape(service.post("/api/upload_dataset"), 400)


def test_unknown_model_is_404(service: Service):
    assert_error_shape(service.get("/api/models/987654"), 404)
    assert_error_shape(service.delete("/api/models/987654"), 404)
    body = {"model_id": 987654, "prompt": "hi", "max_new_tokens": 4}
    assert_error_shape(service.post("/api/playground/generate", json=body), 404)


def test_a_text_generation_model_asked_without_a_prompt_is_400(service: Service, trained_models: list[dict]):
    body = {"model_id": trained_models[0]["model_id"], "question": "Where?", "context": "In Oslo.",
            "max_new_tokens": 4}
    detail = assert_error_shape(service.post("/api/playground/generate", json=body), 400)["detail"]
    assert "`prompt`" in detail and "extractive QA" in detail


@pytest.mark.parametrize(
    "fields", [{"prompt": ""}, {"prompt": "   "}, {"prompt": None}, {"temperature": -1}, {"top_p": 0},
               {"max_new_tokens": 100000}]
)
def test_bad_generate_request_is_400(service: Service, fields: dict):
    body = {"model_id": 1, "prompt": "hi", "max_new_tokens": 4, **fields}
    assert_error_shape(service.post("/api/playground/generate", json=body), 400)


def test_status_of_unknown_job_is_404(service: Service):
    assert_error_shape(service.get("/api/training_status", params={"job_id": "train_000000"}), 404)


def test_a_ten_megabyte_line_is_413_and_a_long_garbage_line_is_400_without_echo(service: Service, tmp_path: Path):
    """The session allows 2 MB uploads: a 10 MB line is refused while it streams in."""
    before = _datasets_dir_listing(service)
    huge = tmp_path / "huge-line.jsonl"
    huge.write_text(json.dumps({"input": "q" * 10 * 1024 * 1024, "output": "a"}) + "\n")
    assert_error_shape(service.upload(huge), 413)
    garbage = tmp_path / "garbage-line.jsonl"
    garbage.write_text("SECRET-" * 200_000 + "\n")  # about 1.4 MB, not JSON
    response = service.upload(garbage)
    assert_error_shape(response, 400)
    # The error names the line and the problem; it does not send the file back.
    assert "SECRET" not in response.text and len(response.content) < 10_000
    assert _datasets_dir_listing(service) == before


def test_a_dataset_path_through_a_symlink_out_of_the_roots_is_400(service: Service, tmp_path: Path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text(SAMPLE_DATASET.read_text())
    link = Path(service.home) / "dataset-root" / "escape.jsonl"
    link.symlink_to(outside)
    try:
        body = assert_error_shape(service.start(dataset=str(link)), 400)
        assert "FORGE_DATASET_ROOTS" in body["detail"] or "outside" in body["detail"]
    finally:
        link.unlink()


def test_a_dataset_for_another_task_is_400_naming_the_formats(service: Service):
    preference = SAMPLE_DATASET.parent / "preference.jsonl"
    uploaded = service.upload(preference, name="wrong_task.jsonl").json()["filename"]
    body = assert_error_shape(service.start(dataset=uploaded, task="summarization"), 400)
    assert "preference rows" in body["detail"] and "pairs" in body["detail"]


def test_no_route_serves_files_beyond_a_datasets_rows(service: Service, tmp_path: Path):
    """GET /api/datasets/{filename} shows a dataset's rows by design (test_datasets_api.py), and
    GET /api/models/{id}/download a model's folder (test_model_files.py); nothing else serves a
    dataset's files or the registry, under any path."""
    secret = "SECRET-ROW-" + "7" * 12
    rows = tmp_path / "secret.jsonl"
    rows.write_text("\n".join(json.dumps({"input": f"{secret} {i}", "output": secret}) for i in range(12)) + "\n")
    name = service.upload(rows).json()["filename"]
    probes = [f"/{name}", f"/datasets/{name}", f"/api/upload_dataset/{name}", f"/api/datasets/{name}/file",
              "/forge.db", "/api/forge.db", "/static/forge.db", f"/api/datasets?filename={name}",
              "/api/datasets/..%2Fforge.db", "/api/datasets/%2E%2E%2Fforge.db", "/api/datasets/forge.db"]
    for path in probes:
        response = service.get(path)
        assert secret not in response.text and b"SQLite format" not in response.content, path
    listing = service.get("/api/datasets")
    assert listing.status_code == 200 and secret not in listing.text
