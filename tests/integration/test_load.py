"""Load on the running service, bounded in count and time, on loopback only.

- 20 simultaneous starts against a service allowing 2 concurrent jobs: exactly two
  accepted (the session's own service allows 1: see test_concurrency.py).
- While a 2-worker job trains on both cores, 50 clients poll the status and 5
  WebSocket subscribers follow the job for 15 s: no errors, and every subscriber
  receives the terminal message.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support import SAMPLE_DATASET, Service, side_app
from websockets.sync.client import connect

from forge.schemas import TERMINAL_STATUSES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLLERS = 50
SUBSCRIBERS = 5
LOAD_SECONDS = 15


@pytest.fixture(scope="module")
def two_job_service(service: Service, tmp_path_factory: pytest.TempPathFactory):
    """A second service in the same cluster, with its own manager, registry and a limit of 2 jobs."""
    environ = {"FORGE_HOME": str(tmp_path_factory.mktemp("two_jobs_home")), "FORGE_MAX_CONCURRENT_JOBS": "2"}
    with side_app(service, "two_jobs", environ, playground_min_replicas=0) as two_jobs:
        yield two_jobs


def test_twenty_simultaneous_starts_accept_exactly_two_with_a_limit_of_two(two_job_service: Service):
    dataset = two_job_service.upload(SAMPLE_DATASET, name="limit2.jsonl").json()["filename"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: two_job_service.start(dataset=dataset, max_steps=2, eval_split=0),
                                  range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 2 + [409] * 18, [r.text for r in responses if r.status_code not in (200, 409)]
    for rejected in (r for r in responses if r.status_code == 409):
        assert "at most 2 job(s)" in rejected.json()["detail"]
    for accepted in (r for r in responses if r.status_code == 200):
        job_id = accepted.json()["job_id"]
        assert two_job_service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id)["status"] == "completed"


class Subscriber(threading.Thread):
    def __init__(self, service: Service, job_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{service.ws_url}/ws/training?job_id={job_id}"
        self.messages: list[dict] = []
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with connect(self.url, open_timeout=30) as socket:
                while True:
                    message = json.loads(socket.recv(timeout=120))
                    self.messages.append(message)
                    if message["status"] in TERMINAL_STATUSES:
                        return
        except Exception as error:  # reported by the test
            self.error = error


def test_fifty_pollers_and_five_websockets_during_a_two_worker_job(service: Service):
    dataset = service.upload(SAMPLE_DATASET, name="load.jsonl").json()["filename"]
    response = service.start(dataset=dataset, num_workers=2, num_train_epochs=500, eval_split=0)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    subscribers = [Subscriber(service, job_id) for _ in range(SUBSCRIBERS)]
    for subscriber in subscribers:
        subscriber.start()
    service.wait_for(lambda s: s["status"] == "training" and s["current_step"] > 0, job_id)

    errors: list[str] = []
    answered = [0] * POLLERS
    deadline = time.monotonic() + LOAD_SECONDS

    def poll(index: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
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
    assert service.post("/api/stop_training", params={"job_id": job_id}).status_code == 200

    assert errors == []
    assert all(count > 0 for count in answered) and sum(answered) >= POLLERS
    for subscriber in subscribers:
        subscriber.join(120)
        assert subscriber.error is None, repr(subscriber.error)
        assert subscriber.messages and subscriber.messages[-1]["status"] == "stopped"
        steps = [m["current_step"] for m in subscriber.messages]
        assert steps == sorted(steps) and steps[-1] > 0
