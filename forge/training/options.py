"""Fit a training request to the hardware it will run on.

Options the hardware cannot honour are substituted here, before the job starts,
and every substitution is returned as a sentence so the manager can record it
as a job event: nothing is changed silently.
"""

from __future__ import annotations

from pydantic import BaseModel

from forge.catalog import quantizes_base
from forge.schemas import ComputeSpecs, TrainingRequest

_CUDA_ONLY_OPTIMIZERS = {"paged_adamw_32bit", "adamw_8bit"}


class Hardware(BaseModel):
    """What jobs can train on (forge.jobs.admission.training_hardware reads it from the cluster)."""

    gpus: float = 0
    cpus: float = 0
    # False when jobs train on GPUs an autoscaler will start and nobody said how many it can:
    # then no request is refused for asking too many.
    gpus_known: bool = True

    @property
    def has_gpu(self) -> bool:
        return self.gpus > 0


class ResolvedOptions(BaseModel):
    """What the worker actually uses, after substitutions."""

    use_gpu: bool
    compute_specs: ComputeSpecs
    optim: str
    fp16: bool
    bf16: bool
    quantize_4bit: bool
    quantize_8bit: bool
    bnb_4bit_compute_dtype: str
    gradient_checkpointing: bool


def detect_compute_specs(hardware: Hardware) -> ComputeSpecs:
    if not hardware.has_gpu:
        return "low_end"
    return "high_end" if hardware.gpus >= 4 else "mid_range"


def resolve_options(request: TrainingRequest, hardware: Hardware) -> tuple[ResolvedOptions, list[str]]:
    notes: list[str] = []
    optim = request.optim
    if optim in _CUDA_ONLY_OPTIMIZERS and not hardware.has_gpu:
        optim = "adamw_torch"
        notes.append(f"optim {request.optim} needs CUDA; using adamw_torch on this CPU-only cluster")
    fp16, bf16 = request.fp16, request.bf16
    if not hardware.has_gpu and (fp16 or bf16):
        notes.append("fp16/bf16 mixed precision needs a GPU; training in float32")
        fp16 = bf16 = False

    quantize = quantizes_base(request.strategy)
    if not quantize and (request.use_8bit or "use_4bit" in request.model_fields_set and request.use_4bit):
        notes.append(f"use_4bit/use_8bit apply to strategy qlora only; strategy {request.strategy} trains "
                     "a LoRA on the unquantized base")
    compute_dtype = request.bnb_4bit_compute_dtype
    if quantize and compute_dtype == "float16" and not hardware.has_gpu:
        compute_dtype = "float32"
        notes.append("bnb_4bit_compute_dtype float16 needs a GPU; computing in float32")
    compute_specs = request.compute_specs or detect_compute_specs(hardware)
    if request.compute_specs is None:
        notes.append(f"compute_specs detected as {compute_specs}")
    options = ResolvedOptions(
        use_gpu=hardware.has_gpu,
        compute_specs=compute_specs,
        optim=optim,
        fp16=fp16,
        bf16=bf16,
        quantize_4bit=quantize and request.use_4bit and not request.use_8bit,
        quantize_8bit=quantize and request.use_8bit,
        bnb_4bit_compute_dtype=compute_dtype,
        gradient_checkpointing=request.gradient_checkpointing,
    )
    return options, notes
