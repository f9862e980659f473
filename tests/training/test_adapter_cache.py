"""A playground replica's adapter cache: several trained models on one base model, none mixed up.

Real transformers and PEFT on the built-in tiny Llama; each "trained model" is a
real LoRA adapter folder with random (non-zero) weights, so every one answers
differently. Each must answer through the cache exactly as it does loaded alone
on a base of its own, also when requests for them interleave from several threads.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from forge.adapter_cache import AdapterCache
from forge.builtin import ensure_builtin
from forge.inference import load_trained_model, respond

REQUEST = {"prompt": "What is 3 plus 4?", "max_new_tokens": 12, "temperature": 0, "top_p": 1.0}


@pytest.fixture(scope="module")
def builtin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builtin")


def _adapter(folder: Path, base_dir: Path, base_source: str, seed: int, targets: list[str]) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                           LoraConfig(r=4, target_modules=targets, init_lora_weights=False))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(folder)
    (folder / "forge.json").write_text(json.dumps({"task": "text-generation", "model_kind": "causal-lm",
                                                   "base_model_source": base_source}))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, builtin_dir: Path) -> dict[str, Path]:
    """Four models of forge/tiny-llama (with different LoRA targets) and one of a second base folder."""
    root = tmp_path_factory.mktemp("models")
    tiny = ensure_builtin("forge/tiny-llama", builtin_dir)
    other_base = shutil.copytree(tiny, root / "other-base")
    folders = {str(i): _adapter(root / str(i), tiny, "forge/tiny-llama", i,
                                ["q_proj", "v_proj"] if i % 2 else ["q_proj", "k_proj", "o_proj"]) for i in range(1, 5)}
    folders["5"] = _adapter(root / "5", other_base, str(other_base), 5, ["q_proj", "v_proj"])
    return folders


@pytest.fixture(scope="module")
def alone(models: dict[str, Path], builtin_dir: Path) -> dict[str, str]:
    texts = {key: respond(load_trained_model(folder, builtin_dir), REQUEST)["generated_text"]
             for key, folder in models.items()}
    assert len(set(texts.values())) == len(texts), "the test needs models that answer differently"
    return texts


def test_models_of_one_base_share_it_and_answer_as_they_do_alone(models, alone, builtin_dir: Path):
    cache = AdapterCache(builtin_dir, max_adapters=4, max_bases=2)
    for key in ["1", "2", "1", "3", "2", "5", "1"]:
        assert cache.respond(key, REQUEST, lambda key=key: models[key])["generated_text"] == alone[key], key
    held = cache.loaded()
    assert sorted(held["forge/tiny-llama"]) == ["1", "2", "3"]
    assert held[str(models["5"].parent / "other-base")] == ["5"]


def test_least_recently_used_models_are_evicted_and_come_back_intact(models, alone, builtin_dir: Path):
    cache = AdapterCache(builtin_dir, max_adapters=2, max_bases=1)
    for key in ["1", "2", "3", "1"]:
        assert cache.respond(key, REQUEST, lambda key=key: models[key])["generated_text"] == alone[key], key
    assert sorted(cache.loaded()["forge/tiny-llama"]) == ["1", "3"]
    # A model of another base evicts the first base with all its adapters.
    assert cache.respond("5", REQUEST, lambda: models["5"])["generated_text"] == alone["5"]
    assert list(cache.loaded().values()) == [["5"]]
    assert cache.respond("2", REQUEST, lambda: models["2"])["generated_text"] == alone["2"]


def test_concurrent_requests_for_models_of_one_base_are_not_mixed(models, alone, builtin_dir: Path):
    cache = AdapterCache(builtin_dir, max_adapters=3, max_bases=2)
    answers: list[tuple[str, str]] = []

    def client(key: str) -> None:
        for _ in range(4):
            answers.append((key, cache.respond(key, REQUEST, lambda: models[key])["generated_text"]))

    threads = [threading.Thread(target=client, args=(key,)) for key in ["1", "2", "3", "4", "5", "1", "2"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 28
    assert [(key, text) for key, text in answers if text != alone[key]] == []


def test_a_model_folder_without_a_safetensors_adapter_is_not_loaded(models, builtin_dir: Path, tmp_path: Path):
    folder = shutil.copytree(models["1"], tmp_path / "no-adapter")
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        AdapterCache(builtin_dir).respond("9", REQUEST, lambda: folder)
