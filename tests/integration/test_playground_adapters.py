"""Two trained models of one base, served side by side, each answer exactly as they do alone.

A Playground replica keeps one base model per base source and loads each trained
model onto it as a LoRA adapter; switching between them must never mix them up,
also not when requests for both arrive at once.

The models are the session's `trained_models` (conftest.py). test_faults.py kills the
Playground replicas, before or after this module; Serve replaces them, and a replica
loads a model when the first request for it arrives, so each test here asks for what
it checks first.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import Service

pytestmark = pytest.mark.integration

PROMPT = "What is 3 plus 4?"


def _generate(service: Service, model_id: int) -> str:
    body = {"model_id": model_id, "prompt": PROMPT, "max_new_tokens": 12, "temperature": 0}
    response = service.post("/api/playground/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["generated_text"]


def test_two_adapters_of_one_base_answer_as_each_does_alone(service: Service, trained_models: list[dict]):
    from forge.playground.responder import load_trained_model, respond
    from forge.schemas import GenerateRequest

    first, second = (final["model_id"] for final in trained_models)

    # Each model alone: its base and adapter loaded on their own, in this process.
    def request(model_id: int) -> GenerateRequest:
        return GenerateRequest(model_id=model_id, prompt=PROMPT, max_new_tokens=12, temperature=0, top_p=1.0)

    alone = {model_id: respond(load_trained_model(Path(service.home) / "models" / str(model_id),
                                                  Path(service.home) / "builtin"), request(model_id))["generated_text"]
             for model_id in (first, second)}
    assert len(set(alone.values())) == 2, "the two trained models should answer differently"

    for model_id in (first, second, first, second):
        assert _generate(service, model_id) == alone[model_id]

    # Both at once, interleaved: a switch of the active adapter must never leak into another request.
    order = [first, second] * 5
    with ThreadPoolExecutor(max_workers=len(order)) as pool:
        answers = list(pool.map(lambda model_id: _generate(service, model_id), order))
    assert answers == [alone[model_id] for model_id in order]


def test_the_replica_holding_both_models_carries_them_on_one_base(service: Service, trained_models: list[dict]):
    from ray import serve

    first, second = (final["model_id"] for final in trained_models)
    for model_id in (first, second):
        _generate(service, model_id)
    # Serve routes a model id to a replica that holds it: ask the replica holding the first model.
    playground = serve.get_deployment_handle("Playground", app_name="modelforge")
    held = playground.options(multiplexed_model_id=str(first)).loaded_models.remote().result()
    bases_of_first = [base for base, ids in held.items() if str(first) in ids]
    assert bases_of_first == ["forge/tiny-llama"], held
    if str(second) in {model_id for ids in held.values() for model_id in ids}:
        assert str(second) in held["forge/tiny-llama"], held
