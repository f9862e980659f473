"""The user story of the core slice, end to end over real HTTP and WebSocket.

Upload the sample dataset, train LoRA SFT on forge/tiny-llama through Ray Train,
watch it over REST and /ws/training, find the model in the registry, generate
with it, load the service with pollers and subscribers while a two-worker job
trains and then stop that job, delete a model while it generates. The tests run in
file order and share what earlier steps produced.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests
from support import SAMPLE_DATASET, FeedSubscriber, Service, assert_error_shape
from websockets.sync.client import connect

from forge.schemas import TERMINAL_STATUSES
from forge.settings import MANAGER_NAME

pytestmark = pytest.mark.integration

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
PROMPT = "What is 3 plus 4?"
# The load on the service while a job trains.
POLLERS = 50
SUBSCRIBERS = 5
LOAD_SECONDS = 15


@pytest.fixture(scope="module")
def story() -> dict:
    return {}


class FeedRecorder:
    """Collects /ws/training messages in a thread until `job_id` reaches a terminal status."""

    def __init__(self, service: Service) -> None:
        self.url = service.ws_url + "/ws/training"
        self.messages: list[dict] = []
        self.job_id: str | None = None
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._subscribed.wait(30), "could not subscribe to /ws/training"

    def _run(self) -> None:
        with connect(self.url, open_timeout=30) as socket:
            socket.recv(timeout=30)  # the status at subscription time
            self._subscribed.set()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                message = json.loads(socket.recv(timeout=300))
                self.messages.append(message)
                if self.job_id and message.get("job_id") == self.job_id and message["status"] in TERMINAL_STATUSES:
                    return

    def wait(self, timeout: float = 300) -> list[dict]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the WebSocket never delivered the terminal message"
        return [m for m in self.messages if m.get("job_id") == self.job_id]


def test_health_and_info(service: Service):
    assert service.get("/api/health").json() == {"status": "healthy", "version": "v2"}
    info = service.get("/api/info").json()
    assert info["providers"] == ["huggingface", "unsloth"]
    assert info["strategies"] == ["sft", "qlora", "rlhf", "dpo"]
    assert info["tasks"] == ["text-generation", "summarization", "extractive-question-answering"]
    assert info["version"] == "v2"
    assert {"task": "text-generation", "strategy": "sft", "provider": "huggingface"} in info["supported"]


def test_status_is_idle_before_any_job(service: Service):
    status = service.first_status
    assert status["status"] == "idle"
    assert status["progress"] == 0 and status["current_step"] == 0 and status["loss"] is None


def test_upload_sample_dataset(service: Service, story: dict):
    response = service.upload(SAMPLE_DATASET)
    assert response.status_code == 200, response.text
    body = response.json()
    rows = sum(1 for line in SAMPLE_DATASET.read_text().splitlines() if line.strip())
    assert body["status"] == "uploaded"
    assert body["filename"] == "text_generation.jsonl"
    assert body["num_examples"] == rows >= 50
    assert body["validation"]["valid"] is True and body["validation"]["errors"] == []
    story["dataset"] = body["filename"]

    listed = service.get("/api/datasets").json()["datasets"]
    entry = next(d for d in listed if d["filename"] == "text_generation.jsonl")
    assert entry["num_examples"] == rows
    assert entry["size_mb"] > 0 and ISO_Z.match(entry["uploaded_at"])


def test_train_watch_over_rest_and_websocket(service: Service, story: dict):
    feed = FeedRecorder(service)
    response = service.start(dataset=story["dataset"], num_train_epochs=3, learning_rate=5e-3,
                             per_device_train_batch_size=2, gradient_accumulation_steps=1)
    assert response.status_code == 200, response.text
    started = response.json()
    assert started["status"] == "started" and re.match(r"^train_[0-9a-f]+$", started["job_id"])
    assert started["message"]
    job_id = feed.job_id = story["job_id"] = started["job_id"]

    # A second job while this one runs: 409 in the error format.
    assert_error_shape(service.start(dataset=story["dataset"]), 409)

    polled = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = service.status(job_id)
        polled.append(status)
        if status["status"] in TERMINAL_STATUSES:
            break
        time.sleep(0.25)
    final = polled[-1]
    assert final["status"] == "completed", final
    assert final["progress"] == 100 and final["current_step"] == final["total_steps"] > 0
    assert final["total_epochs"] == 3 and final["current_epoch"] == pytest.approx(3)
    progresses = [s["progress"] for s in polled]
    assert progresses == sorted(progresses), "progress went backwards"
    assert all(0 <= p <= 100 for p in progresses)
    training = [s for s in polled if s["status"] == "training"]
    assert training, "never saw the job in the training state"
    assert any(s["loss"] is not None and s["learning_rate"] is not None for s in training)
    # Once steps flow, the status says when the job should finish; an ended job has no estimate.
    estimates = [s["estimated_finish"] for s in training if s["estimated_finish"]]
    assert estimates and all(ISO_Z.match(e) for e in estimates)
    assert final["estimated_finish"] is None

    messages = feed.wait()
    fields = {"job_id", "status", "progress", "current_epoch", "total_epochs", "current_step", "total_steps",
              "loss", "learning_rate"}
    assert all(fields <= set(m) for m in messages)
    assert messages[-1]["status"] == "completed"
    ws_progress = [m["progress"] for m in messages]
    assert ws_progress == sorted(ws_progress), "WebSocket progress went backwards"
    steps = [m["current_step"] for m in messages]
    assert steps == sorted(steps)
    # Every step reached the feed: the steps seen cover 1..total.
    assert set(range(1, final["total_steps"] + 1)) <= set(steps)
    seen_statuses = [m["status"] for m in messages]
    assert "training" in seen_statuses
    assert seen_statuses.index("training") < seen_statuses.index("completed")


def test_loss_fell_during_training(service: Service, story: dict):
    history = service.metrics(story["job_id"])
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) >= 10
    assert losses[-1] < losses[0]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_history_times_each_step_and_counts_its_tokens(service: Service, story: dict):
    # Enough to compute the job's throughput from the history alone.
    history = [e for e in service.metrics(story["job_id"]) if "loss" in e]
    times = [datetime.fromisoformat(e["logged_at"]) for e in history]
    tokens = [e["num_tokens"] for e in history]
    assert times == sorted(times) and times[0].tzinfo is not None
    assert tokens == sorted(tokens) and tokens[0] > 0 and tokens[-1] > tokens[0]


def test_model_is_registered(service: Service, story: dict):
    status = service.status(story["job_id"])
    model_id = status["model_id"]
    assert isinstance(model_id, int)
    listed = service.get("/api/models").json()["models"]
    summary = next(m for m in listed if m["id"] == model_id)
    assert summary["base_model"] == "forge/tiny-llama"
    assert summary["task"] == "text-generation"
    assert summary["name"] and ISO_Z.match(summary["created_at"])
    assert 0 < summary["size_mb"] < 50

    detail = service.get(f"/api/models/{model_id}").json()
    assert detail["provider"] == "huggingface" and detail["strategy"] == "sft"
    params = detail["training_params"]
    assert params["num_epochs"] == 3 and params["batch_size"] == 2 and params["learning_rate"] == 5e-3
    metrics = detail["metrics"]
    assert math.isfinite(metrics["final_loss"]) and metrics["final_loss"] > 0
    assert math.isfinite(metrics["perplexity"]) and metrics["perplexity"] == pytest.approx(
        math.exp(metrics["eval_loss"]), rel=1e-6)
    model_dir = Path(service.home) / "models" / str(model_id)
    assert (model_dir / "adapter_model.safetensors").is_file()
    assert (model_dir / "adapter_config.json").is_file()
    story["model_id"] = model_id


def test_a_model_is_renamed_and_described_and_names_stay_unique(service: Service, story: dict,
                                                                  trained_models: list[dict]):
    model_id = story["model_id"]
    renamed = service.client.update_model(model_id, name="arithmetic-helper", description="the story's model")
    assert (renamed["id"], renamed["name"], renamed["description"]) == (model_id, "arithmetic-helper",
                                                                        "the story's model")
    listed = next(m for m in service.client.models() if m["id"] == model_id)
    assert listed["name"] == "arithmetic-helper"
    # Another model's name is taken: 409, and nothing changed.
    taken = service.client.model(trained_models[0]["model_id"])["name"]
    clash = assert_error_shape(service.request("PATCH", f"/api/models/{model_id}", json={"name": taken}), 409)
    assert taken in clash["detail"]
    assert service.client.model(model_id)["name"] == "arithmetic-helper"
    # The description alone changes; an empty one clears it.
    assert service.client.update_model(model_id, description="")["description"] is None
    assert_error_shape(service.request("PATCH", f"/api/models/{model_id}", json={}), 400)
    assert_error_shape(service.request("PATCH", "/api/models/987654", json={"name": "x"}), 404)


def test_playground_generates_deterministically_and_the_adapter_matters(service: Service, story: dict):
    body = {"model_id": story["model_id"], "prompt": PROMPT, "max_new_tokens": 16, "temperature": 0}
    first = service.post("/api/playground/generate", json=body)
    assert first.status_code == 200, first.text
    second = service.post("/api/playground/generate", json=body).json()
    first = first.json()
    assert isinstance(first["tokens_generated"], int) and 0 <= first["tokens_generated"] <= 16
    assert first["generation_time_ms"] >= 0
    assert first["generated_text"] == second["generated_text"]
    assert PROMPT not in first["generated_text"], "generated_text must hold only the new text"

    sampled = service.post("/api/playground/generate", json={**body, "temperature": 0.9, "top_p": 0.95})
    assert sampled.status_code == 200

    # A prompt longer than the model's context keeps its end and says so.
    long_prompt = " ".join(["What is 3 plus 4?"] * 400)
    truncated = service.post("/api/playground/generate", json={**body, "prompt": long_prompt})
    assert truncated.status_code == 200, truncated.text
    assert truncated.json()["prompt_truncated"] is True
    assert first["prompt_truncated"] is False

    # The untrained base, prompted the same way, answers differently.
    from forge.playground.responder import load_base_model, respond
    from forge.schemas import GenerateRequest

    base = load_base_model("forge/tiny-llama", Path(service.home) / "builtin", "text-generation")
    base_text = respond(base, GenerateRequest(**body, top_p=1.0))["generated_text"]
    assert base_text != first["generated_text"]


@pytest.mark.slow
def test_a_two_worker_job_under_load_then_stopped_ends_and_frees_its_workers(service: Service, story: dict):
    """One 2-worker job, first loaded, then stopped (one job: each costs ~17 s of Ray Train start-up).

    Load: while the job trains on both cores, 50 clients poll its status and 5 WebSocket
    subscribers follow it for 15 s: no errors. Stop: the job ends `stopped` within the
    timeouts, short of its steps and without a model, its runner and both workers are
    freed, and every subscriber receives the terminal "stopped" message.
    """
    from ray.util.state import list_actors

    def train_actors() -> list:
        alive = list_actors(address=service.dashboard_url, filters=[("state", "!=", "DEAD")], limit=1000)
        return [a for a in alive if "RayTrainWorker" in a.class_name or a.class_name == "JobRunner"]

    # The story's first job has ended: the manager keeps one runner started for the next job.
    spares = [a.actor_id for a in train_actors() if a.name.startswith(f"{MANAGER_NAME}-runner-")]
    assert len(spares) == 1
    response = service.start(dataset=story["dataset"], num_workers=2, num_train_epochs=500, eval_split=0)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    subscribers = [FeedSubscriber(service, job_id) for _ in range(SUBSCRIBERS)]
    for subscriber in subscribers:
        subscriber.start()
    service.wait_for(lambda s: s["status"] == "training" and s["current_step"] > 0, job_id)
    # This job took the spare; the next spare is started only once a job ends.
    running = train_actors()
    assert [a.actor_id for a in running if a.name.startswith(f"{MANAGER_NAME}-runner-")] == spares
    # The job's actors, all to be freed by the stop: its runner and both of its Train workers.
    job_actors = {a.actor_id for a in running}
    assert sum("RayTrainWorker" in a.class_name for a in running) == 2

    errors: list[str] = []
    answered = [0] * POLLERS
    load_ends = time.monotonic() + LOAD_SECONDS

    def poll(index: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < load_ends:
                try:
                    answer = session.get(service.url + "/api/training_status", params={"job_id": job_id}, timeout=30)
                    if answer.status_code != 200 or answer.json()["job_id"] != job_id:
                        errors.append(f"{answer.status_code}: {answer.text[:200]}")
                    answered[index] += 1
                except requests.RequestException as error:
                    errors.append(repr(error))

    pollers = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(POLLERS)]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join(LOAD_SECONDS + 60)
    status = service.status(job_id)
    assert status["status"] == "training", "the job must still be training when the load ends"

    # Stopped by its id; without one the newest running job is stopped (tests/jobs/test_tracker.py).
    asked = time.monotonic()
    stopped = service.post("/api/stop_training", params={"job_id": job_id})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "stopped"
    status = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id, timeout=30)
    assert status["status"] == "stopped"
    assert time.monotonic() - asked < 25
    assert status["current_step"] < status["total_steps"]
    assert status["model_id"] is None

    assert errors == []
    assert all(count > 0 for count in answered) and sum(answered) >= POLLERS
    for subscriber in subscribers:
        subscriber.join(120)
        assert subscriber.error is None, repr(subscriber.error)
        assert subscriber.messages and subscriber.messages[-1]["status"] == "stopped"
        assert subscriber.close_code == 1000  # the service closes a job's feed after its end
        steps = [m["current_step"] for m in subscriber.messages]
        assert steps == sorted(steps) and steps[-1] > 0

    def still_alive() -> list:
        return [a for a in train_actors() if a.actor_id in job_actors or a.class_name != "JobRunner"]

    deadline = time.monotonic() + 30
    while still_alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert still_alive() == []
    # What may remain is at most the spare runner for this manager's next job.
    assert len([a for a in train_actors() if a.name.startswith(f"{MANAGER_NAME}-runner-")]) <= 1

    events = service.events(job_id)
    assert [e["kind"] for e in events if e["kind"] in ("stop", "stopped")][:2] == ["stop", "stopped"]
    # Nothing runs now, so a second stop is a conflict.
    assert_error_shape(service.post("/api/stop_training"), 409)


def test_after_the_stop_a_data_parallel_job_on_two_workers_learns_like_one_worker(service: Service, story: dict):
    """Right after the stop, new jobs start: 2 workers x batch 2, then 1 worker x batch 4.

    The same global batches, so about the same loss. The second model is the one the
    story deletes while it generates (test_delete_model_while_it_generates).
    """
    common = {"dataset": story["dataset"], "max_steps": 12, "eval_split": 0.1, "learning_rate": 5e-3}
    results = {}
    for workers, batch in ((2, 2), (1, 4)):
        response = service.start(**common, num_workers=workers, per_device_train_batch_size=batch)
        assert response.status_code == 200, response.text
        status = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, response.json()["job_id"])
        assert status["status"] == "completed" and status["current_step"] == 12, status
        results[workers] = service.get(f"/api/models/{status['model_id']}").json()
    story["second_model_id"] = results[1]["id"]
    assert results[2]["training_params"]["num_workers"] == 2
    two, one = results[2]["metrics"], results[1]["metrics"]
    assert math.isfinite(two["final_loss"]) and math.isfinite(two["eval_loss"])
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=0.1)
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=0.1)
    assert math.isfinite(one["perplexity"])


def test_a_model_trained_without_an_eval_split_has_no_perplexity(service: Service, trained_models: list[dict]):
    # The session's shared models (conftest.py) trained with eval_split=0.
    detail = service.get(f"/api/models/{trained_models[0]['model_id']}").json()
    assert detail["metrics"]["perplexity"] is None
    assert detail["metrics"]["eval_loss"] is None


def test_more_workers_than_the_cluster_holds_is_400(service: Service, story: dict):
    body = assert_error_shape(service.start(dataset=story["dataset"], num_workers=8), 400)
    assert "num_workers" in body["detail"]


def test_a_failing_job_ends_failed_with_a_clear_message(service: Service, tmp_path: Path):
    """A dataset by path inside FORGE_DATASET_ROOTS, and a local model folder whose weights are missing."""
    dataset = Path(service.home) / "dataset-root" / "by_path.jsonl"
    shutil.copy(SAMPLE_DATASET, dataset)
    broken_model = tmp_path / "broken-model"
    broken_model.mkdir()
    (broken_model / "config.json").write_text(json.dumps({"model_type": "llama"}))

    response = service.start(dataset=str(dataset), model_name=str(broken_model), max_steps=2)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    status = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id)
    assert status["status"] == "failed"
    assert status["message"].startswith("Training failed: ")
    assert "Traceback" not in status["message"] and "\n" not in status["message"]
    # The message points to the worker's output, which holds the traceback with the exception.
    assert status["message"].endswith(f"(the workers' output: GET /api/jobs/{job_id}/logs)")
    logs = service.client.logs(job_id, tail=5000)
    assert logs["ranks"] == [0] and "Traceback (most recent call last):" in logs["lines"]
    error = status["message"].removeprefix("Training failed: ").split(" (the workers' output")[0]
    assert any(error in line for line in logs["lines"][logs["lines"].index("Traceback (most recent call last):"):]), (
        error, logs["lines"][-5:])
    assert status["model_id"] is None
    events = service.events(job_id)
    assert events[-1]["kind"] == "failed"
    # An error in the training code is not retried: worker restarts are for lost processes.
    assert "restart" not in [e["kind"] for e in events]
    # The manager is free for the next job.
    assert service.get("/api/training_status").json()["status"] == "failed"


def test_delete_model_while_it_generates(service: Service, story: dict):
    """Deleting the story's second model while 6 generates for it are in flight.

    Each generate answers 200 or a 404 in the error format, never a 500; afterwards
    the model, its folder and its listing are gone, every request for it is 404, and
    the first model is untouched.
    """
    model_id = story["second_model_id"]
    model_dir = Path(service.home) / "models" / str(model_id)
    assert model_dir.is_dir()
    body = {"model_id": model_id, "prompt": PROMPT, "max_new_tokens": 8, "temperature": 0}
    with ThreadPoolExecutor(max_workers=6) as pool:
        generating = [pool.submit(service.post, "/api/playground/generate", json=body) for _ in range(6)]
        deleted = pool.submit(service.delete, f"/api/models/{model_id}")
        codes = [future.result().status_code for future in generating]
    response = deleted.result()
    assert response.status_code == 200
    assert response.json()["status"] == "deleted"
    assert set(codes) <= {200, 404}, codes
    for answer in (future.result() for future in generating):
        if answer.status_code == 404:
            assert_error_shape(answer, 404)

    assert not model_dir.exists()
    assert_error_shape(service.get(f"/api/models/{model_id}"), 404)
    assert_error_shape(service.delete(f"/api/models/{model_id}"), 404)
    assert_error_shape(service.post("/api/playground/generate", json=body), 404)
    assert model_id not in [m["id"] for m in service.get("/api/models").json()["models"]]
    # The first model is untouched.
    assert service.get(f"/api/models/{story['model_id']}").status_code == 200
