"""A job no node can hold says why it waits, fails with that reason after the start timeout, and frees its slot.

A second app in the session's cluster (own manager, own FORGE_HOME) is configured
as cluster.yaml configures an autoscaling GPU cluster (FORGE_TRAIN_DEVICE=gpu), but
this cluster has no GPU and no autoscaler: the job's worker group can never be
placed, as on a cluster whose autoscaler cannot start the node a job needs.
"""

from __future__ import annotations

import pytest
from support import SAMPLE_DATASET, Service, side_app

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 8


@pytest.fixture(scope="module")
def gpu_configured(service: Service, tmp_path_factory: pytest.TempPathFactory):
    environ = {"FORGE_HOME": str(tmp_path_factory.mktemp("gpu_home")), "FORGE_TRAIN_DEVICE": "gpu",
               "FORGE_JOB_START_TIMEOUT_S": str(START_TIMEOUT_S)}
    with side_app(service, "gpu", environ, playground_min_replicas=0) as configured:
        yield configured


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
