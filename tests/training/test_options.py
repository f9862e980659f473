"""resolve_options: hardware substitutions, quantization flags and their notes."""

from __future__ import annotations

import pytest

from forge.schemas import TrainingRequest
from forge.training.options import Hardware, ResolvedOptions, detect_compute_specs, resolve_options

BASE = {"task": "text-generation", "model_name": "forge/tiny-llama", "dataset": "d.jsonl"}
CPU = Hardware(cpus=2)
GPU = Hardware(gpus=1)


def _request(**fields) -> TrainingRequest:
    return TrainingRequest(**{**BASE, **fields})


def _optim_notes(notes: list[str]) -> list[str]:
    return [n for n in notes if n.startswith("optim ")]


@pytest.mark.parametrize("optim", ["paged_adamw_32bit", "adamw_8bit"])
def test_cuda_optimizer_replaced_on_cpu(optim):
    options, notes = resolve_options(_request(optim=optim, compute_specs="low_end"), CPU)
    assert options.optim == "adamw_torch"
    assert options.use_gpu is False
    assert notes == [f"optim {optim} needs CUDA; using adamw_torch on this CPU-only cluster"]


@pytest.mark.parametrize("optim", ["adamw_torch", "sgd"])
def test_portable_optimizer_kept_on_cpu(optim):
    options, notes = resolve_options(_request(optim=optim, compute_specs="low_end"), CPU)
    assert options.optim == optim
    assert _optim_notes(notes) == []
    assert notes == []


@pytest.mark.parametrize("optim", ["paged_adamw_32bit", "adamw_8bit", "adamw_torch", "sgd"])
def test_optimizer_kept_on_gpu(optim):
    options, notes = resolve_options(_request(optim=optim, compute_specs="mid_range"), GPU)
    assert options.optim == optim
    assert options.use_gpu is True
    assert notes == []


@pytest.mark.parametrize(("fp16", "bf16"), [(True, False), (False, True), (True, True)])
def test_mixed_precision_dropped_on_cpu(fp16, bf16):
    request = _request(fp16=fp16, bf16=bf16, optim="adamw_torch", compute_specs="low_end")
    options, notes = resolve_options(request, CPU)
    assert (options.fp16, options.bf16) == (False, False)
    assert notes == ["fp16/bf16 mixed precision needs a GPU; training in float32"]


@pytest.mark.parametrize(("fp16", "bf16"), [(True, False), (False, True)])
def test_mixed_precision_kept_on_gpu(fp16, bf16):
    request = _request(fp16=fp16, bf16=bf16, compute_specs="mid_range")
    options, notes = resolve_options(request, GPU)
    assert (options.fp16, options.bf16) == (fp16, bf16)
    assert options.optim == "paged_adamw_32bit"
    assert notes == []


def test_cpu_with_every_substitution():
    request = _request(fp16=True, optim="paged_adamw_32bit")
    options, notes = resolve_options(request, CPU)
    assert options == ResolvedOptions(
        use_gpu=False, compute_specs="low_end", optim="adamw_torch", fp16=False, bf16=False,
        quantize_4bit=False, quantize_8bit=False, bnb_4bit_compute_dtype="float16", gradient_checkpointing=True,
    )
    assert notes == [
        "optim paged_adamw_32bit needs CUDA; using adamw_torch on this CPU-only cluster",
        "fp16/bf16 mixed precision needs a GPU; training in float32",
        "compute_specs detected as low_end",
    ]


def test_sft_default_use_4bit_has_no_note():
    options, notes = resolve_options(_request(compute_specs="mid_range"), GPU)
    assert options.quantize_4bit is False
    assert options.quantize_8bit is False
    assert notes == []


def test_sft_with_explicit_use_4bit_is_not_quantized():
    options, notes = resolve_options(_request(strategy="sft", use_4bit=True, compute_specs="mid_range"), GPU)
    assert options.quantize_4bit is False
    assert options.quantize_8bit is False
    assert len(notes) == 1
    assert "qlora" in notes[0]
    assert "strategy sft" in notes[0]


def test_sft_with_use_8bit_is_not_quantized():
    options, notes = resolve_options(_request(use_8bit=True, compute_specs="mid_range"), GPU)
    assert options.quantize_8bit is False
    assert options.quantize_4bit is False
    assert len(notes) == 1 and "qlora" in notes[0]


def test_qlora_quantizes_4bit():
    request = TrainingRequest(**BASE, strategy="qlora", compute_specs="mid_range")
    options, notes = resolve_options(request, GPU)
    assert options.quantize_4bit is True
    assert options.quantize_8bit is False
    assert notes == []


def test_qlora_with_8bit_quantizes_8bit_only():
    request = TrainingRequest(**BASE, strategy="qlora", use_8bit=True, compute_specs="mid_range")
    options, notes = resolve_options(request, GPU)
    assert options.quantize_8bit is True
    assert options.quantize_4bit is False
    assert notes == []


def test_qlora_with_8bit_only_loads_8bit():
    request = TrainingRequest(**BASE, strategy="qlora", use_4bit=False, use_8bit=True, compute_specs="mid_range")
    options, _ = resolve_options(request, GPU)
    assert (options.quantize_4bit, options.quantize_8bit) == (False, True)


def test_compute_specs_detected_when_absent():
    options, notes = resolve_options(_request(optim="adamw_torch"), CPU)
    assert options.compute_specs == "low_end"
    assert notes == ["compute_specs detected as low_end"]
    assert "detected" in notes[0]


@pytest.mark.parametrize(("hardware", "expected"), [
    (Hardware(cpus=8), "low_end"),
    (Hardware(gpus=1), "mid_range"),
    (Hardware(gpus=3.5), "mid_range"),
    (Hardware(gpus=4), "high_end"),
    (Hardware(gpus=8), "high_end"),
])
def test_detect_compute_specs(hardware, expected):
    assert detect_compute_specs(hardware) == expected
    options, notes = resolve_options(_request(), hardware)
    assert options.compute_specs == expected
    assert f"compute_specs detected as {expected}" in notes


@pytest.mark.parametrize("given", ["low_end", "mid_range", "high_end"])
def test_compute_specs_kept_when_given(given):
    options, notes = resolve_options(_request(optim="adamw_torch", compute_specs=given), CPU)
    assert options.compute_specs == given
    assert not any("detected" in n for n in notes)
    assert notes == []


def test_gradient_checkpointing_passed_through():
    options, _ = resolve_options(_request(gradient_checkpointing=False, compute_specs="low_end"), CPU)
    assert options.gradient_checkpointing is False


def test_qlora_float16_compute_becomes_float32_on_cpu():
    options, notes = resolve_options(_request(strategy="qlora"), CPU)
    assert options.quantize_4bit is True and options.bnb_4bit_compute_dtype == "float32"
    assert "bnb_4bit_compute_dtype float16 needs a GPU; computing in float32" in notes


def test_qlora_compute_dtype_kept_on_gpu_and_for_bfloat16():
    on_gpu, _ = resolve_options(_request(strategy="qlora"), GPU)
    assert on_gpu.bnb_4bit_compute_dtype == "float16"
    bf16, notes = resolve_options(_request(strategy="qlora", bnb_4bit_compute_dtype="bfloat16"), CPU)
    assert bf16.bnb_4bit_compute_dtype == "bfloat16"
    assert not any("compute_dtype" in n for n in notes)
