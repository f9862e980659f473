"""The two-stage rlhf recipe in-process: the policy's reward rises, and a resume skips a finished stage 1.

Real TRL RewardTrainer and GRPOTrainer on forge/tiny-llama and the shipped
preference pairs; a plain folder stands in for Ray Train's checkpoint storage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from recording import RecordingLink, make_spec

from forge.training.checkpoints import FolderCheckpoints, list_checkpoints
from forge.training.entry import run_training

FIELDS = dict(strategy="rlhf", num_train_epochs=2, learning_rate=5e-3, per_device_train_batch_size=2,
              gradient_accumulation_steps=1, save_steps=4)



def test_rlhf_stopped_in_the_policy_stage_resumes_there_with_the_same_reward_model(tmp_path: Path,
                                                                                  builtin_dir: Path):
    def spec(name: str):
        return make_spec(tmp_path / name, builtin_dir, dataset="preference", dataset_format="preference", **FIELDS)

    store = FolderCheckpoints(tmp_path / "checkpoints", keep=2)
    first = RecordingLink()
    # Stop once stage 2 has written a checkpoint.
    def stop_in_policy_stage() -> bool:
        stages = [data["stage"] for kind, data in first.events if kind == "checkpoint"]
        return stages.count("policy") >= 1

    first.stop_requested = stop_in_policy_stage
    assert run_training(spec("a"), first, is_main=True, checkpoints=store) == {"stopped": True}
    saved = list_checkpoints(store.root)
    assert saved[-1][0] == "policy"
    policy_checkpoint = saved[-1][1]
    assert (saved[-1][2] / "reward_model" / "adapter_model.safetensors").is_file()

    second = RecordingLink()
    outcome = run_training(spec("b"), second, is_main=True, checkpoints=store)
    assert second.events[0] == ("workers_started", {"resumed_step": policy_checkpoint})
    # No reward-model training this time: every step reported is past the checkpoint.
    assert min(second.steps()) == policy_checkpoint
    metrics = outcome["metrics"]
    assert metrics["reward_model_accuracy"] > 0.8
    assert metrics["policy_reward_after"] > metrics["policy_reward_before"]
    assert (Path(spec("b").output_dir) / "reward_model" / "adapter_model.safetensors").is_file()
