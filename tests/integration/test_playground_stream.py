"""POST /api/playground/generate/stream: the playground's answer as server-sent events, over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests
from support import Service, assert_error_shape

pytestmark = pytest.mark.integration

PROMPT = "What is 3 plus 4?"
GREEDY = {"prompt": PROMPT, "max_new_tokens": 24, "temperature": 0}


def events(response: requests.Response) -> Iterator[tuple[str, dict]]:
    """(event name, data) of each server-sent event, as they arrive."""
    name = None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def stream(service: Service, body: dict) -> list[tuple[str, dict]]:
    with requests.post(f"{service.url}/api/playground/generate/stream", json=body, stream=True,
                       timeout=120) as response:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(events(response))


@pytest.fixture(scope="module")
def model_id(trained_models: list[dict]) -> int:
    return trained_models[1]["model_id"]


def test_greedy_chunks_join_to_the_whole_routes_text(service: Service, model_id: int):
    whole = service.post("/api/playground/generate", json={"model_id": model_id, **GREEDY})
    assert whole.status_code == 200, whole.text
    received = stream(service, {"model_id": model_id, **GREEDY})
    names = [name for name, _ in received]
    assert names[-1] == "done" and set(names[:-1]) == {"token"} and len(names) > 2
    done = received[-1][1]
    joined = "".join(data["text"] for name, data in received if name == "token")
    assert joined == done["generated_text"] == whole.json()["generated_text"]
    assert done["tokens_generated"] == whole.json()["tokens_generated"]
    assert done["model_id"] == model_id and done["generation_time_ms"] > 0
    assert done["finish_reason"] in ("stop", "length") and done["prompt_truncated"] is False


def test_a_client_that_leaves_mid_stream_frees_the_replica(service: Service, model_id: int):
    # The untrained base rambles on (greedy, deterministic) until the context is full: a long generation.
    long = {"model_id": model_id, "prompt": PROMPT, "max_new_tokens": 1024, "temperature": 0, "use_base": True}
    started = time.monotonic()
    full = stream(service, long)
    full_s = time.monotonic() - started
    assert full[-1][1]["tokens_generated"] > 200, full[-1]
    expected = service.post("/api/playground/generate", json={"model_id": model_id, **GREEDY}).json()
    with requests.post(f"{service.url}/api/playground/generate/stream", json=long, stream=True,
                       timeout=120) as response:
        assert next(events(response))[0] == "token"
    # The replica's generation was cancelled, not left holding the model: the next answer is
    # as before, and comes sooner than the abandoned generation would have ended.
    asked = time.monotonic()
    again = service.post("/api/playground/generate", json={"model_id": model_id, **GREEDY})
    assert again.status_code == 200 and again.json()["generated_text"] == expected["generated_text"]
    assert time.monotonic() - asked < full_s / 2, (time.monotonic() - asked, full_s)


def _base_greedy(service: Service) -> str:
    """The untrained base's greedy answer to PROMPT, prompted as the playground prompts, with plain transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge.builtin import ensure_builtin
    from forge.modeling.prompts import causal_prompt

    folder = ensure_builtin("forge/tiny-llama", service.home / "builtin")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(causal_prompt("text-generation", PROMPT, tokenizer), return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=GREEDY["max_new_tokens"], pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)


def test_the_base_answers_side_by_side(service: Service, model_id: int):
    base = stream(service, {"model_id": model_id, "use_base": True, **GREEDY})
    assert base[-1][0] == "done"
    text = "".join(d["text"] for n, d in base if n == "token")
    # The adapter switched off: the base's own answer, prompted as the model is.
    assert text == base[-1][1]["generated_text"] == _base_greedy(service)
    # The adapter is back on for the model's own answer.
    whole = service.post("/api/playground/generate", json={"model_id": model_id, **GREEDY}).json()
    assert stream(service, {"model_id": model_id, **GREEDY})[-1][1]["generated_text"] == whole["generated_text"]


def test_refusals_come_before_the_stream(service: Service, model_id: int):
    url = f"{service.url}/api/playground/generate/stream"
    assert_error_shape(requests.post(url, json={"model_id": 99999, **GREEDY}, timeout=60), 404)
    assert_error_shape(requests.post(url, json={"model_id": model_id, "context": "c", "question": "q"},
                                     timeout=60), 400)
    assert_error_shape(requests.post(url, json={"model_id": model_id, **GREEDY, "temperature": 5}, timeout=60), 400)
