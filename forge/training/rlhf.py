"""Two-stage RLHF: a reward model learned from preference pairs, then online policy
optimisation of the causal LM against it.

Stage 1: TRL's RewardTrainer fits a LoRA sequence-classification head on the same
base as the policy (prompt/chosen/rejected). Stage 2: TRL's GRPOTrainer samples
completions from a LoRA policy and scores them with the merged reward model.
The mean reward of the policy's sampled answers to held-out prompts is measured
before and after the policy stage.
"""

from __future__ import annotations

import math
from typing import Any

from forge.training.common import SEED, RecipeContext, RecipeResult, logged, lora_config, max_length, trainer_arguments
from forge.training.dpo import preference_rows
from forge.training.generation import generate_texts

# Completions sampled per prompt in each policy step; GRPO's advantages are relative within a group.
GROUP_SIZE = 4
# Sampling temperature of the policy stage (TRL's default) and of the before/after measurement.
SAMPLING_TEMPERATURE = 1.0
COMPLETION_TOKENS = 32
# Held-out prompts scored before and after the policy stage.
SCORED_PROMPTS = 16


def _stage_steps(ctx: RecipeContext, rows: int) -> int:
    """Optimizer steps one stage takes (what the HF Trainer will compute), for progress."""
    req = ctx.request
    if req.max_steps > 0:
        return req.max_steps
    per_rank = math.ceil(rows / ctx.world_size)
    return max(1, math.ceil(per_rank / req.per_device_train_batch_size) // req.gradient_accumulation_steps) * (
        req.num_train_epochs)


def _score(reward_model: Any, tokenizer: Any, prompts: list[str], completions: list[str]) -> list[float]:
    import torch

    scores = []
    with torch.inference_mode():
        for prompt, completion in zip(prompts, completions):
            batch = tokenizer(prompt + completion, return_tensors="pt", truncation=True, max_length=512)
            scores.append(float(reward_model(**batch).logits[0, 0]))
    return scores


def _mean_policy_reward(policy: Any, reward_model: Any, tokenizer: Any, prompts: list[str]) -> float:
    """Mean reward of the policy's sampled answers, drawn as GRPO draws them (same seed each time)."""
    import torch

    policy.eval()
    torch.manual_seed(SEED)
    repeated = [p for p in prompts for _ in range(GROUP_SIZE)]
    outputs = generate_texts(policy, tokenizer, repeated, max_new_tokens=COMPLETION_TOKENS,
                             temperature=SAMPLING_TEMPERATURE)
    scores = _score(reward_model, tokenizer, repeated, [o.text for o in outputs])
    return sum(scores) / len(scores)


def train_rlhf(ctx: RecipeContext) -> RecipeResult:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RewardConfig, RewardTrainer

    req = ctx.request
    tokenizer = ctx.tokenizer()
    train_rows, eval_rows = ctx.examples()
    pairs = Dataset.from_list(preference_rows(req.task, train_rows, tokenizer))
    eval_pairs = Dataset.from_list(preference_rows(req.task, eval_rows, tokenizer)) if eval_rows else None
    reward_steps = _stage_steps(ctx, len(train_rows))
    total_steps = reward_steps + _stage_steps(ctx, len(train_rows))

    # Stage 1: the reward model.
    # rlhf trains full-precision bases: quantization belongs to strategy qlora.
    reward_base = ctx.base_model("sequence-classification", num_labels=1)
    reward_base.config.pad_token_id = tokenizer.pad_token_id
    reward_trainer = RewardTrainer(
        model=reward_base,
        args=RewardConfig(**trainer_arguments(ctx, has_eval=eval_pairs is not None), max_length=max_length(ctx)),
        train_dataset=pairs,
        eval_dataset=eval_pairs,
        processing_class=tokenizer,
        peft_config=lora_config(ctx, "SEQ_CLS"),
    )
    if ctx.train(reward_trainer, total_steps=total_steps):
        return RecipeResult(stopped=True)
    # Pairwise accuracy on held-out pairs (on the training pairs when nothing is held out).
    judged = reward_trainer.evaluate(eval_pairs if eval_pairs is not None else pairs)
    metrics: dict[str, Any] = {
        "reward_model_accuracy": judged["eval_accuracy"],
        "reward_model_margin": judged.get("eval_margin"),
        "reward_model_final_loss": (logged(reward_trainer, "loss") or [None])[-1],
    }
    reward_adapter = ctx.scratch / "reward_model"
    reward_trainer.model.save_pretrained(reward_adapter)
    reward_model = reward_trainer.model.merge_and_unload().eval()

    # Stage 2: the policy, optimised online against the reward model.
    policy = ctx.base_model("causal-lm")
    prompts = list(pairs["prompt"])
    scored = list((eval_pairs or pairs)["prompt"])[:SCORED_PROMPTS]
    policy_trainer = GRPOTrainer(
        model=policy,
        reward_funcs=reward_model,
        args=GRPOConfig(
            **trainer_arguments(ctx, has_eval=False,
                                per_device_train_batch_size=GROUP_SIZE * req.per_device_train_batch_size),
            num_generations=GROUP_SIZE,
            temperature=SAMPLING_TEMPERATURE,
            max_completion_length=COMPLETION_TOKENS,
        ),
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=tokenizer,
        reward_processing_classes=tokenizer,
        peft_config=lora_config(ctx, "CAUSAL_LM"),
    )
    with policy_trainer.model.disable_adapter():
        metrics["policy_reward_before"] = _mean_policy_reward(policy_trainer.model, reward_model, tokenizer, scored)
    if ctx.train(policy_trainer, step_offset=reward_trainer.state.global_step, total_steps=total_steps):
        return RecipeResult(stopped=True)
    metrics["policy_reward_after"] = _mean_policy_reward(policy_trainer.model, reward_model, tokenizer, scored)
    rewards = logged(policy_trainer, "reward")
    metrics.update({
        "final_loss": (logged(policy_trainer, "loss") or [None])[-1],
        "first_mean_reward": rewards[0] if rewards else None,
        "final_mean_reward": rewards[-1] if rewards else None,
        "train_steps": reward_trainer.state.global_step + policy_trainer.state.global_step,
    })
    return RecipeResult(
        model=policy_trainer.model, tokenizer=tokenizer, metrics=metrics, model_kind="causal-lm",
        extra_dirs={"reward_model": reward_adapter},
    )
