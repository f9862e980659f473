"""Direct preference optimisation with TRL's DPOTrainer and a LoRA.

No separate reference model: with a PEFT adapter, the adapter-disabled base is
the reference.
"""

from __future__ import annotations

from typing import Any

from forge.modeling.prompts import pair_texts, preference_rows
from forge.training.loss_figures import loss_metrics
from forge.training.providers import trainable_causal_lm
from forge.training.recipe import RecipeContext, RecipeResult
from forge.training.trainer_args import max_length, trainer_arguments


def train_dpo(ctx: RecipeContext) -> RecipeResult:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    req = ctx.request
    model, tokenizer, peft_config = trainable_causal_lm(ctx)
    train_rows, eval_rows = ctx.examples()
    train_set = Dataset.from_list(preference_rows(req.task, train_rows, tokenizer))
    eval_set = Dataset.from_list(preference_rows(req.task, eval_rows, tokenizer)) if eval_rows else None
    trainer = DPOTrainer(
        model=model,
        args=DPOConfig(**trainer_arguments(ctx, has_eval=eval_set is not None), beta=req.dpo_beta,
                       max_length=max_length(ctx, tokenizer, pair_texts(train_set))),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if ctx.train(trainer, model_kind="causal-lm"):
        return RecipeResult(stopped=True)

    metrics: dict[str, Any] = loss_metrics(trainer)
    # TRL names every evaluation's metrics eval_*, whichever pairs it was given.
    on_train = trainer.evaluate(train_set)
    metrics["train_reward_accuracy"] = on_train["eval_rewards/accuracies"]
    metrics["train_reward_margin"] = on_train["eval_rewards/margins"]
    if eval_set is not None:
        on_eval = trainer.evaluate()
        metrics["eval_loss"] = on_eval["eval_loss"]
        metrics["reward_accuracy"] = on_eval["eval_rewards/accuracies"]
        metrics["reward_margin"] = on_eval["eval_rewards/margins"]
    else:  # no held-out pairs: the training pairs are all there is
        metrics["reward_accuracy"] = metrics["train_reward_accuracy"]
        metrics["reward_margin"] = metrics["train_reward_margin"]
    if "ref" in getattr(trainer.model, "peft_config", {}):
        # Given a model that is already a PeftModel (provider unsloth), DPOTrainer keeps a frozen
        # copy of the initial adapter as the reference; it is no part of the trained model.
        trainer.model.delete_adapter("ref")
    return RecipeResult(model=trainer.model, tokenizer=tokenizer, metrics=metrics, model_kind="causal-lm")
