"""Concurrent requests for four models of one base are generated in one batch, each answered as alone.

Against the session's service over HTTP: the two `trained_models` and two checkpoints of
one more job, registered as models (one job, about 20 s, gives two models), all LoRA
adapters of forge/tiny-llama. Eight greedy requests, two per model, half through
/api/playground/generate and half streamed through /v1/chat/completions with the
official SDK, sent at once: each answer must be what that model answers alone (plain
transformers + PEFT in this process, one unpadded prompt), and the replica's batch
sizes must show that requests really shared a batch.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from support import Service

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

PROMPTS = ["What is 3 plus 4?", "Tell me about rivers and boats."]
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def four_models(service: Service, shared_dataset: str, trained_models: list[dict]) -> list[dict]:
    """The two trained models and two checkpoints of a job trained at another rate: their details."""
    started = service.start(dataset=shared_dataset, max_steps=400, save_steps=5, save_total_limit=20, eval_split=0,
                            learning_rate=2e-2)
    assert started.status_code == 200, started.text
    job_id = started.json()["job_id"]
    try:
        deadline = time.monotonic() + 180
        while not [c for c in service.client.checkpoints(job_id) if c["step"] >= 10]:
            assert time.monotonic() < deadline, service.events(job_id)
            time.sleep(0.2)
        steps = sorted(c["step"] for c in service.client.checkpoints(job_id))
        checkpoints = [service.client.register_checkpoint(job_id, step) for step in (steps[0], steps[-1])]
    finally:  # the session runs one job at a time: end this one before the next module starts its own
        service.client.stop(job_id)
        service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id)
    return [service.client.model(final["model_id"]) for final in trained_models] + checkpoints


@functools.cache
def loaded_alone(home: Path, model_id: int):
    """The model with plain transformers + PEFT: its base and adapter loaded on their own, in this process."""
    from forge.playground.responder import load_trained_model

    return load_trained_model(home / "models" / str(model_id), home / "builtin")


def alone(service: Service, model_id: int, text: str) -> str:
    """The model's greedy answer alone: one unpadded prompt, plain `generate`."""
    from forge.modeling.generation import generate_texts
    from forge.playground.responder import prompt_text

    loaded = loaded_alone(Path(service.home), model_id)
    prompt = prompt_text(loaded.kind, loaded.task, text, loaded.tokenizer)
    return generate_texts(loaded.model, loaded.tokenizer, [prompt], max_new_tokens=MAX_TOKENS)[0].text


def generate(service: Service, model_id: int, text: str) -> str:
    body = {"model_id": model_id, "prompt": text, "max_new_tokens": MAX_TOKENS, "temperature": 0}
    response = service.post("/api/playground/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["generated_text"]


def streamed_chat(client: openai.OpenAI, name: str, text: str) -> str:
    stream = client.chat.completions.create(model=name, messages=[{"role": "user", "content": text}],
                                            temperature=0, max_tokens=MAX_TOKENS, stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def batch_sizes(model_ids: list[int]) -> dict[int, int]:
    """Batch size -> batches run, over the replicas holding these models (Serve routes by model id)."""
    from ray import serve

    playground = serve.get_deployment_handle("Playground", app_name="modelforge")
    replicas = {}
    for model_id in model_ids:
        held = playground.options(multiplexed_model_id=str(model_id)).batch_sizes.remote().result()
        replicas[held["replica"]] = held["batches"]  # two models on one replica: it counts once
    total: dict[int, int] = {}
    for batches in replicas.values():
        for counts in batches.values():
            for size, count in counts.items():
                total[size] = total.get(size, 0) + count
    return total


def test_eight_concurrent_requests_over_four_adapters_are_batched_and_answer_as_alone(
        service: Service, four_models: list[dict]):
    ids = [model["id"] for model in four_models]
    assert {model["base_model"] for model in four_models} == {"forge/tiny-llama"}
    asked = [(model, PROMPTS[i % 2], "playground" if i < 4 else "v1") for i, model in enumerate(four_models * 2)]
    expected = [alone(service, model["id"], text) for model, text, _ in asked]
    assert len({text for (model, prompt, _), text in zip(asked, expected) if prompt == PROMPTS[0]}) > 1, \
        "the models should not all answer alike"

    for model in four_models:  # each model loaded on its replica first, and answering as alone one by one
        assert generate(service, model["id"], PROMPTS[0]) == alone(service, model["id"], PROMPTS[0])
    before = batch_sizes(ids)

    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0, timeout=120)

    def ask(request: tuple[dict, str, str]) -> str:
        model, text, route = request
        return generate(service, model["id"], text) if route == "playground" else streamed_chat(
            client, model["name"], text)

    with ThreadPoolExecutor(max_workers=len(asked)) as pool:
        answers = list(pool.map(ask, asked))
    assert answers == expected

    after = batch_sizes(ids)
    new = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert sum(size * count for size, count in new.items()) == len(asked), (before, after)
    assert max(size for size, count in new.items() if count) > 1, f"no two requests shared a batch: {new}"
