"""Faults injected into the running system: a killed Train worker, a killed manager, a killed replica,
a killed job runner while another Ray instance runs on the machine.

Every fault is real: processes die by SIGKILL or `ray.kill`, and the service has
to recover through Ray Train's FailureConfig and checkpoints, the manager actor's
restart, and Serve's replica replacement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from support import (
    BIN,
    SAMPLE_DATASET,
    FeedSubscriber,
    RayNode,
    Service,
    assert_error_shape,
    free_port,
    ray_node_env,
    ray_nodes_dir,
    wait_for_registered_checkpoint,
    wait_until,
)

from forge.schemas import TERMINAL_STATUSES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def dataset(service: Service) -> str:
    response = service.upload(SAMPLE_DATASET, name="faults.jsonl")
    assert response.status_code == 200, response.text
    return response.json()["filename"]


def _alive_actors(service: Service, class_name: str) -> list:
    from ray.util.state import list_actors

    return list_actors(address=service.dashboard_url, limit=1000,
                       filters=[("class_name", "=", class_name), ("state", "=", "ALIVE")])


class StepRecorder:
    """Polls GET /api/training_status in a thread and keeps every current_step it saw (503s skipped)."""

    def __init__(self, service: Service, job_id: str) -> None:
        self.steps: list[int] = []
        self._service, self._job_id = service, job_id
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            response = self._service.get("/api/training_status", params={"job_id": self._job_id})
            if response.status_code == 200:
                self.steps.append(response.json()["current_step"])
                if response.json()["status"] in TERMINAL_STATUSES:
                    return
            time.sleep(0.1)

    def stop(self) -> list[int]:
        self._done.set()
        self._thread.join(30)
        return self.steps


def _event_of_kind(service: Service, job_id: str, kind: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in service.events(job_id) if e["kind"] == kind]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {kind!r} event for {job_id} within {timeout}s: {service.events(job_id)}")


def test_a_killed_worker_then_a_killed_manager_and_the_job_still_completes(service: Service, dataset: str):
    """One job, two faults in turn (one Ray Train start-up serves both).

    1. Its training worker is SIGKILLed after the first checkpoint: Ray Train restarts the
       worker group, which resumes from that checkpoint while the job stays `training`.
    2. Once the restarted group has saved a later checkpoint, the manager actor is killed:
       the manager restarts, the job is `interrupted`, and resuming it finishes it.
    """
    import ray

    response = service.start(dataset=dataset, max_steps=150, save_steps=10, per_device_train_batch_size=4,
                             gradient_accumulation_steps=1, eval_split=0)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]

    try:
        # 1. The worker.
        recorder = StepRecorder(service, job_id)
        wait_for_registered_checkpoint(service, job_id)
        workers = _alive_actors(service, "RayTrainWorker")
        assert len(workers) == 1
        os.kill(workers[0].pid, signal.SIGKILL)
        restart = _event_of_kind(service, job_id, "restart")
        resumed_at = int(restart["message"].split("checkpoint at step ")[1].split()[0].rstrip(","))
        assert resumed_at >= 10 and resumed_at % 10 == 0
        checkpoints = [e["message"] for e in service.events(job_id) if e["kind"] == "checkpoint"]
        assert f"checkpoint saved at step {resumed_at}" in checkpoints

        # 2. The manager, once the restarted group has a checkpoint of its own.
        wait_for_registered_checkpoint(service, job_id, after=resumed_at)
        steps = recorder.stop()
        # What users saw never went backwards, not even while the restarted group redid steps.
        assert steps == sorted(steps) and steps[-1] > resumed_at, steps
        # Two WebSockets listen through the manager's restart: one follows the job, one every job.
        job_feed, every_feed = FeedSubscriber(service, job_id), FeedSubscriber(service)
        job_feed.start()
        every_feed.start()
        wait_until(lambda: job_feed.messages and every_feed.messages, "both sockets got their first status")
        ray.kill(ray.get_actor("training_manager", namespace="modelforge"), no_restart=False)

        # While it restarts, every request is answered: 200, or a 503 in the error format.
        def ask(_: int) -> requests.Response:
            return requests.get(service.url + "/api/training_status", params={"job_id": job_id}, timeout=30)

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(ask, range(40)))
        for answer in answers:
            if answer.status_code != 200:
                assert_error_shape(answer, 503)

        status = service.wait_for(lambda s: s["status"] == "interrupted", job_id, timeout=60)
        # The job's socket saw the restarted manager's view of it, its end, and closed normally.
        job_feed.join(60)
        assert job_feed.error is None and job_feed.close_code == 1000, (job_feed.error, job_feed.close_code)
        assert job_feed.statuses()[-1] == "interrupted" and set(job_feed.statuses()[:-1]) == {"training"}
        assert "checkpoint at step" in status["message"] and f"/api/jobs/{job_id}/resume" in status["message"]
        kept = int(status["message"].split("checkpoint at step ")[1].split()[0].rstrip(":"))
        assert kept > resumed_at
        assert (service.home / "runs" / job_id / f"train-{kept:06d}").is_dir()
        # The job's runner died with the manager, and its Train workers with the runner.
        deadline = time.monotonic() + 30
        while _alive_actors(service, "RayTrainWorker") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _alive_actors(service, "RayTrainWorker") == []
        # The restarted manager reloaded the registry: earlier datasets are still listed.
        assert dataset in [d["filename"] for d in service.get("/api/datasets").json()["datasets"]]

        resumed = service.post(f"/api/jobs/{job_id}/resume")
        assert resumed.status_code == 200, resumed.text
        # Dying with the manager, the old run's workers may have saved one more checkpoint after the
        # restarted manager named the latest (seen under load: it named step 40, the workers saved 50
        # before they died). Resuming continues from the latest there is, and says which.
        assert resumed.json()["job_id"] == job_id
        assert int(resumed.json()["message"].split("checkpoint at step ")[1].split()[0]) >= kept
        again = service.post(f"/api/jobs/{job_id}/resume")
        assert_error_shape(again, 409)

        recorder = StepRecorder(service, job_id)
        final = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id, timeout=300)
        steps = recorder.stop()
        # The other socket never stopped: it went on through the restart, the interruption and the resumed run.
        wait_until(lambda: every_feed.ended() and every_feed.messages[-1]["status"] == "completed",
                   "the unfiltered socket received the resumed job's end")
        every_feed.stop()
        assert every_feed.error is None and every_feed.close_code is None
        seen = every_feed.statuses()
        assert seen.index("interrupted") < seen.index("training", seen.index("interrupted")) < len(seen) - 1, seen
        assert final["status"] == "completed", final
        assert final["current_step"] == 150 and final["model_id"] is not None
        assert steps == sorted(steps) and steps[-1] == 150, steps
        events = service.events(job_id)
        kinds = [e["kind"] for e in events]
        # One restart (the worker's); the manager's fault is the interruption and the resume.
        assert kinds.count("restart") == 1, events
        assert kinds.count("interrupted") == 1 and "resume" in kinds and kinds[-1] == "completed"
        # The loss history is the final model's: one entry per step, the steps redone after
        # each checkpoint replacing the lost ones, and the steps the killed manager never heard of
        # (run by its dying workers) filled in from the checkpoint the run resumed from.
        metric_steps = [m["step"] for m in service.metrics(job_id) if "loss" in m]
        assert metric_steps == list(range(1, 151))
        # A completed job's model is registered; its checkpoints are gone.
        assert not (service.home / "runs" / job_id).exists()
        assert service.get(f"/api/models/{final['model_id']}").status_code == 200
    finally:  # a failure above must not leave the job holding the session's only slot
        if service.status(job_id)["status"] not in TERMINAL_STATUSES:
            service.post("/api/stop_training", params={"job_id": job_id})
            service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id, timeout=120)


def test_resume_answers_404_and_409_in_the_error_format(service: Service, trained_models: list[dict]):
    # Any completed job will do: one of the session's shared ones (conftest.py); a refused resume leaves it as it is.
    completed = trained_models[0]
    assert_error_shape(service.post("/api/jobs/train_000000000000/resume"), 404)
    body = assert_error_shape(service.post(f"/api/jobs/{completed['job_id']}/resume"), 409)
    assert "completed" in body["detail"]


def test_a_killed_playground_replica_is_replaced_and_the_next_request_succeeds(service: Service,
                                                                              trained_models: list[dict]):
    # Any trained model will do: the session's shared ones (conftest.py). Killing the replicas
    # leaves them registered; a replacement replica loads them again when asked.
    model_id = trained_models[0]["model_id"]
    body = {"model_id": model_id, "prompt": "What is 3 plus 4?", "max_new_tokens": 8, "temperature": 0}
    first = service.post("/api/playground/generate", json=body)
    assert first.status_code == 200, first.text

    replicas = [a for a in _alive_actors(service, "ServeReplica:modelforge:Playground")]
    assert replicas
    for replica in replicas:
        os.kill(replica.pid, signal.SIGKILL)

    second = service.post("/api/playground/generate", json=body)
    assert second.status_code == 200, second.text
    assert second.json()["generated_text"] == first.json()["generated_text"]
    assert {a.pid for a in _alive_actors(service, "ServeReplica:modelforge:Playground")}.isdisjoint(
        {r.pid for r in replicas})


def test_beside_another_ray_instance_a_jobs_dashboard_link_is_found_and_a_killed_run_gives_its_cpus_back(
        service: Service, dataset: str, tmp_path: Path):
    """A second Ray instance (another user's, or one `ray start` made for something else) runs beside ours.

    Where a process finds several instances, Ray's state API refuses to guess which one is
    meant: the service's own lookups (the dashboard link) and Ray Train's (the placement-group
    cleaner that gives a killed run's CPUs back) must name the cluster they run in. A process
    remembers the instances it found first, so the link is also looked up in a fresh process.
    """
    import ray

    from deployments.cluster_api import find_run_task

    gcs = free_port()
    env = ray_node_env()
    with ray_nodes_dir("forge-other-", gcs) as temp_dir:
        other = RayNode(["--head", "--num-cpus=0", "--include-dashboard=false", f"--port={gcs}"], temp_dir, env,
                        tmp_path / "other-ray.log")
        try:
            def other_is_up() -> bool:
                other.assert_running()
                status = subprocess.run([str(BIN / "ray"), "status", f"--address=127.0.0.1:{gcs}"], env=env,
                                        capture_output=True, timeout=60, check=False)
                return status.returncode == 0

            wait_until(other_is_up, "the other Ray instance to start")
            started = service.start(dataset=dataset, max_steps=2000, eval_split=0)
            assert started.status_code == 200, started.text
            job_id = started.json()["job_id"]
            service.wait_for(lambda s: s["status"] == "training" and s["current_step"] > 0, job_id)

            link = service.get(f"/api/jobs/{job_id}/dashboard")
            assert link.status_code == 200, link.text
            body = link.json()
            assert body["found"] is True and body["url"].startswith(service.dashboard_url), body
            lookup = ray.remote(max_calls=1)(find_run_task)
            task = ray.get(lookup.remote(job_id, service.dashboard_url), timeout=120)
            assert task is not None and body["url"].endswith(f"/#/jobs/{task.job_id}/tasks/{task.task_id}")

            # The job's runner crashes: its Train controller dies with it, ungracefully.
            (runner,) = _alive_actors(service, "JobRunner")
            os.kill(runner.pid, signal.SIGKILL)
            assert service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id)["status"] == "interrupted"
            # Ray Train's cleaner removes the run's placement group: its CPU is free for the next job.
            wait_until(lambda: ray.available_resources().get("CPU") == ray.cluster_resources()["CPU"],
                       "the killed run's placement group to give its CPU back", timeout=60)
        finally:
            other.stop()
