"""Which hardware jobs train on, on an autoscaling cluster, and how a job that waits for nodes says why.

Without Ray: the cluster's resources are what `ray.cluster_resources()` would
answer; the settings are what cluster.yaml sets (FORGE_TRAIN_DEVICE, FORGE_MAX_TRAIN_GPUS).
"""

from __future__ import annotations

import pytest
from test_admission import PAIRS, request

from forge.errors import BadRequest
from forge.jobs.admission import training_hardware
from forge.jobs.runners import resources_needed, shortfall, waiting_reason
from forge.settings import Settings
from forge.training.options import Hardware

pytestmark = pytest.mark.anyio

# An autoscaling cluster at rest: a CPU-only head, its GPU workers not started yet.
HEAD_ONLY = {"CPU": 0.0, "memory": 1e10}
TWO_GPUS_UP = {"CPU": 8.0, "GPU": 2.0}


def _settings(**fields) -> Settings:
    return Settings(**fields)


def test_auto_trains_on_gpus_only_when_one_is_up():
    assert training_hardware(_settings(), HEAD_ONLY) == Hardware(gpus=0, cpus=0)
    assert training_hardware(_settings(), TWO_GPUS_UP) == Hardware(gpus=2, cpus=8)


def test_a_cluster_configured_for_gpus_trains_on_them_before_any_gpu_node_is_up():
    configured = training_hardware(_settings(train_device="gpu", max_train_gpus=4), HEAD_ONLY)
    assert configured.has_gpu and configured.gpus == 4 and configured.gpus_known
    # Without a limit it still trains on GPUs, and refuses nothing for asking too many.
    unknown = training_hardware(_settings(train_device="gpu"), HEAD_ONLY)
    assert unknown.has_gpu and not unknown.gpus_known


def test_cpu_mode_never_trains_on_the_gpus_that_are_up():
    assert not training_hardware(_settings(train_device="cpu"), TWO_GPUS_UP).has_gpu


def test_the_configured_limit_never_hides_gpus_that_are_up():
    assert training_hardware(_settings(train_device="gpu", max_train_gpus=1), TWO_GPUS_UP).gpus == 2


async def test_more_gpus_than_the_cluster_can_ever_have_is_a_400_naming_the_numbers(admission, upload, settings):
    upload("pairs.jsonl", PAIRS, "pairs")
    admission.settings = settings.model_copy(update={"train_device": "gpu", "max_train_gpus": 4})
    hardware = training_hardware(admission.settings, HEAD_ONLY)
    with pytest.raises(BadRequest, match=r"num_workers=8 needs 8 GPUs \(one per worker\); the cluster can have 4 "
                                         r"\(FORGE_MAX_TRAIN_GPUS\)"):
        await admission.prepare(request(num_workers=8), hardware, running={})
    admitted = await admission.prepare(request(num_workers=4), hardware, running={})
    assert admitted.options.use_gpu and admitted.request.num_workers == 4


async def test_with_no_known_limit_a_gpu_job_is_admitted_and_left_to_the_autoscaler(admission, upload, settings):
    upload("pairs.jsonl", PAIRS, "pairs")
    admission.settings = settings.model_copy(update={"train_device": "gpu"})
    admitted = await admission.prepare(request(num_workers=8), training_hardware(admission.settings, HEAD_ONLY),
                                       running={})
    assert admitted.options.use_gpu


async def test_a_job_waiting_for_gpu_nodes_says_what_it_needs_and_what_is_up(open_job, tracker):
    job = open_job(num_workers=2, hardware=Hardware(gpus=4, cpus=0))
    needed = resources_needed(job.spec)
    assert needed == {"CPU": 2, "GPU": 2}
    assert shortfall(needed, HEAD_ONLY) == {"CPU": 2, "GPU": 2}
    reason = waiting_reason(needed, HEAD_ONLY)
    assert "needs 2 CPU, 2 GPU" in reason and "0 CPU, 0 GPU" in reason and "autoscaler" in reason
    assert shortfall(needed, {"CPU": 8, "GPU": 2}) == {}
    assert "other work holds them" in waiting_reason(needed, {"CPU": 8, "GPU": 2})

    tracker.starting(job)
    tracker.waiting(job, reason)
    status = tracker.status_of(job.record.job_id)
    assert status.status == "starting" and status.message == f"Waiting for the cluster: {reason}"
    assert [(e.kind, e.message) for e in tracker.registry.events(job.record.job_id)][-1] == ("waiting", reason)
