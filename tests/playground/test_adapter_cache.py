"""A playground replica's adapter cache: several trained models on one base model, none mixed up.

Real transformers and PEFT on the built-in tiny Llama; each "trained model" is a
real LoRA adapter folder with random (non-zero) weights, so every one answers
differently. Each must answer through the cache exactly as it does loaded alone
on a base of its own (plain transformers `generate`), also when requests for them
interleave from several threads (and are batched together: test_batched_generation.py
looks at the batches themselves).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from forge.builtin import ensure_builtin
from forge.modeling.generation import generate_texts
from forge.modeling.model_card import ModelCard
from forge.playground.adapter_cache import AdapterCache
from forge.playground.responder import load_trained_model, prompt_text
from forge.schemas import GenerateRequest


def ask(key: str) -> GenerateRequest:
    """The playground request for the model `key` (the cache's key is the request's model id)."""
    return GenerateRequest(model_id=int(key), prompt="What is 3 plus 4?", max_new_tokens=12, temperature=0, top_p=1.0)


def greedy_alone(loaded, request: GenerateRequest) -> str:
    """What the model answers with plain transformers `generate`, one prompt, no padding, no batch."""
    prompt = prompt_text(loaded.kind, loaded.task, request.prompt, loaded.tokenizer)
    return generate_texts(loaded.model, loaded.tokenizer, [prompt], max_new_tokens=request.max_new_tokens)[0].text


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, builtin_dir: Path, make_adapter) -> dict[str, Path]:
    """Models of forge/tiny-llama: 1-4 with two sets of LoRA targets, 6 as 1 with another lora_alpha,
    7 with a fully trained lm_head; 5 of a second base folder."""
    root = tmp_path_factory.mktemp("models")
    tiny = ensure_builtin("forge/tiny-llama", builtin_dir)
    other_base = shutil.copytree(tiny, root / "other-base")
    folders = {str(i): make_adapter(root / str(i), tiny, "forge/tiny-llama", i,
                                ["q_proj", "v_proj"] if i % 2 else ["q_proj", "k_proj", "o_proj"]) for i in range(1, 5)}
    folders["5"] = make_adapter(root / "5", other_base, str(other_base), 5, ["q_proj", "v_proj"])
    folders["6"] = make_adapter(root / "6", tiny, "forge/tiny-llama", 6, ["q_proj", "v_proj"], lora_alpha=32)
    folders["7"] = make_adapter(root / "7", tiny, "forge/tiny-llama", 7, ["q_proj", "v_proj"],
                                modules_to_save=["lm_head"])
    return folders


@pytest.fixture(scope="module")
def alone(models: dict[str, Path], builtin_dir: Path) -> dict[str, str]:
    texts = {key: greedy_alone(load_trained_model(folder, builtin_dir), ask(key)) for key, folder in models.items()}
    assert len(set(texts.values())) == len(texts), "the test needs models that answer differently"
    return texts


def test_models_of_one_base_share_it_and_answer_as_they_do_alone(models, alone, builtin_dir: Path):
    cache = AdapterCache(builtin_dir, max_adapters=4, max_bases=2)
    for key in ["1", "2", "1", "3", "2", "5", "1"]:
        assert cache.respond(key, ask(key), lambda key=key: models[key])["generated_text"] == alone[key], key
    held = cache.loaded()
    assert sorted(held["forge/tiny-llama"]) == ["1", "2", "3"]
    assert held[str(models["5"].parent / "other-base")] == ["5"]


def test_least_recently_used_models_are_evicted_and_come_back_intact(models, alone, builtin_dir: Path):
    cache = AdapterCache(builtin_dir, max_adapters=2, max_bases=1)
    for key in ["1", "2", "3", "1"]:
        assert cache.respond(key, ask(key), lambda key=key: models[key])["generated_text"] == alone[key], key
    assert sorted(cache.loaded()["forge/tiny-llama"]) == ["1", "3"]
    # A model of another base evicts the first base with all its adapters.
    assert cache.respond("5", ask("5"), lambda: models["5"])["generated_text"] == alone["5"]
    assert list(cache.loaded().values()) == [["5"]]
    assert cache.respond("2", ask("2"), lambda: models["2"])["generated_text"] == alone["2"]


def test_concurrent_requests_for_models_of_one_base_are_not_mixed(models, alone, builtin_dir: Path):
    cache = AdapterCache(builtin_dir, max_adapters=3, max_bases=2)
    answers: list[tuple[str, str]] = []

    def client(key: str) -> None:
        for _ in range(4):
            answers.append((key, cache.respond(key, ask(key), lambda: models[key])["generated_text"]))

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
        AdapterCache(builtin_dir).respond("9", ask("9"), lambda: folder)


def test_each_model_keeps_its_own_scaling_and_a_full_module_model_its_head(models, alone, builtin_dir: Path):
    cache = AdapterCache(builtin_dir, max_adapters=4, max_bases=1)
    for key in ["1", "6", "7", "3", "1", "7", "6"]:
        assert cache.respond(key, ask(key), lambda key=key: models[key])["generated_text"] == alone[key], key
    # Each model is a PEFT adapter of its own on the one base.
    (base,) = cache._bases.values()
    assert sorted(base.peft.peft_config) == ["model_1", "model_3", "model_6", "model_7"]


def test_a_qlora_model_is_served_on_a_4bit_base_as_it_was_trained(models, alone, builtin_dir: Path, tmp_path: Path):
    """The card says the base was quantized (strategy qlora): the cache loads it so, apart from the full base."""
    folder = shutil.copytree(models["1"], tmp_path / "q1")
    card = ModelCard.read(folder)
    card.model_copy(update={
        "strategy": "qlora", "options": {"quantize_4bit": True, "quantize_8bit": False, "bnb_4bit_compute_dtype": "float32"},
        "request": {"bnb_4bit_quant_type": "nf4", "use_nested_quant": False}}).write(folder)
    on_its_own = load_trained_model(folder, builtin_dir)
    assert any(type(module).__name__ == "Linear4bit" for module in on_its_own.model.modules())
    expected = greedy_alone(on_its_own, ask("8"))

    cache = AdapterCache(builtin_dir, max_adapters=4, max_bases=2)
    assert cache.respond("1", ask("1"), lambda: models["1"])["generated_text"] == alone["1"]
    assert cache.respond("8", ask("8"), lambda: folder)["generated_text"] == expected
    assert cache.loaded() == {"forge/tiny-llama": ["1"], "forge/tiny-llama (4-bit)": ["8"]}
    # The same adapter on the full-precision base answers otherwise: the quantization is what it was trained with.
    assert expected != alone["1"]


def test_a_merged_model_is_served_whole_beside_the_adapters_of_its_base(models, alone, builtin_dir: Path,
                                                                         tmp_path: Path):
    from forge.modeling.merging import MergeSpec, merge_adapter

    merged = tmp_path / "merged-1"
    merge_adapter(MergeSpec(adapter_location=str(models["1"]), output_location=str(merged), adapter_model_id=1,
                            adapter_model_name="one", builtin_dir=str(builtin_dir)))
    assert not (merged / "adapter_config.json").exists()

    cache = AdapterCache(builtin_dir, max_adapters=2, max_bases=2)
    for key, folder in [("9", merged), ("3", models["3"]), ("9", merged)]:
        assert cache.respond(key, ask(key), lambda folder=folder: folder)["generated_text"] == alone[
            "1" if key == "9" else key], key
    # Its own weights, no PEFT: not one more adapter on the shared tiny-llama base.
    assert cache.loaded() == {"forge/tiny-llama": ["3"], "model 9 (merged)": ["9"]}
    assert cache._bases[("causal-lm", "model 9 (merged)", "")].peft is None
    # Evicted like any model (least recently used first), and loaded again when asked.
    for key in ("1", "3"):
        cache.respond(key, ask(key), lambda key=key: models[key])
    assert cache.loaded() == {"forge/tiny-llama": ["1", "3"]}
    assert cache.respond("9", ask("9"), lambda: merged)["generated_text"] == alone["1"]
