"""Where a model runs and in which precision: one decision for training workers and playground replicas.

Ray decides which devices a process may use (a Train worker with `use_gpu`, a
replica with `num_gpus`, fractional or whole, sees them as CUDA devices). This
module turns what the process sees, and whether it asked for a GPU at all, into a
`Placement`: the device tensors live on, the dtype a base model loads in, and the
mixed precision training uses. Recipes, evaluation, callbacks, generation and the
playground take their device from the model or from here, never from a default.

`Accelerator.detect()` is the only part that asks torch; the decision itself is a
plain function of its inputs, so it is tested without a GPU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MixedPrecision = Literal["bf16", "fp16", "no"]


class Accelerator(BaseModel):
    """What this process can use: its visible CUDA devices and whether they compute in bfloat16."""

    cuda_devices: int = Field(0, ge=0, description="CUDA devices visible to this process.")
    bf16_supported: bool = Field(False, description="Whether the devices compute in bfloat16 (Ampere or newer).")

    @classmethod
    def detect(cls) -> "Accelerator":
        import torch

        if not torch.cuda.is_available():
            return cls()
        return cls(cuda_devices=torch.cuda.device_count(), bf16_supported=torch.cuda.is_bf16_supported())


class Placement(BaseModel):
    device: str = Field(description='"cpu" or "cuda:N".')
    # "auto": the checkpoint's own dtype (a bf16 checkpoint stays bf16 on a GPU). On a CPU
    # everything is float32: half precision there is slow and loses LoRA's small updates.
    load_dtype: Literal["auto", "float32"]
    mixed_precision: MixedPrecision = Field(description="What training autocasts to when the request leaves it open.")

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def torch_dtype(self):
        """The `dtype` argument for `from_pretrained`."""
        import torch

        return "auto" if self.load_dtype == "auto" else torch.float32


CPU = Placement(device="cpu", load_dtype="float32", mixed_precision="no")


def place(accelerator: Accelerator, *, wants_gpu: bool, local_rank: int = 0) -> Placement:
    """The placement of a process that `wants_gpu` (a job with use_gpu, a replica with num_gpus > 0).

    `local_rank`: the Train worker's rank on its node. Ray Train may show every
    worker of a node all of the node's GPUs; each worker then takes the one at its
    local rank. A replica, or a worker that sees only its own GPU, uses device 0.
    """
    if not wants_gpu or accelerator.cuda_devices == 0:
        return CPU
    index = local_rank if local_rank < accelerator.cuda_devices else 0
    return Placement(device=f"cuda:{index}", load_dtype="auto",
                     mixed_precision="bf16" if accelerator.bf16_supported else "fp16")
