"""Which combinations train, and the unsloth environment probe (run against real interpreters)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from forge.capabilities import check_supported, supported_combinations
from forge.errors import BadRequest
from forge.schemas import TrainingRequest
from forge.unsloth_env import ProviderStatus, probe_unsloth

AVAILABLE = ProviderStatus(available=True, detail="unsloth 2026.10.9")
MISSING = ProviderStatus(available=False, detail="unsloth does not import: ModuleNotFoundError: No module named 'x'")


def _request(**fields) -> TrainingRequest:
    return TrainingRequest(**{"task": "text-generation", "model_name": "m", "dataset": "d.jsonl", **fields})


def test_unsloth_combinations_are_listed_only_when_available():
    assert not any(c["provider"] == "unsloth" for c in supported_combinations(MISSING))
    listed = {(c["task"], c["strategy"]) for c in supported_combinations(AVAILABLE) if c["provider"] == "unsloth"}
    assert listed == {("text-generation", "sft"), ("text-generation", "qlora"), ("text-generation", "dpo")}


def test_unavailable_unsloth_is_400_quoting_the_import_error():
    with pytest.raises(BadRequest) as caught:
        check_supported(_request(provider="unsloth"), MISSING)
    assert "No module named 'x'" in caught.value.detail


@pytest.mark.parametrize(
    "fields, reason",
    [({"task": "summarization"}, "causal language models"),
     ({"task": "extractive-question-answering"}, "causal language models"),
     ({"strategy": "rlhf"}, "use provider 'huggingface'")],
)
def test_unsloth_refuses_what_it_cannot_train(fields: dict, reason: str):
    with pytest.raises(BadRequest) as caught:
        check_supported(_request(provider="unsloth", **fields), AVAILABLE)
    assert reason in caught.value.detail


@pytest.mark.parametrize("strategy", ["sft", "qlora", "dpo"])
def test_unsloth_accepts_text_generation(strategy: str):
    check_supported(_request(provider="unsloth", strategy=strategy), AVAILABLE)


def test_huggingface_never_needs_unsloth():
    for task, strategy in [("text-generation", "rlhf"), ("summarization", "qlora"),
                           ("extractive-question-answering", "sft")]:
        check_supported(_request(task=task, strategy=strategy), MISSING)


def test_probe_of_a_missing_environment_says_where_it_looked(tmp_path: Path):
    status = asyncio.run(probe_unsloth(tmp_path / "no-venv" / "bin" / "python"))
    assert status.available is False
    assert "no-venv" in status.detail and "does not exist" in status.detail


def test_probe_of_an_interpreter_without_unsloth_quotes_the_error():
    """The core venv's own interpreter has no unsloth: exactly the failure a broken venv shows."""
    status = asyncio.run(probe_unsloth(Path(sys.executable)))
    assert status.available is False
    assert status.detail == "unsloth does not import: ModuleNotFoundError: No module named 'unsloth'"
