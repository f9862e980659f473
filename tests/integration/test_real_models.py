"""A checkpoint in Hub layout, loaded by path, goes through the whole service like a downloaded model.

The model (tests/conftest.py `hub_model_dir`) stands in for a Hub download, which
cannot happen here: a Qwen2-family config in bfloat16, a chat template, no pad
token. SFT on chat rows trains through the REST API; the defaults a real model
needs are chosen for the user and said in the job's events; the playground answers
with the trained model.

DPO on preference pairs trains the same model in-process, in
tests/training/test_real_model_defaults.py, with the checks a REST job here made:
the length chosen and said in a "setting" event, the steps trained, the strategy
(on the model card the manager registers from). What only REST shows, this SFT job
shows: a second REST job would cost ~17 s of Ray Train start-up for no further check.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO, Service

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

DATASETS = REPO / "examples" / "datasets"


def _train(service: Service, hub_model_dir: Path, dataset: str, **fields) -> tuple[dict, list[str]]:
    uploaded = service.upload(DATASETS / f"{dataset}.jsonl", name=f"hub_{dataset}.jsonl")
    assert uploaded.status_code == 200, uploaded.text
    response = service.start(dataset=uploaded.json()["filename"], model_name=str(hub_model_dir), learning_rate=5e-3,
                             per_device_train_batch_size=2, gradient_accumulation_steps=1, **fields)
    assert response.status_code == 200, response.text
    status = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, response.json()["job_id"], timeout=300)
    assert status["status"] == "completed", (status, service.events(response.json()["job_id"]))
    settings = [e["message"] for e in service.events(status["job_id"]) if e["kind"] == "setting"]
    return status, settings


def test_sft_on_chat_rows_chooses_its_defaults_says_so_and_the_playground_answers(service: Service,
                                                                                  hub_model_dir: Path):
    status, settings = _train(service, hub_model_dir, "chat", num_train_epochs=1, eval_split=0.1)
    chosen = [m for m in settings if m.startswith("max_seq_length not set: using ")]
    assert len(chosen) == 1 and "training examples' lengths" in chosen[0], settings
    assert int(chosen[0].split("using ")[1].split()[0]) <= 256
    assert any("no pad token" in m and "<|im_end|>" in m for m in settings), settings

    detail = service.get(f"/api/models/{status['model_id']}").json()
    assert detail["base_model"] == str(hub_model_dir)
    answer = service.post("/api/playground/generate", json={
        "model_id": status["model_id"], "prompt": "What is 2 times 3?", "max_new_tokens": 8, "temperature": 0})
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json()["generated_text"], str) and answer.json()["tokens_generated"] <= 8
