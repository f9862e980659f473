"""On a CUDA device: placement, the stop agreement under NCCL, recipes in bf16, the playground's cache.

Run on a GPU machine with `pytest -m gpu tests/gpu` (no Ray needed).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from recording import RecordingLink, make_spec

from forge.modeling.placement import Accelerator, place
from forge.training.entry import run_training
from forge.training.options import Hardware

ONE_GPU = Hardware(cpus=8, gpus=1)
FAST = {"learning_rate": 5e-3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1}


def test_the_placement_finds_the_gpu():
    accelerator = Accelerator.detect()
    assert accelerator.cuda_devices >= 1
    placement = place(accelerator, wants_gpu=True)
    assert placement.device == "cuda:0" and placement.load_dtype == "auto"


def test_the_stop_agreement_broadcasts_on_the_gpu_under_nccl(tmp_path: Path):
    """One rank under NCCL makes the call a multi-GPU job makes: a CPU tensor would be refused."""
    import torch
    import torch.distributed as dist

    from forge.training.callbacks import agree_on_stop

    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        assert agree_on_stop(True) is True
        assert agree_on_stop(False) is False
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("strategy", ["sft", "qlora"])
def test_sft_and_qlora_on_a_bf16_checkpoint_train_on_the_gpu(tmp_path: Path, builtin_dir: Path,
                                                             hub_model_dir: Path, strategy: str):
    link = RecordingLink()
    spec = make_spec(tmp_path, builtin_dir, model_name=str(hub_model_dir), dataset="chat", dataset_format="chat",
                     hardware=ONE_GPU, strategy=strategy, num_train_epochs=2, **FAST)
    metrics = run_training(spec, link, is_main=True)["metrics"]
    assert math.isfinite(metrics["final_loss"]) and metrics["final_loss"] < metrics["first_loss"]
    said = [data["message"] for kind, data in link.events if kind == "setting"]
    assert any("mixed precision on cuda:0" in m for m in said), said


@pytest.mark.parametrize("dataset, fields", [
    ("preference", {"strategy": "dpo", "dataset_format": "preference", "max_steps": 6}),
    ("summarization", {"task": "summarization", "model_name": "forge/tiny-t5", "num_train_epochs": 1}),
    ("extractive_qa", {"task": "extractive-question-answering", "model_name": "forge/tiny-bert",
                       "dataset_format": "qa", "num_train_epochs": 1}),
])
def test_every_task_evaluates_on_the_gpu(tmp_path: Path, builtin_dir: Path, dataset: str, fields: dict):
    """The evaluation after training (generation for ROUGE, span search) feeds the model CUDA tensors."""
    fields = {"dataset_format": "pairs", **FAST, **fields}
    spec = make_spec(tmp_path, builtin_dir, dataset=dataset, hardware=ONE_GPU, **fields)
    metrics = run_training(spec, RecordingLink(), is_main=True)["metrics"]
    assert math.isfinite(metrics["final_loss"])
    for name in ("rouge1", "exact_match", "f1"):
        if name in metrics:
            assert math.isfinite(metrics[name])


def test_the_playground_cache_answers_on_the_gpu_as_plain_peft_does(tmp_path: Path, builtin_dir: Path,
                                                                    hub_model_dir: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from forge.modeling.generation import generate_texts
    from forge.modeling.loading import load_tokenizer
    from forge.modeling.prompts import causal_prompt
    from forge.playground.adapter_cache import AdapterCache
    from forge.schemas import GenerateRequest

    spec = make_spec(tmp_path, builtin_dir, model_name=str(hub_model_dir), dataset="chat", dataset_format="chat",
                     hardware=ONE_GPU, max_steps=4, **FAST)
    run_training(spec, RecordingLink(), is_main=True)
    placement = place(Accelerator.detect(), wants_gpu=True)
    cache = AdapterCache(builtin_dir, placement=placement)
    request = GenerateRequest(model_id=1, prompt="What is 2 times 3?", max_new_tokens=8, temperature=0, top_p=1.0)
    answered = cache.respond("1", request, lambda: Path(spec.output_dir))

    base = AutoModelForCausalLM.from_pretrained(hub_model_dir, dtype=torch.bfloat16).to("cuda:0")
    plain = PeftModel.from_pretrained(base, spec.output_dir).eval()
    tokenizer = load_tokenizer(spec.output_dir, builtin_dir)
    prompt = causal_prompt("text-generation", request.prompt, tokenizer)
    [expected] = generate_texts(plain, tokenizer, [prompt], max_new_tokens=8)
    assert answered["generated_text"] == expected.text
