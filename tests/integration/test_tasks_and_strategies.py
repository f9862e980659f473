"""Every task trains for real over HTTP, on the built-in offline models.

One test per task, through the whole service: upload the shipped example dataset,
train, wait for completion, then check the task's metrics, that a training signal
moved the right way, and that the trained model answers differently from its
untrained base in the playground. The REST, Ray Train and playground paths differ
by task; the catalog's other rows (strategies of the same task) differ only in
their recipe and train in-process: tests/training/test_recipe_rows.py and
test_rlhf_recipe.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from support import REPO, Service, assert_error_shape

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

DATASETS = REPO / "examples" / "datasets"
FAST = {"learning_rate": 5e-3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1}


@pytest.fixture(scope="module")
def uploaded(service: Service) -> dict[str, str]:
    names = {}
    for name in ("text_generation", "preference", "summarization", "extractive_qa", "chat"):
        response = service.upload(DATASETS / f"{name}.jsonl", name=f"rows_{name}.jsonl")
        assert response.status_code == 200, response.text
        names[name] = response.json()["filename"]
    return names


def train(service: Service, dataset: str, **fields) -> dict:
    """Start a job, wait for it to end, and return the registered model's detail."""
    response = service.start(dataset=dataset, **{**FAST, **fields})
    assert response.status_code == 200, response.text
    status = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, response.json()["job_id"], timeout=300)
    assert status["status"] == "completed", status
    detail = service.get(f"/api/models/{status['model_id']}").json()
    assert detail["task"] == fields["task"] and detail["strategy"] == fields.get("strategy", "sft")
    return detail


def assert_finite(metrics: dict, *names: str) -> None:
    for name in names:
        assert isinstance(metrics.get(name), (int, float)) and math.isfinite(metrics[name]), (name, metrics)


def generate(service: Service, model_id: int, **fields) -> dict:
    body = {"model_id": model_id, "max_new_tokens": 16, "temperature": 0, **fields}
    response = service.post("/api/playground/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def base_answer(service: Service, model_name: str, task: str, kind: str, **request) -> dict:
    """The untrained base model's answer to the same request, computed in this process."""
    from forge.playground.responder import load_base_model, respond
    from forge.schemas import GenerateRequest

    base = load_base_model(model_name, Path(service.home) / "builtin", task, kind)
    # The base answers directly, not through the playground: the model id (required) routes nothing here.
    return respond(base, GenerateRequest(model_id=1, max_new_tokens=16, temperature=0, top_p=1.0, **request))


def test_info_lists_every_trainable_combination(service: Service):
    supported = service.get("/api/info").json()["supported"]
    combos = {(c["task"], c["strategy"], c["provider"]) for c in supported}
    assert {("text-generation", s, "huggingface") for s in ("sft", "qlora", "dpo", "rlhf")} <= combos
    for task in ("summarization", "extractive-question-answering"):
        assert {(task, "sft", "huggingface"), (task, "qlora", "huggingface")} <= combos
        assert (task, "dpo", "huggingface") not in combos


def test_text_generation_qlora(service: Service, uploaded: dict):
    detail = train(service, uploaded["text_generation"], task="text-generation", model_name="forge/tiny-llama",
                   strategy="qlora", num_train_epochs=2)
    metrics = detail["metrics"]
    assert_finite(metrics, "final_loss", "eval_loss", "perplexity", "first_loss")
    assert metrics["final_loss"] < metrics["first_loss"]
    prompt = "What is 2 plus 5?"
    trained = generate(service, detail["id"], prompt=prompt)
    assert trained["generated_text"] != base_answer(service, "forge/tiny-llama", "text-generation", "causal-lm",
                                                    prompt=prompt)["generated_text"]
    import ray

    events = service.events(detail['job_id'])
    # The default float16 4-bit compute dtype needs a GPU: only a CPU-only cluster substitutes it (and says so).
    substituted = any("bnb_4bit_compute_dtype" in e["message"] for e in events)
    assert substituted == (ray.cluster_resources().get("GPU", 0) == 0)





def test_summarization_seq2seq(service: Service, uploaded: dict):
    detail = train(service, uploaded["summarization"], task="summarization", model_name="forge/tiny-t5",
                   num_train_epochs=3)
    metrics = detail["metrics"]
    assert_finite(metrics, "final_loss", "eval_loss", "rouge1", "rouge2", "rougeL")
    assert all(0 <= metrics[k] <= 1 for k in ("rouge1", "rouge2", "rougeL"))
    assert metrics["final_loss"] < metrics["first_loss"]
    document = "The green boat left the south harbour at noon. It carried twelve boxes of apples to the island."
    trained = generate(service, detail["id"], prompt=document)
    base = base_answer(service, "forge/tiny-t5", "summarization", "seq2seq-lm", prompt=document)
    assert trained["generated_text"] != base["generated_text"]



def test_extractive_question_answering(service: Service, uploaded: dict):
    detail = train(service, uploaded["extractive_qa"], task="extractive-question-answering",
                   model_name="forge/tiny-bert", num_train_epochs=2,
                   per_device_train_batch_size=4)
    metrics = detail["metrics"]
    assert_finite(metrics, "final_loss", "exact_match", "f1")
    assert 0 <= metrics["exact_match"] <= 100 and 0 <= metrics["f1"] <= 100
    assert metrics["final_loss"] < metrics["first_loss"]

    context = "Nora keeps four horses on a farm near Bergen. She rides them every morning."
    trained = generate(service, detail["id"], prompt="Where is the farm?", context=context)
    assert trained["generated_text"] in context
    assert 0 < trained["score"] <= 1
    base = base_answer(service, "forge/tiny-bert", "extractive-question-answering", "question-answering",
                       prompt="Where is the farm?", context=context)
    assert (trained["generated_text"], trained["score"]) != (base["generated_text"], base["score"])
    # `question` overrides `prompt`; without `context` the request is a 400.
    asked = generate(service, detail["id"], prompt="ignored", question="Where is the farm?", context=context)
    assert asked["generated_text"] == trained["generated_text"]
    # A context and a question are enough: no prompt needed.
    unprompted = generate(service, detail["id"], question="Where is the farm?", context=context)
    assert (unprompted["generated_text"], unprompted["score"]) == (trained["generated_text"], trained["score"])
    body = {"model_id": detail["id"], "prompt": "Where is the farm?"}
    assert "context" in assert_error_shape(service.post("/api/playground/generate", json=body), 400)["detail"]


def test_upload_normalises_aliases_and_says_so(service: Service):
    response = service.upload(DATASETS / "summarization.jsonl", name="aliases.jsonl")
    body = response.json()
    assert body["validation"]["format"] == "pairs"
    assert body["validation"]["normalized"] == {"document": "input", "summary": "output"}
    assert "document -> input" in body["message"]


@pytest.mark.parametrize(
    "fields, dataset_key, expected",
    [
        ({"task": "summarization", "strategy": "dpo"}, "preference", "text-generation"),
        ({"task": "extractive-question-answering", "strategy": "rlhf"}, "preference", "text-generation"),
        ({"task": "text-generation", "strategy": "dpo"}, "text_generation", "preference"),
        ({"task": "text-generation", "strategy": "rlhf"}, "chat", "preference"),
        ({"task": "extractive-question-answering"}, "summarization", "qa"),
        ({"task": "summarization"}, "extractive_qa", "pairs"),
        ({"task": "text-generation", "strategy": "qlora", "use_4bit": False}, "text_generation", "use_8bit"),
    ],
)
def test_wrong_combination_is_400_naming_the_rule(service: Service, uploaded: dict, fields: dict,
                                                  dataset_key: str, expected: str):
    body = assert_error_shape(
        service.start(dataset=uploaded[dataset_key], **{"model_name": "forge/tiny-llama", **fields}), 400
    )
    assert expected in body["detail"]
