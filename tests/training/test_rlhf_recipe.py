"""The two-stage rlhf recipe in-process: the policy's reward rises, and a resume skips a finished stage 1.

Real TRL RewardTrainer and GRPOTrainer on forge/tiny-llama and the shipped
preference pairs; a plain folder stands in for Ray Train's checkpoint storage.
This is also the catalog's rlhf row (test_recipe_rows.py has the others): the
trained policy, loaded and prompted as the playground does, answers unlike its base.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from recording import RecordingLink, make_spec

from forge.playground.responder import load_base_model, load_trained_model, respond
from forge.schemas import GenerateRequest
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
    kind, started = second.events[0]
    assert (kind, started["resumed_step"]) == ("workers_started", policy_checkpoint)
    # The checkpoint's history (its GRPO trainer's) is in job steps, after the reward model's:
    # the losses the first run reported live at those steps.
    live = {u["current_step"]: u["loss"] for u in first.updates if "loss" in u}
    history = {e["step"]: e["loss"] for e in started["history"] if "loss" in e}
    assert history and max(history) == policy_checkpoint and min(history) > min(live)
    assert history == pytest.approx({step: live[step] for step in history})
    # No reward-model training this time: every step reported is past the checkpoint.
    assert min(second.steps()) == policy_checkpoint
    metrics = outcome["metrics"]
    for name in ("reward_model_accuracy", "policy_reward_before", "policy_reward_after", "final_loss",
                 "final_mean_reward"):
        assert isinstance(metrics.get(name), (int, float)) and math.isfinite(metrics[name]), (name, metrics)
    assert metrics["reward_model_accuracy"] > 0.8
    # The policy learned what the reward model prefers: its sampled answers to held-out
    # prompts score higher after the policy stage than before it.
    assert metrics["policy_reward_after"] > metrics["policy_reward_before"]
    assert metrics["train_steps"] > 0
    model_dir = Path(spec("b").output_dir)
    assert (model_dir / "reward_model" / "adapter_model.safetensors").is_file()
    request = GenerateRequest(model_id=1, prompt="What is 3 plus 3?", max_new_tokens=16, temperature=0, top_p=1.0)
    trained = respond(load_trained_model(model_dir, builtin_dir), request)["generated_text"]
    base = respond(load_base_model("forge/tiny-llama", builtin_dir, "text-generation"), request)["generated_text"]
    assert trained != base
