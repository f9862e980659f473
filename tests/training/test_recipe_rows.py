"""The catalog's rows that need no REST path of their own, trained in-process and answered by the playground's code.

tests/integration/test_tasks_and_strategies.py trains one row per task over HTTP
(text-generation qlora, summarization on an encoder-decoder, extractive QA): the
REST, Ray Train and playground paths differ by task, not by strategy. The other
rows differ only in their recipe, so they train here, without Ray Train's start-up
per job: the shipped example datasets, the built-in offline models, real TRL/PEFT
training, the saved adapter loaded and prompted by `forge.playground.responder`
exactly as a playground replica does. rlhf's row is in test_rlhf_recipe.py.
A recording `JobLink` stands in for the TrainingManager.
"""

from __future__ import annotations

import math
from pathlib import Path

from recording import RecordingLink, make_spec

from forge.modeling.model_card import ModelCard
from forge.playground.responder import load_base_model, load_trained_model, respond
from forge.schemas import GenerateRequest
from forge.training.entry import run_training

FAST = {"learning_rate": 5e-3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1}


def train(tmp_path: Path, builtin_dir: Path, dataset: str, dataset_format: str, **fields) -> tuple[dict, Path]:
    """Train the row in this process; the metrics and the saved model's folder (its card names the row)."""
    spec = make_spec(tmp_path, builtin_dir, dataset=dataset, dataset_format=dataset_format, **{**FAST, **fields})
    outcome = run_training(spec, RecordingLink(), is_main=True)
    assert outcome["stopped"] is False
    folder = Path(spec.output_dir)
    card = ModelCard.read(folder)
    assert (card.task, card.strategy) == (fields["task"], fields.get("strategy", "sft"))
    return outcome["metrics"], folder


def assert_finite(metrics: dict, *names: str) -> None:
    for name in names:
        assert isinstance(metrics.get(name), (int, float)) and math.isfinite(metrics[name]), (name, metrics)


def answers(folder: Path, builtin_dir: Path, **request) -> tuple[dict, dict]:
    """The trained model's answer and its untrained base's answer to the same request."""
    card = ModelCard.read(folder)
    generate = GenerateRequest(model_id=1, max_new_tokens=16, temperature=0, top_p=1.0, **request)
    trained = respond(load_trained_model(folder, builtin_dir), generate)
    base = respond(load_base_model(card.base_model_source, builtin_dir, card.task, card.model_kind), generate)
    return trained, base


def test_text_generation_sft_on_chat_messages(tmp_path: Path, builtin_dir: Path):
    metrics, _ = train(tmp_path, builtin_dir, "chat", "chat", task="text-generation", num_train_epochs=2)
    assert_finite(metrics, "final_loss", "eval_loss", "perplexity")
    assert metrics["final_loss"] < metrics["first_loss"]


def test_text_generation_sft_on_plain_text_rows(tmp_path: Path, builtin_dir: Path):
    # Plain language modelling: TRL reads the rows' "text" field and trains on all of it.
    metrics, folder = train(tmp_path, builtin_dir, "text", "text", task="text-generation", num_train_epochs=2)
    assert_finite(metrics, "final_loss", "eval_loss", "perplexity")
    assert metrics["final_loss"] < metrics["first_loss"]
    trained, base = answers(folder, builtin_dir, prompt="What is the capital of Spain?")
    assert trained["generated_text"] != base["generated_text"]


def test_text_generation_qlora_on_sharegpt_rows(tmp_path: Path, builtin_dir: Path):
    # ShareGPT rows (from human/gpt) are chat rows to the recipe: the worker reads them normalised.
    metrics, folder = train(tmp_path, builtin_dir, "sharegpt", "chat", task="text-generation", strategy="qlora",
                            num_train_epochs=2)
    assert_finite(metrics, "final_loss", "eval_loss", "perplexity")
    assert metrics["final_loss"] < metrics["first_loss"]
    trained, base = answers(folder, builtin_dir, prompt="What is 8 times 4?")
    assert trained["generated_text"] != base["generated_text"]


def test_text_generation_dpo(tmp_path: Path, builtin_dir: Path):
    metrics, folder = train(tmp_path, builtin_dir, "preference", "preference", task="text-generation",
                            strategy="dpo", num_train_epochs=2)
    assert_finite(metrics, "final_loss", "reward_accuracy", "reward_margin", "train_reward_accuracy")
    assert metrics["train_reward_accuracy"] > 0.5
    assert metrics["reward_margin"] > 0
    trained, base = answers(folder, builtin_dir, prompt="What is 4 plus 4?")
    assert trained["generated_text"] != base["generated_text"]


def test_summarization_qlora_on_an_encoder_decoder(tmp_path: Path, builtin_dir: Path):
    metrics, folder = train(tmp_path, builtin_dir, "summarization", "pairs", task="summarization",
                            model_name="forge/tiny-t5", strategy="qlora", num_train_epochs=3)
    assert_finite(metrics, "final_loss", "eval_loss", "rouge1", "rouge2", "rougeL")
    assert all(0 <= metrics[k] <= 1 for k in ("rouge1", "rouge2", "rougeL"))
    assert metrics["final_loss"] < metrics["first_loss"]
    document = "The green boat left the south harbour at noon. It carried twelve boxes of apples to the island."
    trained, base = answers(folder, builtin_dir, prompt=document)
    assert trained["generated_text"] != base["generated_text"]


def test_summarization_with_a_decoder_only_model(tmp_path: Path, builtin_dir: Path):
    metrics, _ = train(tmp_path, builtin_dir, "summarization", "pairs", task="summarization", max_steps=8)
    assert_finite(metrics, "final_loss", "eval_loss", "rouge1", "rougeL")


def test_extractive_question_answering_qlora(tmp_path: Path, builtin_dir: Path):
    metrics, folder = train(tmp_path, builtin_dir, "extractive_qa", "qa", task="extractive-question-answering",
                            model_name="forge/tiny-bert", strategy="qlora", num_train_epochs=2,
                            per_device_train_batch_size=4)
    assert_finite(metrics, "final_loss", "exact_match", "f1")
    assert 0 <= metrics["exact_match"] <= 100 and 0 <= metrics["f1"] <= 100
    assert metrics["final_loss"] < metrics["first_loss"]
    context = "Nora keeps four horses on a farm near Bergen. She rides them every morning."
    trained, base = answers(folder, builtin_dir, prompt="Where is the farm?", context=context)
    assert trained["generated_text"] in context
    assert 0 < trained["score"] <= 1
    assert (trained["generated_text"], trained["score"]) != (base["generated_text"], base["score"])
