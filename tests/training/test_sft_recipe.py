"""The training recipe itself, in-process: real TRL SFT with a PEFT LoRA on forge/tiny-llama.

The Ray-side wiring is covered by the integration tests; here a recording
`JobLink` (tests/training/recording.py) stands in for the TrainingManager.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recording import RecordingLink, make_spec

from forge.modeling.model_card import ModelCard
from forge.training.callbacks import losses_at
from forge.training.checkpoints import TRAINER_FOLDER, FolderCheckpoints, list_checkpoints
from forge.training.spec import JobSpec
from forge.training.entry import run_training



def _spec(tmp_path: Path, builtin_dir: Path, **fields) -> JobSpec:
    return make_spec(tmp_path, builtin_dir, **fields)


def test_sft_loss_falls_and_the_adapter_is_saved(tmp_path: Path, builtin_dir: Path):
    link = RecordingLink()
    spec = _spec(tmp_path, builtin_dir, num_train_epochs=3, learning_rate=5e-3, per_device_train_batch_size=2,
                 gradient_accumulation_steps=1)
    outcome = run_training(spec, link, is_main=True)

    assert outcome["stopped"] is False
    losses = [u["loss"] for u in link.updates if "loss" in u]
    assert len(losses) >= 10
    assert outcome["metrics"]["first_loss"] == losses[0]
    assert outcome["metrics"]["final_loss"] == losses[-1] < losses[0]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    steps = [u["current_step"] for u in link.updates if "current_step" in u]
    assert steps == sorted(steps) and max(steps) == outcome["metrics"]["train_steps"]
    # Each step reaches the manager once, with its loss: one message per step, not two. (Step 0
    # is the start; the last step also carries the evaluation and the trainer's summary.)
    last = outcome["metrics"]["train_steps"]
    assert [u["current_step"] for u in link.updates if "loss" in u] == list(range(1, last + 1))
    assert [u for u in link.updates if "loss" not in u and 0 < u.get("current_step", 0) < last] == []

    adapter = Path(spec.output_dir)
    assert (adapter / "adapter_model.safetensors").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["lora_alpha"] == 32
    meta = json.loads((adapter / "forge.json").read_text())
    assert meta["task"] == "text-generation" and meta["metrics"]["final_loss"] == losses[-1]
    assert not adapter.with_name(adapter.name + ".partial").exists()


def test_lora_settings_from_the_request_reach_the_adapter(tmp_path: Path, builtin_dir: Path):
    spec = _spec(tmp_path, builtin_dir, max_steps=2, lora_r=4, lora_alpha=8, lora_dropout=0.0, eval_split=0)
    outcome = run_training(spec, RecordingLink(), is_main=True)
    config = json.loads((Path(spec.output_dir) / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (4, 8, 0.0)
    assert outcome["metrics"]["train_steps"] == 2
    assert outcome["metrics"]["eval_loss"] is None and outcome["metrics"]["perplexity"] is None


def test_a_stop_request_ends_training_at_a_step_boundary_without_saving(tmp_path: Path, builtin_dir: Path):
    link = RecordingLink(stop_after_step=3)
    spec = _spec(tmp_path, builtin_dir, num_train_epochs=50)
    outcome = run_training(spec, link, is_main=True)
    assert outcome == {"stopped": True}
    steps = [u["current_step"] for u in link.updates if "current_step" in u]
    assert max(steps) == 3
    assert not Path(spec.output_dir).exists()


def test_a_run_resumes_from_its_latest_checkpoint_not_from_step_zero(tmp_path: Path, builtin_dir: Path):
    """Checkpoints every 2 steps, newest 2 kept; a stopped run picks up at its last checkpoint.

    A plain folder stands in for Ray Train's checkpoint storage here (the integration
    tests kill real Train workers); the trainer, its state and the files are real.
    """
    fields = dict(max_steps=10, save_steps=2, learning_rate=5e-3, per_device_train_batch_size=2,
                  gradient_accumulation_steps=1, eval_split=0)
    store = FolderCheckpoints(tmp_path / "checkpoints", keep=2)
    first = RecordingLink(stop_after_step=7)
    assert run_training(_spec(tmp_path / "a", builtin_dir, **fields), first, is_main=True,
                        checkpoints=store) == {"stopped": True}
    assert [folder.name for _, _, folder in list_checkpoints(store.root)] == ["train-000004", "train-000006"]
    assert [data["step"] for kind, data in first.events if kind == "checkpoint"] == [2, 4, 6]
    # Each checkpoint can become a model: its card (with the loss logged at its step) and its adapter.
    latest = store.root / "train-000006"
    card = ModelCard.read(latest)
    logged = {u["current_step"]: u["loss"] for u in first.updates if "loss" in u}
    assert (card.model_kind, card.task, card.metrics) == ("causal-lm", "text-generation",
                                                          {"step": 6, "train_loss": pytest.approx(logged[6])})
    assert (latest / TRAINER_FOLDER / "adapter_model.safetensors").is_file()

    second = RecordingLink()
    outcome = run_training(_spec(tmp_path / "b", builtin_dir, **fields), second, is_main=True, checkpoints=store)
    kind, started = second.events[0]
    assert (kind, started["resumed_step"]) == ("workers_started", 6)
    # With what the checkpoint's trainer logged up to it: the losses the first run reported live,
    # for a manager that missed them to fill in.
    assert {e["step"]: e["loss"] for e in started["history"]} == pytest.approx(
        {step: loss for step, loss in logged.items() if step <= 6})
    steps = [u["current_step"] for u in second.updates if "current_step" in u]
    assert min(steps) == 6 and max(steps) == 10 == outcome["metrics"]["train_steps"]
    # The resumed run continued the same optimisation: its losses for steps 7..10 are
    # those an uninterrupted run computes (same seed, restored optimizer and RNG state).
    straight = RecordingLink()
    run_training(_spec(tmp_path / "c", builtin_dir, **fields), straight, is_main=True)
    resumed_losses = [u["loss"] for u in second.updates if "loss" in u]
    straight_losses = [u["loss"] for u in straight.updates if "loss" in u]
    assert resumed_losses == pytest.approx(straight_losses[6:], rel=1e-3)


def test_a_checkpoint_carries_the_loss_logged_at_its_step_or_last_before_and_its_evaluation():
    history = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 2, "eval_loss": 1.8},
               {"step": 3, "loss": 1.2}, {"step": 4, "eval_loss": 1.1}]
    assert losses_at(history, 2) == {"train_loss": 1.5, "eval_loss": 1.8}
    assert losses_at(history, 4) == {"train_loss": 1.2, "eval_loss": 1.1}
    assert losses_at(history, 3) == {"train_loss": 1.2}  # no evaluation at step 3
    assert losses_at([], 5) == {}


def test_a_save_that_fails_midway_leaves_no_model_where_the_manager_looks(tmp_path: Path, builtin_dir: Path):
    """The adapter is written to a `.partial` folder and renamed only when complete."""
    from peft import LoraConfig, get_peft_model

    from forge.training.recipe import RecipeResult
    from forge.modeling.loading import load_model, load_tokenizer
    from forge.training.entry import save_model

    spec = _spec(tmp_path, builtin_dir, max_steps=1)
    model = get_peft_model(load_model("causal-lm", "forge/tiny-llama", builtin_dir),
                           LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    broken = RecipeResult(model=model, tokenizer=load_tokenizer("forge/tiny-llama", builtin_dir),
                          extra_dirs={"reward_model": tmp_path / "missing"})
    with pytest.raises(FileNotFoundError):
        save_model(broken, spec, {}, tmp_path / "scratch")
    # The manager registers only a folder with forge.json at output_dir: there is none.
    assert not Path(spec.output_dir).exists()
    assert (Path(spec.output_dir).with_name("adapter.partial") / "adapter_model.safetensors").is_file()
