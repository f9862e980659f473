"""A job's files over HTTP: its checkpoints (listed, one registered and generating while the job
still trains), its worker logs, a stop sent at its last step, and deleting the job.

One REST job (each costs about 17 s of Ray Train start-up): every check here is made on it.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from support import Service, assert_error_shape

from forge.client import ForgeClientError
from forge.schemas import TERMINAL_STATUSES

# Long enough for the checks made while it trains (on 2 busy cores, a generate may take seconds).
STEPS = 300
SAVE_EVERY = 20


@pytest.fixture(scope="module")
def long_job(service: Service, shared_dataset: str) -> str:
    response = service.start(dataset=shared_dataset, max_steps=STEPS, save_steps=SAVE_EVERY, eval_split=0,
                             learning_rate=5e-3)
    assert response.status_code == 200, response.text
    return response.json()["job_id"]


def first_checkpoint(service: Service, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kept = service.client.checkpoints(job_id)
        if kept:
            return kept[0]
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint listed within {timeout}s: {service.events(job_id)}")


def test_checkpoints_are_listed_and_one_is_registered_and_generates_while_the_job_trains(
        service: Service, long_job: str):
    checkpoint = first_checkpoint(service, long_job)
    assert checkpoint["step"] % SAVE_EVERY == 0 and checkpoint["stage"] == "train"
    assert checkpoint["registrable"] is True
    assert isinstance(checkpoint["train_loss"], float) and checkpoint["eval_loss"] is None  # eval_split 0
    datetime.fromisoformat(checkpoint["saved_at"])
    step = checkpoint["step"]

    model = service.client.register_checkpoint(long_job, step)
    assert model["name"] == f"tiny-llama-sft-{long_job.removeprefix('train_')}-step{step}"
    assert (model["job_id"], model["task"], model["strategy"], model["base_model"]) == (
        long_job, "text-generation", "sft", "forge/tiny-llama")
    assert model["metrics"] == {"step": step, "train_loss": checkpoint["train_loss"]}
    assert model["training_params"]["max_steps"] == STEPS
    folder = service.home / "models" / str(model["id"])
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "forge.json").is_file()
    assert not (folder / "optimizer.pt").exists()  # a model, not a resumable checkpoint
    answer = service.client.generate(model["id"], "Hello", max_new_tokens=8, temperature=0)
    assert isinstance(answer["generated_text"], str)
    assert service.status(long_job)["status"] == "training", "the job must still train while its checkpoint answers"

    assert_error_shape(service.post(f"/api/jobs/{long_job}/checkpoints/{step}/register"), 409)
    missing = assert_error_shape(service.post(f"/api/jobs/{long_job}/checkpoints/{step + 1}/register"), 404)
    assert f"kept: {step}" in missing["detail"]
    assert_error_shape(service.post("/api/jobs/train_000000000000/checkpoints/20/register"), 404)


def test_a_running_jobs_logs_show_its_worker_and_the_job_cannot_be_deleted(service: Service, long_job: str):
    logs = service.client.logs(long_job, tail=50)
    assert logs["ranks"] == [0] and logs["rank"] == 0
    assert any("===== worker rank 0 started at" in line for line in service.client.logs(long_job, tail=5000)["lines"])
    assert 0 < len(logs["lines"]) <= 50
    assert_error_shape(service.get(f"/api/jobs/{long_job}/logs", params={"rank": 1}), 404)
    body = assert_error_shape(service.delete(f"/api/jobs/{long_job}"), 409)
    assert "stop it" in body["detail"]


def test_a_stop_sent_at_the_last_step_either_stops_the_job_cleanly_or_lets_it_complete(
        service: Service, long_job: str):
    """The race: the job ends `stopped` with no model and the answer says stopped, or it ends `completed`
    with its model registered and whole, and the answer says the stop came too late. Never a mix."""
    deadline = time.monotonic() + 300
    while (status := service.status(long_job))["current_step"] < STEPS - 1:
        assert status["status"] == "training" and time.monotonic() < deadline, status
        time.sleep(0.02)
    answer = service.post("/api/stop_training", params={"job_id": long_job})
    # Either answer comes once the job has ended: the very next status read says how (no polling).
    status = service.status(long_job)
    assert status["status"] in TERMINAL_STATUSES, status
    assert service.get("/api/training_status").json() == status  # the newest job, and none is active
    if status["status"] == "stopped":
        assert answer.status_code == 200 and answer.json()["status"] == "stopped", answer.text
        assert status["model_id"] is None
        names = [service.client.model(m["id"])["name"] for m in service.client.models()]
        assert f"tiny-llama-sft-{long_job.removeprefix('train_')}" not in names
    else:
        assert status["status"] == "completed", status
        body = assert_error_shape(answer, 409)
        assert ("completed before the stop" in body["detail"] or "is not running" in body["detail"])
        model = service.client.model(status["model_id"])
        assert (service.home / "models" / str(model["id"]) / "adapter_model.safetensors").is_file()
        assert service.client.generate(model["id"], "Hello", max_new_tokens=4)["generated_text"] is not None
    # Nothing half-registered is left behind either way.
    assert not list((service.home / "models").glob(f".staging-{long_job}*"))


def test_history_pages_and_a_deleted_job_is_gone_with_its_files_but_not_its_models(service: Service, long_job: str):
    events = service.events(long_job)
    pages, offset = [], 0
    while offset is not None:
        page = service.get(f"/api/jobs/{long_job}/events", params={"offset": offset, "limit": 2}).json()
        assert len(page["events"]) <= 2
        pages += page["events"]
        offset = page["next_offset"]
    assert pages == events and len(events) > 2
    metrics = service.get(f"/api/jobs/{long_job}/metrics", params={"limit": 3}).json()
    assert len(metrics["metrics"]) == 3 and metrics["next_offset"] == 3
    assert_error_shape(service.get(f"/api/jobs/{long_job}/metrics", params={"limit": 100_000}), 400)

    details = [service.client.model(m["id"]) for m in service.client.models()]
    registered = [m for m in details if m["job_id"] == long_job]
    assert registered
    service.client.delete_job(long_job)
    assert_error_shape(service.get("/api/training_status", params={"job_id": long_job}), 404)
    assert service.get("/api/training_status").json()["job_id"] != long_job
    for path in ("", "/events", "/metrics", "/logs", "/checkpoints"):
        assert_error_shape(service.get(f"/api/jobs/{long_job}{path}"), 404)
    assert long_job not in [j["job_id"] for j in service.client.jobs()]
    assert not (service.home / "runs" / long_job).exists()
    assert not (service.home / "logs" / long_job).exists()
    # Its models stay, and answer.
    for model in registered:
        assert service.client.model(model["id"])["job_id"] == long_job
        service.client.generate(model["id"], "Hello", max_new_tokens=4)
    with pytest.raises(ForgeClientError):
        service.client.delete_job(long_job)
