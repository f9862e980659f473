"""The offline built-in models: real transformers models, deterministic, built once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from forge.builtin import BUILTIN_MODELS, ensure_builtin, is_builtin

NAME = "forge/tiny-llama"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return ensure_builtin(NAME, tmp_path_factory.mktemp("cache"))


def test_is_builtin():
    assert is_builtin(NAME)
    assert NAME in BUILTIN_MODELS
    for other in ["meta-llama/Llama-3.2-1B", "tiny-llama", "forge/tiny-llama2", ""]:
        assert not is_builtin(other)


def test_module_import_stays_light():
    code = "import sys, forge.builtin; print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_unknown_name_raises_key_error(tmp_path):
    with pytest.raises(KeyError):
        ensure_builtin("forge/does-not-exist", tmp_path)
    assert not any(tmp_path.iterdir())


def test_build_is_deterministic(built, tmp_path):
    other = ensure_builtin(NAME, tmp_path)
    assert other != built
    assert (other / "tokenizer.json").read_bytes() == (built / "tokenizer.json").read_bytes()
    a, b = load_file(built / "model.safetensors"), load_file(other / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_loads_and_runs(built):
    tokenizer = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    assert type(model).__name__ == "LlamaForCausalLM"
    n_params = sum(p.numel() for p in model.parameters())
    assert 10_000 < n_params < 1_000_000
    assert 512 <= len(tokenizer) <= 1024
    assert tokenizer.model_max_length == 512
    assert tokenizer.chat_template is None

    for text in ["The curious robot repairs the engine near the harbour.", "Unseen wörds, 42 digits & tabs\tok!"]:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text

    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    assert model.config.bos_token_id == tokenizer.bos_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.vocab_size == len(tokenizer)

    batch = tokenizer(["A dog reads a book.", "The old farmer paints the tall tree at night."],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_second_call_does_not_rebuild(built):
    marker = built / "forge_builtin.json"
    assert json.loads(marker.read_text())["name"] == NAME
    before = marker.stat().st_mtime_ns
    assert ensure_builtin(NAME, built.parent) == built
    assert marker.stat().st_mtime_ns == before


def test_directory_without_marker_is_rebuilt(tmp_path):
    target = ensure_builtin(NAME, tmp_path)
    (target / "forge_builtin.json").unlink()
    (target / "model.safetensors").write_bytes(b"half-written")
    assert ensure_builtin(NAME, tmp_path) == target
    assert (target / "forge_builtin.json").exists()
    assert AutoModelForCausalLM.from_pretrained(target).config.model_type == "llama"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name, f"{target.name}.lock"]
