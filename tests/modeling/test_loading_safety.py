"""Model loading never runs code or unpickles data it was handed, unless the operator allows code.

Real transformers and PEFT loaders on hostile model folders: one whose config
asks for custom Python code, one whose only weights are a pickle, and a trained
model folder whose adapter was swapped for a pickle. Each hostile file would
leave a marker file behind if it ever ran.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from forge.builtin import ensure_builtin
from forge.modeling.loading import load_model, load_tokenizer
from forge.modeling.model_card import ModelCard
from forge.playground.responder import load_trained_model


class _TouchOnUnpickle:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))



@pytest.fixture(scope="module")
def tiny_llama(builtin_dir: Path) -> Path:
    return ensure_builtin("forge/tiny-llama", builtin_dir)


def _custom_code_model(folder: Path, marker: Path, tiny_llama: Path) -> Path:
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "forge-evil"
    config["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig",
                          "AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    code = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    code += "from transformers import LlamaConfig, LlamaForCausalLM\n"
    (folder / "configuration_evil.py").write_text(code + "class EvilConfig(LlamaConfig):\n"
                                                  "    model_type = 'forge-evil'\n")
    (folder / "modeling_evil.py").write_text(code + "from .configuration_evil import EvilConfig\n"
                                             "class EvilModel(LlamaForCausalLM):\n    config_class = EvilConfig\n")
    return folder


def test_custom_model_code_is_refused_unless_trusted(tmp_path: Path, builtin_dir: Path, tiny_llama: Path):
    marker = tmp_path / "custom-code-ran"
    folder = _custom_code_model(tmp_path / "custom", marker, tiny_llama)
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_model("causal-lm", str(folder), builtin_dir, trust_remote_code=False)
    assert not marker.exists()
    # FORGE_TRUST_REMOTE_CODE=1 is the operator's explicit opt-in: then the code runs.
    model = load_model("causal-lm", str(folder), builtin_dir, trust_remote_code=True)
    assert type(model).__name__ == "EvilModel" and marker.exists()


def test_a_known_architecture_loads_natively_and_ignores_bundled_code(tmp_path: Path, builtin_dir: Path,
                                                                      tiny_llama: Path):
    marker = tmp_path / "custom-code-ran"
    folder = _custom_code_model(tmp_path / "custom", marker, tiny_llama)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    model = load_model("causal-lm", str(folder), builtin_dir)
    assert type(model).__name__ == "LlamaForCausalLM" and not marker.exists()


def test_pickled_weights_are_never_loaded(tmp_path: Path, builtin_dir: Path, tiny_llama: Path):
    marker = tmp_path / "pickle-ran"
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_llama / "config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": _TouchOnUnpickle(marker)}))
    with pytest.raises(OSError, match="safetensors"):
        load_model("causal-lm", str(folder), builtin_dir)
    assert not marker.exists()
    # The tokenizer files are JSON: loading them runs nothing either.
    assert load_tokenizer(str(tiny_llama), builtin_dir).pad_token is not None


def test_a_trained_model_whose_adapter_is_a_pickle_is_not_loaded(tmp_path: Path, builtin_dir: Path):
    marker = tmp_path / "adapter-pickle-ran"
    folder = tmp_path / "model"
    folder.mkdir()
    ModelCard(job_id="train_1", task="text-generation", base_model="forge/tiny-llama",
              base_model_source="forge/tiny-llama", request={}, options={}, metrics={}, versions={}).write(folder)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                                                            "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}))
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        load_trained_model(folder, builtin_dir)
    assert not marker.exists()
