"""QLoRA really quantizes: the base's linear layers load as bitsandbytes 4-bit or 8-bit modules.

bitsandbytes 0.50 runs its 4-bit and 8-bit layers on this CPU, so nothing is faked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.schemas import TrainingRequest
from forge.training.options import Hardware, resolve_options
from forge.modeling.loading import load_model
from forge.training.quantization import base_quantization



def _quantization(**fields):
    request = TrainingRequest(task="text-generation", model_name="forge/tiny-llama", dataset="d", strategy="qlora",
                              **fields)
    options, _ = resolve_options(request, Hardware(cpus=2))
    return base_quantization(request, options)


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("nested", [False, True])
def test_qlora_loads_the_base_in_4bit(builtin_dir: Path, quant_type: str, nested: bool):
    import bitsandbytes as bnb

    model = load_model("causal-lm", "forge/tiny-llama", builtin_dir,
                       quantization=_quantization(bnb_4bit_quant_type=quant_type, use_nested_quant=nested))
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * 7  # q, k, v, o, gate, up, down in each of the two layers
    state = layers[0].weight.quant_state
    assert state.quant_type == quant_type
    assert (state.state2 is not None) == nested  # nested (double) quantization of the scales
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)


def test_qlora_with_use_8bit_loads_8bit(builtin_dir: Path):
    import bitsandbytes as bnb

    model = load_model("causal-lm", "forge/tiny-llama", builtin_dir,
                       quantization=_quantization(use_4bit=False, use_8bit=True))
    assert sum(isinstance(m, bnb.nn.Linear8bitLt) for m in model.modules()) == 14


def test_sft_does_not_quantize():
    request = TrainingRequest(task="text-generation", model_name="forge/tiny-llama", dataset="d", use_4bit=True)
    options, notes = resolve_options(request, Hardware(cpus=2))
    assert base_quantization(request, options) is None
    assert any("qlora only" in n for n in notes)


def test_a_trained_task_head_stays_in_full_precision(builtin_dir: Path):
    import bitsandbytes as bnb

    request = TrainingRequest(task="extractive-question-answering", model_name="forge/tiny-bert", dataset="d",
                              strategy="qlora")
    options, _ = resolve_options(request, Hardware(cpus=2))
    model = load_model("question-answering", "forge/tiny-bert", builtin_dir,
                       quantization=base_quantization(request, options, keep_full_precision=("qa_outputs",)))
    assert not isinstance(model.qa_outputs, bnb.nn.Linear4bit)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
