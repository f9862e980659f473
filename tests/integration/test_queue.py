"""FORGE_QUEUE_SIZE over HTTP: starts beyond the slots wait their turn, can be cancelled, and outlive the manager.

A second app in the session's cluster (own manager, own FORGE_HOME) runs one job at a
time and queues two. The running job is cut short by killing that manager, which
restarts as a crashed manager does: the running job is interrupted, the queued one
is still queued, and then starts and trains to the end (one full training here).
"""

from __future__ import annotations

import pytest
from support import NO_PLAYGROUND, SAMPLE_DATASET, Service, assert_error_shape, side_app

from forge.manager_handle import ManagerBusy, manager_with
from forge.schemas import TERMINAL_STATUSES
from forge.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


MANAGER = "training_manager_queue"  # side_app names its manager after the app
ENVIRON: dict[str, str] = {}


def settings_with(**changes: str) -> Settings:
    return Settings.from_env({"FORGE_MANAGER_NAME": MANAGER, **ENVIRON, **changes})


@pytest.fixture(scope="module")
def queueing(service: Service, tmp_path_factory: pytest.TempPathFactory):
    ENVIRON.update({"FORGE_HOME": str(tmp_path_factory.mktemp("queue_home")), "FORGE_QUEUE_SIZE": "2"})
    with side_app(service, "queue", ENVIRON, **NO_PLAYGROUND) as queueing:
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
    # A deploy that changes the settings is refused while a job runs (the ingress calls manager_with).
    with pytest.raises(ManagerBusy, match="FORGE_QUEUE_SIZE changed.*wait for them to end"):
        manager_with(settings_with(FORGE_QUEUE_SIZE="3"))
    ray.kill(ray.get_actor(MANAGER, namespace="modelforge"), no_restart=False)
    interrupted = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, first_id, timeout=120)
    assert interrupted["status"] == "interrupted", interrupted
    interrupted_at = service.client.job(first_id)["finished_at"]
    # While the queued job holds the slot, resuming the interrupted one waits in line too; cancelled there.
    service.wait_for(lambda s: s["status"] in ("starting", "training"), next_id)
    resumed = service.post(f"/api/jobs/{first_id}/resume")
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["queue_position"]) == ("queued", 1)
    assert "it continues from" in resumed.json()["message"]
    assert service.post("/api/stop_training", params={"job_id": first_id}).json()["status"] == "stopped"
    cancelled = service.status(first_id)
    assert cancelled["status"] == "stopped" and cancelled["message"].startswith("Cancelled while queued")
    final = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, next_id, timeout=300)
    assert final["status"] == "completed" and final["model_id"] is not None, final
    started = service.client.job(next_id)
    # It started in its turn: after the job ahead of it ended.
    assert started["started_at"] > interrupted_at
    assert "queued" in [e["kind"] for e in service.events(next_id)]
    assert list(service.client.jobs(status=["queued"])) == []


def test_a_redeploy_with_changed_settings_replaces_the_idle_manager_which_keeps_the_registry(queueing: Service):
    """`serve deploy` of a changed config (here serve.run, as `serve run` does) reaches the detached manager."""
    import ray
    from ray import serve

    from deployments.app import AppArgs, build_app

    jobs_before = [j["job_id"] for j in queueing.client.jobs()]
    assert ray.get(ray.get_actor(MANAGER, namespace="modelforge").current_settings.remote()).queue_size == 2
    changed = settings_with(FORGE_QUEUE_SIZE="3", FORGE_STOP_GRACE_S="7")
    serve.run(build_app(AppArgs(**NO_PLAYGROUND), changed), name="queue", route_prefix="/queue")
    running = ray.get(ray.get_actor(MANAGER, namespace="modelforge").current_settings.remote())
    assert (running.queue_size, running.stop_grace_s) == (3, 7.0)
    assert [j["job_id"] for j in queueing.client.jobs()] == jobs_before
