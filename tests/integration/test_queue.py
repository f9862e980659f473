"""FORGE_QUEUE_SIZE over HTTP: starts beyond the slots wait their turn, can be cancelled, and outlive the manager.

A second app in the session's cluster (own manager, own FORGE_HOME) runs one job at a
time and queues two. The running job is cut short by killing that manager, which
restarts as a crashed manager does: the running job is interrupted, the queued one
is still queued, and then starts and trains to the end (one full training here).
"""

from __future__ import annotations

import pytest
from support import SAMPLE_DATASET, Service, assert_error_shape, side_app

from forge.schemas import TERMINAL_STATUSES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def queueing(service: Service, tmp_path_factory: pytest.TempPathFactory):
    # side_app names its manager training_manager_queue.
    environ = {"FORGE_HOME": str(tmp_path_factory.mktemp("queue_home")), "FORGE_QUEUE_SIZE": "2"}
    with side_app(service, "queue", environ, playground_min_replicas=0) as queueing:
        yield queueing


def test_starts_queue_in_order_one_is_cancelled_a_full_queue_is_409_and_the_queue_outlives_the_manager(
        queueing: Service):
    import ray

    service = queueing
    dataset = service.upload(SAMPLE_DATASET, name="queue.jsonl").json()["filename"]
    running = service.start(dataset=dataset, max_steps=500, eval_split=0)
    assert running.status_code == 200 and running.json()["status"] == "started", running.text
    first_id = running.json()["job_id"]

    queued = [service.start(dataset=dataset, max_steps=2, eval_split=0) for _ in range(2)]
    assert [r.status_code for r in queued] == [200, 200], [r.text for r in queued]
    assert [(r.json()["status"], r.json()["queue_position"]) for r in queued] == [("queued", 1), ("queued", 2)]
    next_id, cancelled_id = (r.json()["job_id"] for r in queued)
    assert service.status(cancelled_id)["message"].startswith("Queued: 2 of 2 in line")
    full = assert_error_shape(service.start(dataset=dataset, max_steps=2, eval_split=0), 409)
    assert "queue is full" in full["detail"] and "FORGE_QUEUE_SIZE=2" in full["detail"]
    listed = {j["job_id"] for j in service.client.jobs(status=["queued"])}
    assert listed == {next_id, cancelled_id}
    # Their dataset cannot be deleted from under them.
    in_use = assert_error_shape(service.delete(f"/api/datasets/{dataset}"), 409)
    assert first_id in in_use["detail"] and next_id in in_use["detail"]

    # A queued job is cancelled without ever starting; the one ahead of it moves up.
    stopped = service.post("/api/stop_training", params={"job_id": cancelled_id})
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", stopped.text
    cancelled = service.client.job(cancelled_id)
    assert cancelled["status"] == "stopped" and "never started" in cancelled["message"]
    assert cancelled["started_at"] is None and cancelled["options"] is None
    assert [e["kind"] for e in service.events(cancelled_id)] == ["queued", "stopped"]
    assert service.status(next_id)["message"].startswith("Queued: 1 of 1 in line")

    # The manager dies while a job runs and one waits; the restarted one keeps the queue.
    service.wait_for(lambda s: s["status"] in ("starting", "training"), first_id)
    ray.kill(ray.get_actor("training_manager_queue", namespace="modelforge"), no_restart=False)
    interrupted = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, first_id, timeout=120)
    assert interrupted["status"] == "interrupted", interrupted
    final = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, next_id, timeout=300)
    assert final["status"] == "completed" and final["model_id"] is not None, final
    started = service.client.job(next_id)
    # It started in its turn: after the job ahead of it ended.
    assert started["started_at"] > service.client.job(first_id)["finished_at"]
    assert "queued" in [e["kind"] for e in service.events(next_id)]
    assert list(service.client.jobs(status=["queued"])) == []
