"""The GPU tier: runs without Ray, on one CUDA device, in a few minutes.

Every test here is marked `gpu` and skipped, with the reason printed, where torch
sees no CUDA device (so on this project's CPU machines). It reuses the in-process
recipe helpers of tests/training.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    skip = None if _has_cuda() else pytest.mark.skip(reason="needs a CUDA device: the GPU tier runs on GPU machines")
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.gpu)
            if skip is not None:
                item.add_marker(skip)
