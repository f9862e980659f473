"""A checkpoint in Hub layout trains with the defaults a real model needs, in-process.

The model (tests/conftest.py `hub_model_dir`) is built here in place of a download:
a Qwen2-family config saved in bfloat16, a chat template, no pad token. What must
hold on this CPU: it trains in float32, the pad token is set and said, chat rows go
through its chat template, and a null max_seq_length is chosen from the data and said.

DPO on preference pairs trains this model here only; the REST path of a Hub-layout
model is tests/integration/test_real_models.py's SFT job (one job, ~17 s of Ray Train
start-up, is enough for what only REST shows: the path resolved, the events stored,
the model registered and served).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from recording import RecordingLink, make_spec
from safetensors import safe_open

from forge.modeling.model_card import ModelCard
from forge.training.entry import run_training
from forge.training.recipe import RecipeContext
from forge.training.recipes.sft import example_text
from forge.training.trainer_args import LENGTH_PERCENTILE, max_length


def _settings(link: RecordingLink) -> list[str]:
    return [data["message"] for kind, data in link.events if kind == "setting"]


def _chosen_length(messages: list[str]) -> int:
    [said] = [m for m in messages if m.startswith("max_seq_length not set")]
    return int(said.split("using ")[1].split()[0])


def _fits(lengths: list[int], limit: int) -> float:
    return sum(n <= limit for n in lengths) / len(lengths)


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory: pytest.TempPathFactory, builtin_dir: Path, hub_model_dir: Path):
    link = RecordingLink()
    spec = make_spec(tmp_path_factory.mktemp("chat"), builtin_dir, model_name=str(hub_model_dir), dataset="chat",
                     dataset_format="chat", num_train_epochs=2, learning_rate=5e-3, per_device_train_batch_size=2,
                     gradient_accumulation_steps=1)
    return spec, link, run_training(spec, link, is_main=True)


def test_a_bf16_checkpoint_trains_in_float32_on_a_cpu(chat_run):
    spec, _, outcome = chat_run
    assert json.loads((Path(spec.model_source) / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(str(Path(spec.output_dir) / "adapter_model.safetensors"), "pt") as adapter:
        dtypes = {str(adapter.get_tensor(name).dtype) for name in adapter.keys()}
    assert dtypes == {"torch.float32"}
    assert all(math.isfinite(outcome["metrics"][k]) for k in ("first_loss", "final_loss"))
    assert outcome["metrics"]["final_loss"] < outcome["metrics"]["first_loss"]


def test_the_missing_pad_token_is_set_and_said(chat_run):
    _, link, _ = chat_run
    assert any("no pad token" in m and "<|im_end|>" in m for m in _settings(link))


def test_max_seq_length_is_chosen_from_the_chat_rows_as_templated_and_said(chat_run, hub_model_dir: Path):
    from transformers import AutoTokenizer

    from forge.datasets import read_examples
    from forge.modeling.prompts import causal_example

    spec, link, _ = chat_run
    chosen = _chosen_length(_settings(link))
    tokenizer = AutoTokenizer.from_pretrained(hub_model_dir)
    rows = list(read_examples(spec.dataset_path, "chat"))
    texts = [example_text(causal_example("text-generation", r, chat_template=True), tokenizer) for r in rows]
    # The rows went through the model's own chat template.
    assert all(t.startswith(("<|im_start|>user\n", "<|im_start|>system\n")) and t.endswith("<|im_end|>\n")
               and "<|im_start|>assistant\n" in t for t in texts)
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    # Long enough for (about) the percentile of the rows, not more than a multiple of 8 beyond it;
    # far below the model's 256 positions, which a fixed default would have padded towards.
    assert chosen % 8 == 0 and chosen <= 256
    assert _fits(lengths, chosen) >= LENGTH_PERCENTILE - 0.1
    assert _fits(lengths, chosen - 8) < LENGTH_PERCENTILE
    assert chosen < max(lengths) + 8


def test_the_models_positions_cap_the_chosen_length(tmp_path: Path, builtin_dir: Path, hub_model_dir: Path):
    import shutil

    short = tmp_path / "short-context"
    shutil.copytree(hub_model_dir, short)
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 16}))
    link = RecordingLink()
    ctx = RecipeContext(spec=make_spec(tmp_path, builtin_dir, model_name=str(short)), link=link, is_main=True,
                        scratch=tmp_path)
    from transformers import AutoTokenizer

    limit = max_length(ctx, AutoTokenizer.from_pretrained(short), ["a long line of words " * 20] * 3)
    assert limit == 16
    assert "capped by the model's 16 positions" in _settings(link)[0]
    # Asked again (a second stage or trainer), the choice stands and is not said twice.
    assert max_length(ctx, AutoTokenizer.from_pretrained(short), ["short"]) == 16 and len(_settings(link)) == 1


def test_a_length_the_request_sets_is_used_as_it_is(tmp_path: Path, builtin_dir: Path, hub_model_dir: Path):
    link = RecordingLink()
    ctx = RecipeContext(spec=make_spec(tmp_path, builtin_dir, model_name=str(hub_model_dir), max_seq_length=40),
                        link=link, is_main=True, scratch=tmp_path)
    assert max_length(ctx, None, []) == 40 and _settings(link) == []


def test_dpo_on_the_hub_layout_model_chooses_its_length_from_the_pairs(tmp_path: Path, builtin_dir: Path,
                                                                       hub_model_dir: Path):
    link = RecordingLink()
    spec = make_spec(tmp_path, builtin_dir, model_name=str(hub_model_dir), dataset="preference",
                     dataset_format="preference", strategy="dpo", max_steps=4, eval_split=0,
                     per_device_train_batch_size=2, gradient_accumulation_steps=1)
    outcome = run_training(spec, link, is_main=True)
    assert outcome["stopped"] is False and math.isfinite(outcome["metrics"]["final_loss"])
    # The figures the manager registers with the model (GET /api/models/{id}, "metrics").
    assert outcome["metrics"]["train_steps"] == 4
    # Said to the user as a job event of kind "setting" (GET /api/jobs/{id}/events).
    assert any(m.startswith("max_seq_length not set: using ") for m in _settings(link)), _settings(link)
    assert 0 < _chosen_length(_settings(link)) <= 256
    assert (Path(spec.output_dir) / "adapter_model.safetensors").is_file()
    # The card saved with the adapter, which the playground reads to serve it.
    card = ModelCard.read(Path(spec.output_dir))
    assert card.strategy == "dpo" and card.base_model == str(hub_model_dir)
