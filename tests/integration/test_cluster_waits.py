"""A job no node can hold says why it waits, fails with that reason after the start timeout, and frees its slot.

A second app in the session's cluster (own manager, own FORGE_HOME) is configured
as cluster.yaml configures an autoscaling GPU cluster (FORGE_TRAIN_DEVICE=gpu), but
this cluster has no GPU and no autoscaler: the job's worker group can never be
placed, as on a cluster whose autoscaler cannot start the node a job needs. A job
stopped while it waits leaves no placement group behind to take that node later.
"""

from __future__ import annotations

import time

import pytest
from support import NO_PLAYGROUND, SAMPLE_DATASET, Service, side_app, wait_until

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 8
# How long a killed run's placement group may outlive the kill.
RELEASE_S = 15


@pytest.fixture(scope="module")
def gpu_configured(service: Service, tmp_path_factory: pytest.TempPathFactory):
    environ = {"FORGE_HOME": str(tmp_path_factory.mktemp("gpu_home")), "FORGE_TRAIN_DEVICE": "gpu",
               "FORGE_JOB_START_TIMEOUT_S": str(START_TIMEOUT_S)}
    with side_app(service, "gpu", environ, **NO_PLAYGROUND) as configured:
        yield configured


@pytest.fixture
def patient(service: Service, tmp_path_factory: pytest.TempPathFactory):
    """Configured alike, but its jobs wait until stopped: their worker groups get as far as their placement groups."""
    environ = {"FORGE_HOME": str(tmp_path_factory.mktemp("patient_home")), "FORGE_TRAIN_DEVICE": "gpu"}
    with side_app(service, "patient", environ, **NO_PLAYGROUND) as configured:
        yield configured


def gpu_groups() -> dict[str, str]:
    """The session's placement groups with a GPU in a bundle, by id: their state (PENDING, REMOVED, ...)."""
    import ray

    return {group_id: group["state"] for group_id, group in ray.util.placement_group_table().items()
            if any("GPU" in bundle for bundle in group["bundles"].values())}


def test_a_job_that_cannot_be_placed_fails_with_the_reason_and_the_next_job_starts(gpu_configured: Service):
    service = gpu_configured
    dataset = service.upload(SAMPLE_DATASET).json()["filename"]
    started = service.start(dataset=dataset, max_steps=2, eval_split=0)
    assert started.status_code == 200, started.text
    job_id = started.json()["job_id"]

    waiting = service.wait_for(lambda s: "Waiting for the cluster" in (s["message"] or "")
                               or s["status"] in TERMINAL_STATUSES, job_id, timeout=120)
    assert waiting["status"] == "starting", waiting
    assert "1 GPU" in waiting["message"] and "0 GPU" in waiting["message"], waiting

    final = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id, timeout=120)
    assert final["status"] == "failed", final
    assert f"did not start within {START_TIMEOUT_S} s" in final["message"] and "GPU" in final["message"]
    kinds = [e["kind"] for e in service.events(job_id)]
    assert "waiting" in kinds and kinds[-1] == "failed"

    # The slot is free again: the next job is accepted and starts (and waits, as this cluster has no GPU).
    following = service.start(dataset=dataset, max_steps=2, eval_split=0)
    assert following.status_code == 200, following.text
    next_id = following.json()["job_id"]
    assert service.status(next_id)["status"] in ("queued", "starting")
    service.post("/api/stop_training", params={"job_id": next_id})
    assert service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, next_id, timeout=120)["status"] == "stopped"


def test_a_job_stopped_while_its_workers_wait_leaves_no_placement_group(patient: Service):
    """The stopped run's pending placement group is removed with it; a pending group of someone else's stays.

    Ray Train hands a worker group's placement group to its cleaner only once the group is
    ready, and Ray keeps a group as long as its creator's job (here the service's) lives.
    """
    from ray.util.placement_group import placement_group, remove_placement_group

    service = patient
    earlier = set(gpu_groups())
    # Pending like the job's, but this test's own: killing a run must not take it.
    bystander = placement_group([{"CPU": 1, "GPU": 1}])
    others = earlier | {bystander.id.hex()}
    try:
        dataset = service.upload(SAMPLE_DATASET).json()["filename"]
        started = service.start(dataset=dataset, max_steps=2, eval_split=0)
        assert started.status_code == 200, started.text
        job_id = started.json()["job_id"]

        def run_groups() -> dict[str, str]:
            return {group_id: state for group_id, state in gpu_groups().items() if group_id not in others}

        wait_until(lambda: "PENDING" in run_groups().values() or service.status(job_id)["status"] != "starting",
                   "the job's worker group asks for its placement group")
        assert service.status(job_id)["status"] == "starting", service.status(job_id)
        service.post("/api/stop_training", params={"job_id": job_id})
        assert service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id, timeout=120)["status"] == "stopped"

        deadline = time.monotonic() + RELEASE_S
        while set((left := run_groups()).values()) != {"REMOVED"} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert set(left.values()) == {"REMOVED"}, f"the stopped job's placement groups {RELEASE_S} s later: {left}"
        assert gpu_groups()[bystander.id.hex()] == "PENDING"
    finally:
        remove_placement_group(bystander)
