"""The catalog: the one table that validation, admission, /api/info, the dataset check and the
recipe choice read; and the unsloth environment probe (run against real interpreters)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from forge import catalog
from forge.catalog import CATALOG, Catalog, Row, check_supported, formats_for, quantizes_base, supported_combinations
from forge.datasets import FORMATS
from forge.errors import BadRequest
from forge.schemas import PROVIDERS, STRATEGIES, TASKS, TrainingRequest
from forge.training.entry import pick_recipe
from forge.training.options import Hardware, resolve_options
from forge.training.recipes import RECIPES
from forge.training.recipes.dpo import train_dpo
from forge.training.recipes.extractive_qa import train_extractive_qa
from forge.training.recipes.rlhf import train_rlhf
from forge.training.recipes.seq2seq import train_seq2seq
from forge.training.recipes.sft import train_causal_sft
from forge.training.spec import JobSpec
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


# ------------------------------------------------------------------ the table


def _spec(request: TrainingRequest, model_source: str, tmp_path: Path) -> JobSpec:
    options, _ = resolve_options(request, Hardware(cpus=2))
    return JobSpec(job_id="train_catalog", request=request, options=options, model_source=model_source,
                   dataset_path=str(tmp_path / "rows.jsonl"), dataset_format="pairs",
                   output_dir=str(tmp_path / "adapter"), builtin_dir=str(tmp_path / "builtin"),
                   runs_dir=str(tmp_path / "runs"), manager_name="unused", namespace="unused")


def _refusal(**fields) -> str:
    with pytest.raises(ValidationError) as caught:
        _request(**fields)
    return str(caught.value)


def test_formats_for_table():
    assert formats_for("text-generation", "sft") == ("pairs", "chat", "text")
    assert formats_for("text-generation", "qlora") == ("pairs", "chat", "text")
    assert formats_for("text-generation", "dpo") == ("preference",)
    assert formats_for("text-generation", "rlhf") == ("preference",)
    assert formats_for("summarization", "sft") == ("pairs",)
    assert formats_for("summarization", "qlora") == ("pairs",)
    assert formats_for("extractive-question-answering", "sft") == ("qa",)
    assert formats_for("extractive-question-answering", "qlora") == ("qa",)
    assert formats_for("summarization", "dpo") == ()
    assert formats_for("extractive-question-answering", "rlhf") == ()
    assert formats_for("no-such-task", "sft") == ()


def test_rows_use_contract_names_and_registered_recipes():
    for row in CATALOG.rows:
        assert row.task in TASKS and row.strategy in STRATEGIES and row.provider in PROVIDERS
        assert row.formats and set(row.formats) <= set(FORMATS)
        assert row.recipe in RECIPES
        assert row.encoder_decoder_recipe is None or row.encoder_decoder_recipe in RECIPES


def test_a_combination_is_listed_once():
    with pytest.raises(ValueError, match="twice"):
        CATALOG.with_row(Row("text-generation", "sft", "huggingface", "causal-sft", ("pairs",)))


def test_qlora_is_the_strategy_on_a_quantized_base():
    assert quantizes_base("qlora")
    assert not any(quantizes_base(strategy) for strategy in ("sft", "dpo", "rlhf"))


@pytest.mark.parametrize(
    "fields, model_source, recipe",
    [({}, "forge/tiny-llama", train_causal_sft),
     ({"strategy": "qlora"}, "forge/tiny-llama", train_causal_sft),
     ({"strategy": "dpo"}, "forge/tiny-llama", train_dpo),
     ({"strategy": "rlhf"}, "forge/tiny-llama", train_rlhf),
     ({"strategy": "dpo", "provider": "unsloth"}, "forge/tiny-llama", train_dpo),
     ({"task": "summarization"}, "forge/tiny-t5", train_seq2seq),
     ({"task": "summarization", "strategy": "qlora"}, "forge/tiny-t5", train_seq2seq),
     ({"task": "summarization"}, "forge/tiny-llama", train_causal_sft),
     ({"task": "extractive-question-answering"}, "forge/tiny-bert", train_extractive_qa)],
)
def test_pick_recipe_reads_the_row(fields: dict, model_source: str, recipe, tmp_path: Path):
    assert pick_recipe(_spec(_request(**fields), model_source, tmp_path)) is recipe


def _summary_from_preferences(ctx):
    raise AssertionError("a recipe the test registers; pick_recipe must only name it")


def _seq2seq_summary_from_preferences(ctx):
    raise AssertionError("a recipe the test registers; pick_recipe must only name it")


# A combination the schema knows but nothing trains today: what adding a row means.
ADDED = Row("summarization", "dpo", "huggingface", "summary-preferences", ("preference",),
            encoder_decoder_recipe="seq2seq-summary-preferences")


@pytest.fixture
def added_row(monkeypatch: pytest.MonkeyPatch) -> Row:
    """The catalog with ADDED, its two recipes registered, for one test."""
    monkeypatch.setattr(catalog, "CATALOG", catalog.CATALOG.with_row(ADDED))
    monkeypatch.setitem(RECIPES, "summary-preferences", _summary_from_preferences)
    monkeypatch.setitem(RECIPES, "seq2seq-summary-preferences", _seq2seq_summary_from_preferences)
    return ADDED


def test_without_the_row_nothing_takes_summarization_with_dpo():
    assert "set task to 'text-generation'" in _refusal(task="summarization", strategy="dpo")
    assert formats_for("summarization", "dpo") == ()
    assert {"task": "summarization", "strategy": "dpo", "provider": "huggingface"} not in (
        supported_combinations(AVAILABLE))


def test_a_row_added_to_the_catalog_is_validated_listed_checked_and_trained(added_row: Row, tmp_path: Path):
    request = _request(task="summarization", strategy="dpo")
    assert (request.task, request.strategy) == ("summarization", "dpo")
    assert {"task": "summarization", "strategy": "dpo", "provider": "huggingface"} in supported_combinations(MISSING)
    check_supported(request, MISSING)
    assert formats_for("summarization", "dpo") == ("preference",)
    assert pick_recipe(_spec(request, "forge/tiny-llama", tmp_path)) is _summary_from_preferences
    assert pick_recipe(_spec(request, "forge/tiny-t5", tmp_path)) is _seq2seq_summary_from_preferences
    # The refusal of a combination still missing names the new one as a way out.
    assert "task to 'text-generation' or 'summarization'" in _refusal(task="extractive-question-answering",
                                                                         strategy="dpo")


def test_a_row_removed_from_the_catalog_is_refused_everywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    request = _request(task="summarization", strategy="qlora")
    spec = _spec(request, "forge/tiny-t5", tmp_path)  # a job admitted before the row went
    monkeypatch.setattr(catalog, "CATALOG", catalog.CATALOG.without("summarization", "qlora", "huggingface"))
    message = _refusal(task="summarization", strategy="qlora")
    assert "strategy 'qlora' trains text-generation / extractive-question-answering models only" in message
    assert "strategy to 'sft'" in message
    assert {"task": "summarization", "strategy": "qlora", "provider": "huggingface"} not in (
        supported_combinations(AVAILABLE))
    assert formats_for("summarization", "qlora") == ()
    with pytest.raises(BadRequest, match="not supported"):
        check_supported(request, AVAILABLE)
    with pytest.raises(ValueError, match="nothing trains task 'summarization' with strategy 'qlora'"):
        pick_recipe(spec)


def test_a_provider_row_removed_sends_that_provider_elsewhere(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(catalog, "CATALOG", catalog.CATALOG.without("text-generation", "dpo", "unsloth"))
    request = _request(provider="unsloth", strategy="dpo")  # huggingface still trains it: the request is valid
    with pytest.raises(BadRequest) as caught:
        check_supported(request, AVAILABLE)
    assert caught.value.detail == ("strategy 'dpo' is not available with provider 'unsloth'; "
                                   "use provider 'huggingface'")
    listed = {(c["task"], c["strategy"]) for c in supported_combinations(AVAILABLE) if c["provider"] == "unsloth"}
    assert listed == {("text-generation", "sft"), ("text-generation", "qlora")}
