"""A new user's datasets over HTTP: CSV, Parquet and JSON uploads stored as JSONL, text and ShareGPT rows,
a misspelt dataset name, and two uploads of one name at the same moment.

The new row formats train in-process (tests/training/test_recipe_rows.py); the one
REST job here trains on a converted upload, end to end.
"""

from __future__ import annotations

import csv
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import SAMPLE_DATASET, REPO, Service, assert_error_shape

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "examples" / "datasets"
UPLOADS_AT_ONCE = 8


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stored_rows(service: Service, filename: str) -> tuple[dict, list[dict]]:
    """GET /api/datasets/{filename}: the dataset, and all its rows as stored (a page at a time)."""
    first = service.client.dataset(filename, limit=100)
    rows, page = list(first["rows"]), first
    while page["next_offset"] is not None:
        page = service.client.dataset(filename, offset=page["next_offset"], limit=100)
        rows += page["rows"]
    return first, rows


def upload_dir_files(service: Service) -> set[str]:
    """Every file in datasets/ and in the scratch folder uploads pass through."""
    return {p.name for folder in ("datasets", "scratch") if (service.home / folder).is_dir()
            for p in (service.home / folder).iterdir()}


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def csv_upload(service: Service, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample pairs uploaded as formats-faq.csv: the upload's answer."""
    path = write_csv(tmp_path_factory.mktemp("csv") / "formats-faq.csv", jsonl_rows(SAMPLE_DATASET))
    response = service.upload(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_csv_upload_is_stored_as_jsonl_and_the_answer_says_so(service: Service, csv_upload: dict):
    rows = jsonl_rows(SAMPLE_DATASET)
    assert csv_upload["filename"] == "formats-faq.jsonl"
    assert (csv_upload["num_examples"], csv_upload["validation"]["format"]) == (len(rows), "pairs")
    assert csv_upload["message"] == (f"converted formats-faq.csv from CSV to JSONL ({len(rows)} rows); "
                                     "stored as formats-faq.jsonl")
    detail, stored = stored_rows(service, "formats-faq.jsonl")
    assert (detail["format"], detail["num_examples"]) == ("pairs", len(rows))
    assert stored == rows
    assert (service.home / "datasets" / "formats-faq.jsonl").is_file()
    assert "formats-faq.csv" not in upload_dir_files(service)


def test_a_parquet_upload_of_chat_rows(service: Service, tmp_path: Path):
    rows = jsonl_rows(EXAMPLES / "chat.jsonl")
    path = tmp_path / "formats-chat.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=16)
    body = service.client.upload(path)
    assert (body["filename"], body["validation"]["format"], body["num_examples"]) == (
        "formats-chat.jsonl", "chat", len(rows))
    assert body["message"].startswith(f"converted formats-chat.parquet from Parquet to JSONL ({len(rows)} rows)")
    # A list of structs in Parquet: the messages come back as they went in.
    detail, stored = stored_rows(service, body["filename"])
    assert detail["format"] == "chat" and stored == rows


def test_a_json_array_upload_of_preference_rows(service: Service, tmp_path: Path):
    rows = jsonl_rows(EXAMPLES / "preference.jsonl")
    path = tmp_path / "formats-prefs.json"
    path.write_text(json.dumps(rows, indent=2))
    body = service.client.upload(path)
    assert (body["filename"], body["validation"]["format"], body["num_examples"]) == (
        "formats-prefs.jsonl", "preference", len(rows))
    assert "converted formats-prefs.json from JSON to JSONL" in body["message"]
    assert stored_rows(service, body["filename"])[1] == rows


def test_text_rows_are_their_own_format(service: Service):
    body = service.client.upload(EXAMPLES / "text.jsonl", name="formats-stories.jsonl")
    assert (body["validation"]["format"], body["message"]) == ("text", None)
    detail, stored = stored_rows(service, body["filename"])
    assert detail["format"] == "text" and stored == jsonl_rows(EXAMPLES / "text.jsonl")
    # They train text-generation only: a summarization job on them is refused, naming what it needs.
    refused = assert_error_shape(service.start(task="summarization", dataset=body["filename"]), 400)
    assert "holds text rows" in refused["detail"] and "trains on pairs rows" in refused["detail"]


def test_sharegpt_rows_are_chat_rows(service: Service):
    body = service.client.upload(EXAMPLES / "sharegpt.jsonl", name="formats-sharegpt.jsonl")
    assert body["validation"]["format"] == "chat"
    assert body["message"] == ("chat rows: fields normalised (conversations -> messages, "
                               "from human/gpt/system -> role user/assistant/system, value -> content)")
    detail, stored = stored_rows(service, body["filename"])
    assert detail["format"] == "chat" and stored == jsonl_rows(EXAMPLES / "sharegpt.jsonl")


def test_a_sharegpt_row_with_an_unknown_speaker_is_400_at_its_line(service: Service, tmp_path: Path):
    rows = jsonl_rows(EXAMPLES / "sharegpt.jsonl")
    rows[4]["conversations"][0]["from"] = "tool"
    path = tmp_path / "formats-bad-sharegpt.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    body = assert_error_shape(service.upload(path), 400)
    assert body["validation"]["errors"] == [
        {"line": 5, "error": "field 'conversations[0].from' must be 'human', 'gpt' or 'system', got \"tool\""}]


def test_a_rejected_csv_names_its_lines_and_leaves_nothing(service: Service, tmp_path: Path):
    before = upload_dir_files(service)
    rows = jsonl_rows(SAMPLE_DATASET)
    rows[3]["output"] = ""
    path = write_csv(tmp_path / "formats-broken.csv", rows)
    with path.open("a") as out:
        out.write("one cell only\n")
    body = assert_error_shape(service.upload(path), 400)
    # Line 1 is the header: the 4th row is line 5, the appended row the last line.
    assert body["validation"]["errors"] == [
        {"line": 5, "error": "field 'output' is empty"},
        {"line": len(rows) + 2, "error": "expected 2 cells (the header's columns), got 1"}]
    assert upload_dir_files(service) == before
    assert "formats-broken.jsonl" not in [d["filename"] for d in service.client.datasets()]


def test_the_size_limit_counts_the_uploaded_bytes(service: Service, tmp_path: Path):
    """The session runs with FORGE_MAX_UPLOAD_MB=2."""
    before = upload_dir_files(service)
    path = tmp_path / "formats-big.csv"
    path.write_text("input,output\n" + f"{'x' * 1000},{'y' * 1000}\n" * 1600)  # about 3.2 MB
    assert_error_shape(service.upload(path), 413)
    assert upload_dir_files(service) == before


def test_a_misspelt_dataset_suggests_the_closest_upload(service: Service, csv_upload: dict):
    refused = assert_error_shape(service.start(dataset="formats-faq.csv"), 400)
    assert refused["detail"] == "dataset 'formats-faq.csv' does not exist; did you mean 'formats-faq.jsonl'?"
    refused = assert_error_shape(service.start(dataset="formats-fqa.jsonl"), 400)
    assert refused["detail"].endswith("did you mean 'formats-faq.jsonl'?")
    missing = assert_error_shape(service.get("/api/datasets/formats-faq.csv"), 404)
    assert missing["detail"].endswith("did you mean 'formats-faq.jsonl'?")


def test_uploads_of_one_name_at_once_are_all_kept(service: Service):
    # Started together, their registrations overlap in the manager (the unit test in
    # tests/unit/test_dataset_store.py makes them interleave every time).
    rows = jsonl_rows(SAMPLE_DATASET)
    together = threading.Barrier(UPLOADS_AT_ONCE)

    def upload(_: int):
        together.wait()
        return service.upload(SAMPLE_DATASET, name="formats-race.jsonl")

    with ThreadPoolExecutor(max_workers=UPLOADS_AT_ONCE) as pool:
        answers = list(pool.map(upload, range(UPLOADS_AT_ONCE)))
    assert [a.status_code for a in answers] == [200] * UPLOADS_AT_ONCE, [a.text for a in answers]
    names = {a.json()["filename"] for a in answers}
    assert names == {"formats-race.jsonl", *(f"formats-race-{n}.jsonl" for n in range(2, UPLOADS_AT_ONCE + 1))}
    listed = {d["filename"] for d in service.client.datasets()}
    for name in names:
        assert name in listed
        assert stored_rows(service, name)[1] == rows


def test_a_job_trains_on_a_converted_csv_upload(service: Service, csv_upload: dict):
    started = service.start(dataset=csv_upload["filename"], max_steps=3, eval_split=0, learning_rate=5e-3)
    assert started.status_code == 200, started.text
    job_id = started.json()["job_id"]
    final = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id)
    assert final["status"] == "completed", final
    assert service.client.job(job_id)["dataset"] == "formats-faq.jsonl"
    answer = service.client.generate(final["model_id"], "What is 19 plus 13?", max_new_tokens=4, temperature=0)
    assert isinstance(answer["generated_text"], str) and answer["tokens_generated"] <= 4
