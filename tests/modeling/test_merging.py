"""Merging an adapter into its base: a standalone model that computes what base + adapter computed.

Real transformers and PEFT: random (non-zero) LoRA weights on the built-in tiny Llama,
and on a bfloat16 checkpoint in Hub layout (tests/conftest.py `hub_model_dir`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forge.builtin import ensure_builtin
from forge.modeling.merging import MergeSpec, merge_adapter
from forge.modeling.model_card import ModelCard

PROMPT = "### Instruction:\nWhat is 3 plus 4?\n\n### Response:\n"


def _merge(adapter: Path, output: Path, builtin_dir: Path):
    return merge_adapter(MergeSpec(adapter_location=str(adapter), output_location=str(output), adapter_model_id=5,
                                   adapter_model_name="support-bot", builtin_dir=str(builtin_dir)))


def _logits(model, tokenizer):
    import torch

    with torch.inference_mode():
        return model(**tokenizer(PROMPT, return_tensors="pt")).logits.float()


def test_the_merged_model_loads_with_transformers_alone_and_computes_what_base_plus_adapter_did(
        builtin_dir: Path, make_adapter, tmp_path: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tiny = ensure_builtin("forge/tiny-llama", builtin_dir)
    adapter = make_adapter(tmp_path / "adapter", tiny, "forge/tiny-llama", 11, ["q_proj", "v_proj", "down_proj"])
    outcome = _merge(adapter, tmp_path / "merged", builtin_dir)
    merged_dir = tmp_path / "merged"

    assert (outcome.dtype, outcome.quantization_dropped) == ("float32", None)
    files = {p.name for p in merged_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "forge.json"} <= files
    assert not {"adapter_config.json", "adapter_model.safetensors", "pytorch_model.bin"} & files
    card = ModelCard.read(merged_dir)
    assert card.merged is not None
    assert (card.merged.adapter_model_id, card.merged.adapter_model_name) == (5, "support-bot")
    assert (card.task, card.model_kind, card.base_model) == ("text-generation", "causal-lm", "forge/tiny-llama")

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), str(adapter)).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny).eval()
    assert torch.allclose(_logits(merged, tokenizer), _logits(with_adapter, tokenizer), atol=1e-5)
    assert not torch.allclose(_logits(base, tokenizer), _logits(merged, tokenizer), atol=1e-3)  # the adapter counts


def test_a_qlora_adapter_is_merged_onto_the_unquantized_base_in_the_checkpoints_dtype(
        hub_model_dir: Path, builtin_dir: Path, make_adapter, tmp_path: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    qlora = {"strategy": "qlora", "options": {"quantize_4bit": True, "bnb_4bit_compute_dtype": "float32"},
             "request": {"bnb_4bit_quant_type": "nf4"}}
    adapter = make_adapter(tmp_path / "adapter", hub_model_dir, str(hub_model_dir), 12, ["q_proj", "o_proj"],
                           card=qlora)
    outcome = _merge(adapter, tmp_path / "merged", builtin_dir)

    # The checkpoint is bfloat16 (config.json says so): the merged weights stay in it, unquantized.
    assert (outcome.dtype, outcome.quantization_dropped) == ("bfloat16", "4-bit nf4")
    config = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16" and "quantization_config" not in config
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype="auto")
    assert merged.dtype == torch.bfloat16
    assert not any("4bit" in type(module).__name__ for module in merged.modules())
    assert ModelCard.read(tmp_path / "merged").merged.quantization_dropped == "4-bit nf4"

    base = AutoModelForCausalLM.from_pretrained(hub_model_dir, dtype="auto")
    expected = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    for name, tensor in expected.state_dict().items():
        assert torch.equal(merged.state_dict()[name], tensor), name


def test_a_merged_model_is_not_merged_again(builtin_dir: Path, make_adapter, tmp_path: Path):
    tiny = ensure_builtin("forge/tiny-llama", builtin_dir)
    _merge(make_adapter(tmp_path / "adapter", tiny, "forge/tiny-llama", 13, ["q_proj"]), tmp_path / "merged",
           builtin_dir)
    with pytest.raises(ValueError, match="already a merged model"):
        _merge(tmp_path / "merged", tmp_path / "again", builtin_dir)
