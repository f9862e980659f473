"""Where models run: one decision per kind of process, from what the process sees.

The inputs are the ones Ray hands a process (the CUDA devices it may see, and
whether it asked for a GPU); no CUDA device is faked. On a GPU the tier in
tests/gpu checks the same decisions against real devices.
"""

from __future__ import annotations

from forge.modeling.placement import CPU, Accelerator, place

NO_GPU = Accelerator()
ONE_AMPERE = Accelerator(cuda_devices=1, bf16_supported=True)


def test_a_cpu_only_node_runs_everything_in_float32_on_the_cpu():
    for wants_gpu in (False, True):  # a GPU asked for on a node without one is still the CPU
        placement = place(NO_GPU, wants_gpu=wants_gpu)
        assert placement == CPU
        assert (placement.device, placement.load_dtype, placement.mixed_precision) == ("cpu", "float32", "no")
        assert not placement.on_cuda


def test_a_process_that_asked_for_no_gpu_stays_on_the_cpu_of_a_gpu_node():
    assert place(ONE_AMPERE, wants_gpu=False) == CPU


def test_a_gpu_replica_loads_in_the_checkpoints_dtype_on_its_gpu():
    placement = place(ONE_AMPERE, wants_gpu=True)
    assert placement.device == "cuda:0" and placement.on_cuda
    # "auto": a bf16 checkpoint stays bf16 (half the memory of float32), a float32 one stays float32.
    assert placement.load_dtype == "auto" and placement.torch_dtype() == "auto"
    assert placement.mixed_precision == "bf16"


def test_a_fractional_gpu_is_a_whole_device_to_the_replica():
    # Ray shows a replica with num_gpus=0.25 the one GPU it shares: it places there like a whole one.
    assert place(Accelerator(cuda_devices=1, bf16_supported=True), wants_gpu=True).device == "cuda:0"


def test_a_gpu_without_bfloat16_trains_in_float16():
    assert place(Accelerator(cuda_devices=1, bf16_supported=False), wants_gpu=True).mixed_precision == "fp16"


def test_a_train_worker_takes_the_gpu_at_its_local_rank():
    node_of_four = Accelerator(cuda_devices=4, bf16_supported=True)
    assert [place(node_of_four, wants_gpu=True, local_rank=r).device for r in range(4)] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    # A worker shown only its own GPU uses it, whatever its rank on the node.
    assert place(ONE_AMPERE, wants_gpu=True, local_rank=3).device == "cuda:0"


def test_the_cpu_placement_loads_float32_whatever_the_checkpoint_says():
    import torch

    assert CPU.torch_dtype() is torch.float32
