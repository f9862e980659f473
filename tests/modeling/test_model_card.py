"""The model card (forge.json): what the worker writes is what users and the playground read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from forge.modeling.model_card import ModelCard


def _card(**changes) -> ModelCard:
    fields = {
        "job_id": "train_3f2a", "task": "summarization", "strategy": "qlora", "model_kind": "seq2seq-lm",
        "base_model": "forge/tiny-t5", "base_model_source": "forge/tiny-t5",
        "request": {"task": "summarization", "model_name": "forge/tiny-t5", "lora_r": 8},
        "options": {"optim": "adamw_torch"},
        "metrics": {"final_loss": 1.25, "train_steps": 12, "eval_loss": None, "perplexity": math.inf},
        "versions": {"transformers": "5.24.0", "trl": "1.16.0", "peft": "0.21.2", "unsloth": None},
        "unsloth_imported": False,
    }
    return ModelCard(**{**fields, **changes})


def test_a_card_round_trips_through_its_file(tmp_path: Path):
    card = _card()
    card.write(tmp_path)
    assert ModelCard.read(tmp_path) == card


def test_the_file_is_what_a_user_reads_in_forge_json(tmp_path: Path):
    path = _card().write(tmp_path)
    assert path == tmp_path / "forge.json"
    on_disk = json.loads(path.read_text())
    assert list(on_disk) == ["job_id", "task", "strategy", "model_kind", "base_model", "base_model_source",
                             "request", "options", "metrics", "versions", "unsloth_imported"]
    assert on_disk["task"] == "summarization" and on_disk["base_model"] == "forge/tiny-t5"
    assert on_disk["metrics"] == {"final_loss": 1.25, "train_steps": 12, "eval_loss": None, "perplexity": math.inf}
    # An integer figure stays an integer, and an infinite perplexity is written as json.dumps
    # always wrote it (not turned into null).
    assert '"train_steps": 12,' in path.read_text() and '"perplexity": Infinity' in path.read_text()
    assert path.read_text().startswith('{\n  "job_id": "train_3f2a",')  # indented as before


def test_a_card_written_before_model_kind_and_strategy_existed_loads(tmp_path: Path):
    # The keys of the first version's forge.json: no strategy, model_kind or unsloth_imported.
    (tmp_path / "forge.json").write_text(json.dumps({
        "job_id": "train_1", "task": "text-generation", "base_model": "forge/tiny-llama",
        "base_model_source": "forge/tiny-llama", "request": {"task": "text-generation"}, "options": {},
        "metrics": {"final_loss": 2.0}, "versions": {"transformers": "5.0.0", "trl": "1.0.0", "peft": "0.20.0"},
    }))
    card = ModelCard.read(tmp_path)
    assert (card.model_kind, card.strategy, card.unsloth_imported) == ("causal-lm", "sft", False)
    assert card.task == "text-generation" and card.base_model_source == "forge/tiny-llama"


def test_unknown_keys_are_tolerated(tmp_path: Path):
    # A card from a newer version must still load: the playground needs only a few of its keys.
    (tmp_path / "forge.json").write_text(json.dumps({**_card().model_dump(), "tokenizer_revision": "abc"}))
    assert ModelCard.read(tmp_path) == _card()


def test_a_card_missing_what_loading_needs_is_refused(tmp_path: Path):
    written = _card().model_dump()
    del written["base_model_source"]
    (tmp_path / "forge.json").write_text(json.dumps(written))
    with pytest.raises(ValidationError, match="base_model_source"):
        ModelCard.read(tmp_path)
    with pytest.raises(ValidationError, match="model_kind"):
        _card(model_kind="image-classification")
    with pytest.raises(FileNotFoundError):
        ModelCard.read(tmp_path / "nothing-here")
