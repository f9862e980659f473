"""Two-stage RLHF: a reward model learned from preference pairs, then online policy
optimisation of the causal LM against it.

Stage 1: TRL's RewardTrainer fits a LoRA sequence-classification head on the same
base as the policy (prompt/chosen/rejected). Stage 2: TRL's GRPOTrainer samples
completions from a LoRA policy and scores them with the merged reward model (read at an
appended EOS, where RewardTrainer trained it to read).
The mean reward of the policy's sampled answers to held-out prompts is measured
before and after the policy stage.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Optional

from forge.modeling.generation import generate_texts
from forge.modeling.prompts import pair_texts, preference_rows
from forge.training.loss_figures import logged
from forge.training.recipe import SEED, RecipeContext, RecipeResult
from forge.training.trainer_args import lora_config, max_length, trainer_arguments

# Completions sampled per prompt in each policy step; GRPO's advantages are relative within a group,
# and a larger group estimates them with less noise (4 left the gain to chance on forge/tiny-llama).
GROUP_SIZE = 8
# Sampling temperature of the policy stage (TRL's default) and of the before/after measurement.
SAMPLING_TEMPERATURE = 1.0
# The reward is one number per completion and GRPO spreads its advantage over every token of it:
# short completions give each token a clear share. On forge/tiny-llama 32 tokens left the policy's
# reward where it was, 8 raised it in most runs, 4 in every run tried.
COMPLETION_TOKENS = 4
# The policy stage learns at the request's rate times this: an online policy-gradient signal is far
# weaker per step than the reward model's supervised loss (×1 and ×2 did not reliably move the policy).
POLICY_LR_SCALE = 4.0
# Held-out prompts scored before and after the policy stage, and samples drawn for each: enough
# that resampling moves the mean by ~0.1-0.4 while the policy stage moves it by several units.
SCORED_PROMPTS = 16
SCORED_SAMPLES = 16
# Checkpoint stages; a policy-stage checkpoint carries the finished reward model and its figures.
REWARD_STAGE, POLICY_STAGE = "reward", "policy"
REWARD_FIGURES = "forge_reward_stage.json"


def _stage_steps(ctx: RecipeContext, rows: int) -> int:
    """Optimizer steps one stage takes (what the HF Trainer will compute), for progress."""
    req = ctx.request
    if req.max_steps > 0:
        return req.max_steps
    per_rank = math.ceil(rows / ctx.world_size)
    return max(1, math.ceil(per_rank / req.per_device_train_batch_size) // req.gradient_accumulation_steps) * (
        req.num_train_epochs)


def _score(reward_model: Any, tokenizer: Any, prompts: list[str], completions: list[str]) -> list[float]:
    """The reward model's score of each prompt + completion, read where it learned to read it.

    TRL's RewardTrainer appends the EOS token to every chosen and rejected answer, so the
    sequence-classification head is trained on the hidden state at that EOS. Completions are
    text (special tokens dropped), so the EOS is appended here too; scored without it, the head
    reads an arbitrary last token and its preference is lost (pairwise accuracy at chance).
    """
    import torch

    device = next(reward_model.parameters()).device
    scores = []
    with torch.inference_mode():
        for prompt, completion in zip(prompts, completions):
            batch = tokenizer(prompt + completion + tokenizer.eos_token, return_tensors="pt", truncation=True,
                              max_length=512, add_special_tokens=False).to(device)
            scores.append(float(reward_model(**batch).logits[0, 0]))
    return scores


def _reward_function(reward_model: Any, tokenizer: Any):
    """GRPO's reward: the reward model's score, read as `_score` reads it."""

    def reward_model_score(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return _score(reward_model, tokenizer, prompts, completions)

    return reward_model_score


def _mean_policy_reward(policy: Any, reward_model: Any, tokenizer: Any, prompts: list[str]) -> float:
    """Mean reward of the policy's sampled answers, drawn as GRPO draws them (same seed each time)."""
    import torch

    policy.eval()
    torch.manual_seed(SEED)
    repeated = [p for p in prompts for _ in range(SCORED_SAMPLES)]
    outputs = generate_texts(policy, tokenizer, repeated, max_new_tokens=COMPLETION_TOKENS,
                             temperature=SAMPLING_TEMPERATURE)
    scores = _score(reward_model, tokenizer, repeated, [o.text for o in outputs])
    return sum(scores) / len(scores)


def _reward_base(ctx: RecipeContext, tokenizer: Any) -> Any:
    from transformers import set_seed

    # rlhf trains full-precision bases: quantization belongs to strategy qlora.
    # The score head is initialised as the model loads, before the trainer seeds anything.
    set_seed(ctx.request.seed)
    base = ctx.base_model("sequence-classification", num_labels=1)
    base.config.pad_token_id = tokenizer.pad_token_id
    return base


def _train_reward_model(ctx: RecipeContext, tokenizer: Any, pairs: Any, eval_pairs: Any, total_steps: int,
                        folder: Path) -> Optional[tuple[Any, dict[str, Any]]]:
    """Fit the reward model; save its adapter and figures to `folder`. None when stopped."""
    from trl import RewardConfig, RewardTrainer

    reward_trainer = RewardTrainer(
        model=_reward_base(ctx, tokenizer),
        args=RewardConfig(**trainer_arguments(ctx, has_eval=eval_pairs is not None),
                          max_length=max_length(ctx, tokenizer, pair_texts(pairs))),
        train_dataset=pairs,
        eval_dataset=eval_pairs,
        processing_class=tokenizer,
        peft_config=lora_config(ctx, "SEQ_CLS"),
    )
    if ctx.train(reward_trainer, model_kind=None, stage=REWARD_STAGE, total_steps=total_steps):
        return None
    # Pairwise accuracy on held-out pairs (on the training pairs when nothing is held out).
    judged = reward_trainer.evaluate(eval_pairs if eval_pairs is not None else pairs)
    figures = {
        "reward_model_accuracy": judged["eval_accuracy"],
        "reward_model_margin": judged.get("eval_margin"),
        "reward_model_final_loss": (logged(reward_trainer, "loss") or [None])[-1],
        "steps": reward_trainer.state.global_step,
    }
    reward_trainer.model.save_pretrained(folder)
    (folder / REWARD_FIGURES).write_text(json.dumps(figures))
    return reward_trainer.model.merge_and_unload().eval(), dict(figures)


def _reload_reward_model(ctx: RecipeContext, tokenizer: Any, folder: Path) -> tuple[Any, dict[str, Any]]:
    """The reward model and figures a finished stage 1 saved to `folder`."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(_reward_base(ctx, tokenizer), str(folder)).merge_and_unload().eval()
    return model, json.loads((folder / REWARD_FIGURES).read_text())


def train_rlhf(ctx: RecipeContext) -> RecipeResult:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    req = ctx.request
    tokenizer = ctx.tokenizer()
    train_rows, eval_rows = ctx.examples()
    pairs = Dataset.from_list(preference_rows(req.task, train_rows, tokenizer))
    eval_pairs = Dataset.from_list(preference_rows(req.task, eval_rows, tokenizer)) if eval_rows else None
    reward_steps = _stage_steps(ctx, len(train_rows))
    total_steps = reward_steps + _stage_steps(ctx, len(train_rows))

    # Stage 1: the reward model, unless the job resumes in stage 2 (its checkpoints carry the reward model).
    reward_adapter = ctx.scratch / "reward_model"
    if ctx.resumed_stage() == POLICY_STAGE:
        shutil.copytree(ctx.resumed_folder("reward_model"), reward_adapter)
        reward_model, figures = _reload_reward_model(ctx, tokenizer, reward_adapter)
    else:
        trained = _train_reward_model(ctx, tokenizer, pairs, eval_pairs, total_steps, reward_adapter)
        if trained is None:
            return RecipeResult(stopped=True)
        reward_model, figures = trained
    reward_steps_done = figures.pop("steps")
    metrics: dict[str, Any] = dict(figures)

    # Stage 2: the policy, optimised online against the reward model.
    policy = ctx.base_model("causal-lm")
    prompts = list(pairs["prompt"])
    scored = list((eval_pairs or pairs)["prompt"])[:SCORED_PROMPTS]
    policy_trainer = GRPOTrainer(
        model=policy,
        reward_funcs=_reward_function(reward_model, tokenizer),
        args=GRPOConfig(
            **trainer_arguments(ctx, has_eval=False,
                                per_device_train_batch_size=GROUP_SIZE * req.per_device_train_batch_size,
                                learning_rate=req.learning_rate * POLICY_LR_SCALE),
            num_generations=GROUP_SIZE,
            temperature=SAMPLING_TEMPERATURE,
            max_completion_length=COMPLETION_TOKENS,
        ),
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=tokenizer,
        peft_config=lora_config(ctx, "CAUSAL_LM"),
    )
    with policy_trainer.model.disable_adapter():
        metrics["policy_reward_before"] = _mean_policy_reward(policy_trainer.model, reward_model, tokenizer, scored)
    if ctx.train(policy_trainer, model_kind="causal-lm", stage=POLICY_STAGE, step_offset=reward_steps_done,
                 total_steps=total_steps, extras={"reward_model": reward_adapter}):
        return RecipeResult(stopped=True)
    metrics["policy_reward_after"] = _mean_policy_reward(policy_trainer.model, reward_model, tokenizer, scored)
    rewards = logged(policy_trainer, "reward")
    metrics.update({
        "final_loss": (logged(policy_trainer, "loss") or [None])[-1],
        "first_mean_reward": rewards[0] if rewards else None,
        "final_mean_reward": rewards[-1] if rewards else None,
        "train_steps": reward_steps_done + policy_trainer.state.global_step,
    })
    return RecipeResult(
        model=policy_trainer.model, tokenizer=tokenizer, metrics=metrics, model_kind="causal-lm",
        extra_dirs={"reward_model": reward_adapter},
    )
