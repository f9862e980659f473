"""Finding jobs again over HTTP: GET /api/jobs (newest first, filtered, paged) and GET /api/jobs/{job_id}.

The jobs are the session's shared ones (`trained_models`, conftest.py) and whatever
else the session ran before: the tests look for theirs, never at a fixed count.
"""

from __future__ import annotations

import pytest
from support import TINY_SFT, Service, assert_error_shape

pytestmark = pytest.mark.integration


def test_a_lost_job_is_found_again_a_page_at_a_time(service: Service, trained_models: list[dict]):
    lost = trained_models[0]
    seen: list[dict] = []
    cursor = None
    for _ in range(1000):  # pages of one, until the job turns up or the list ends
        page = service.client.jobs_page(limit=1, cursor=cursor)
        assert len(page["jobs"]) <= 1
        seen += page["jobs"]
        if any(j["job_id"] == lost["job_id"] for j in page["jobs"]) or not (cursor := page["next_cursor"]):
            break
    found = next(j for j in seen if j["job_id"] == lost["job_id"])
    assert found["status"] == "completed" and found["model_id"] == lost["model_id"]
    assert (found["task"], found["strategy"], found["provider"]) == ("text-generation", "sft", "huggingface")
    assert found["model_name"] == "forge/tiny-llama" and found["dataset"] == "trained_models.jsonl"
    assert found["current_step"] == found["total_steps"] == 3 and found["progress"] == 100
    assert found["created_at"] <= found["started_at"] <= found["finished_at"]
    # Newest first: the second shared job, started after it, came before it.
    ids = [j["job_id"] for j in seen]
    assert trained_models[1]["job_id"] in ids[:-1]
    # Paging one at a time lists what one page lists.
    everything = list(service.client.jobs())
    assert [j["job_id"] for j in everything][:len(seen)] == [j["job_id"] for j in seen]
    created = [j["created_at"] for j in everything]
    assert created == sorted(created, reverse=True)


def test_jobs_are_filtered_by_status(service: Service, trained_models: list[dict]):
    completed = list(service.client.jobs(status=["completed"]))
    assert {m["job_id"] for m in trained_models} <= {j["job_id"] for j in completed}
    assert {j["status"] for j in completed} == {"completed"}
    ended = list(service.client.jobs(status=["failed", "stopped"]))
    assert {j["status"] for j in ended} <= {"failed", "stopped"}
    assert not {m["job_id"] for m in trained_models} & {j["job_id"] for j in ended}


def test_a_jobs_detail_has_the_request_as_sent_and_the_options_it_trained_with(service: Service,
                                                                                trained_models: list[dict]):
    job = trained_models[1]
    detail = service.client.job(job["job_id"])
    assert detail["job_id"] == job["job_id"] and detail["status"] == "completed"
    assert detail["model_id"] == job["model_id"]
    assert detail["request"] == {**TINY_SFT, "dataset": "trained_models.jsonl", "max_steps": 3, "eval_split": 0,
                                 "learning_rate": 3e-2}
    # On this CPU-only cluster the default optimizer was substituted; the options and notes say so.
    assert detail["options"]["use_gpu"] is False and detail["options"]["optim"] == "adamw_torch"
    assert any("paged_adamw_32bit needs CUDA" in note for note in detail["notes"])
    assert detail["notes"] == [e["message"] for e in service.events(job["job_id"]) if e["kind"] == "substitution"]


@pytest.mark.parametrize("path, code", [
    ("/api/jobs/train_000000000000", 404),
    ("/api/jobs?cursor=not-a-cursor", 400),
    ("/api/jobs?limit=0", 400),
    ("/api/jobs?limit=101", 400),
    ("/api/jobs?status=finished", 400),
])
def test_unknown_jobs_and_bad_queries_answer_in_the_error_format(service: Service, path: str, code: int):
    assert_error_shape(service.get(path), code)
