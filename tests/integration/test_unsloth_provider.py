"""Provider unsloth, for real: a job runs in the unsloth venv through Ray's runtime_env.

`make test` builds that venv (envs/unsloth.txt). Unsloth picks its CPU backend on
this machine; the adapter it writes is a standard PEFT folder that the playground,
in the core environment, loads. One sft job takes the REST path; the qlora and dpo
rows differ from it only in their recipe and train in-process, in the unsloth venv
(tests/training/test_unsloth_rows.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from support import REPO, Service, assert_error_shape

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

DATASETS = REPO / "examples" / "datasets"
FAST = {"learning_rate": 5e-3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
        "num_train_epochs": 2, "provider": "unsloth"}


@pytest.fixture(scope="module")
def uploaded(service: Service) -> dict[str, str]:
    names = {}
    for name in ("text_generation", "preference"):
        response = service.upload(DATASETS / f"{name}.jsonl", name=f"unsloth_{name}.jsonl")
        assert response.status_code == 200, response.text
        names[name] = response.json()["filename"]
    return names


def _train(service: Service, dataset: str, **fields) -> tuple[dict, dict]:
    """Run a job to the end; the model's detail and the forge.json the worker wrote."""
    response = service.start(dataset=dataset, **{**FAST, **fields})
    assert response.status_code == 200, response.text
    status = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, response.json()["job_id"], timeout=400)
    assert status["status"] == "completed", status
    detail = service.get(f"/api/models/{status['model_id']}").json()
    meta = json.loads((Path(service.home) / "models" / str(detail["id"]) / "forge.json").read_text())
    return detail, meta


def test_info_says_unsloth_is_available(service: Service):
    info = service.get("/api/info").json()
    status = info["provider_status"]["unsloth"]
    assert status["available"] is True, status
    assert "unsloth 2026.10.9" in status["detail"] and "trl 1.15.0" in status["detail"]
    combos = {(c["task"], c["strategy"], c["provider"]) for c in info["supported"]}
    assert {("text-generation", s, "unsloth") for s in ("sft", "qlora", "dpo")} <= combos


def test_an_unsloth_sft_job_trains_in_its_own_environment(service: Service, uploaded: dict):
    detail, meta = _train(service, uploaded["text_generation"], strategy="sft")
    metrics = detail["metrics"]
    assert metrics["final_loss"] < metrics["first_loss"]
    assert math.isfinite(metrics["perplexity"])
    assert detail["provider"] == "unsloth"
    # The worker ran Unsloth's stack, not the core's.
    assert meta["unsloth_imported"] is True
    assert meta["versions"]["unsloth"] == "2026.10.9" and meta["versions"]["trl"] == "1.15.0"
    events = service.events(detail['job_id'])
    assert any("Unsloth's CPU backend" in e["message"] for e in events)

    body = {"model_id": detail["id"], "prompt": "What is 2 plus 3?", "max_new_tokens": 8, "temperature": 0}
    generated = service.post("/api/playground/generate", json=body)
    assert generated.status_code == 200, generated.text
    assert isinstance(generated.json()["generated_text"], str)
    assert 0 <= generated.json()["tokens_generated"] <= 8


def test_core_processes_never_import_unsloth(service: Service, trained_models: list[dict]):
    import ray
    from ray.util.state import list_actors

    def loaded_unsloth(actor) -> bool:
        return ray.get(actor.__ray_call__.remote(lambda self: __import__("sys").modules.get("unsloth") is not None))

    manager = ray.get_actor("training_manager", namespace="modelforge")
    assert loaded_unsloth(manager) is False
    replicas = [a for a in list_actors(address=service.dashboard_url, filters=[("state", "=", "ALIVE")], limit=1000)
                if a.class_name.startswith("ServeReplica:")]
    assert {a.class_name.split(":")[-1] for a in replicas} >= {"ApiIngress", "Playground"}
    for replica in replicas:
        assert loaded_unsloth(ray.get_actor(replica.name, namespace=replica.ray_namespace)) is False

    # A huggingface job's worker never loads unsloth either: any of the session's shared models shows it.
    model_dir = Path(service.home) / "models" / str(trained_models[0]["model_id"])
    meta = json.loads((model_dir / "forge.json").read_text())
    assert meta["request"]["provider"] == "huggingface"
    assert meta["unsloth_imported"] is False
    assert meta["versions"]["trl"] == "1.16.0" and meta["versions"]["unsloth"] is None


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"task": "summarization"}, "causal language models"),
        ({"task": "extractive-question-answering"}, "causal language models"),
        ({"strategy": "rlhf"}, "not available with provider 'unsloth'"),
    ],
)
def test_unsupported_unsloth_combinations_are_400_with_the_reason(service: Service, uploaded: dict,
                                                                 fields: dict, reason: str):
    body = assert_error_shape(service.start(dataset=uploaded["preference"], provider="unsloth", **fields), 400)
    assert reason in body["detail"]


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU: Unsloth's GPU kernels only run there")
def test_unsloth_uses_its_cuda_kernels_on_a_gpu(service: Service):
    """On a GPU cluster the probe reports CUDA and jobs run Unsloth's fused kernels."""
    assert "on CUDA" in service.get("/api/info").json()["provider_status"]["unsloth"]["detail"]
