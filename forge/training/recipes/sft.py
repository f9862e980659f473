"""Causal-LM fine-tuning with TRL's SFTTrainer and a LoRA (strategies sft and qlora).

Serves text generation, and summarization with a decoder-only model (trained on a
summarization prompt). Loss is on the completion only; plain `text` rows train
language modelling on the whole text.
"""

from __future__ import annotations

from typing import Any

from forge.modeling.generation import generate_texts
from forge.modeling.prompts import causal_example
from forge.training import task_scores
from forge.training.loss_figures import loss_and_eval_metrics, perplexity
from forge.training.providers import trainable_causal_lm
from forge.training.recipe import RecipeContext, RecipeResult
from forge.training.trainer_args import max_length, trainer_arguments

# Summaries generated on the eval split for ROUGE: enough for a few sentences.
SUMMARY_TOKENS = 48


def example_text(example: dict[str, Any], tokenizer: Any) -> str:
    """An example as the text the model reads (conversations through the chat template)."""
    if "text" in example:
        return example["text"]
    if isinstance(example["prompt"], list):
        return tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)
    return example["prompt"] + example["completion"]


def train_causal_sft(ctx: RecipeContext) -> RecipeResult:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    req = ctx.request
    model, tokenizer, peft_config = trainable_causal_lm(ctx)
    train_rows, eval_rows = ctx.examples()
    template = bool(getattr(tokenizer, "chat_template", None))
    to_example = lambda row: causal_example(req.task, row, chat_template=template)  # noqa: E731
    train_examples = [to_example(r) for r in train_rows]
    eval_set = Dataset.from_list([to_example(r) for r in eval_rows]) if eval_rows else None
    limit = max_length(ctx, tokenizer, (example_text(e, tokenizer) for e in train_examples))
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**trainer_arguments(ctx, has_eval=eval_set is not None, groups_by_length=True),
                       max_length=limit, packing=req.packing),
        train_dataset=Dataset.from_list(train_examples),
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if ctx.train(trainer, model_kind="causal-lm"):
        return RecipeResult(stopped=True)

    metrics = loss_and_eval_metrics(trainer, has_eval=eval_set is not None)
    metrics["perplexity"] = perplexity(metrics["eval_loss"])
    if req.task == "summarization" and eval_rows:
        trainer.model.eval()
        prompts = [to_example(r)["prompt"] for r in eval_rows]
        outputs = generate_texts(trainer.model, tokenizer, prompts, max_new_tokens=SUMMARY_TOKENS)
        metrics.update(task_scores.rouge_scores([o.text for o in outputs], [r["output"] for r in eval_rows]))
    return RecipeResult(model=trainer.model, tokenizer=tokenizer, metrics=metrics, model_kind="causal-lm")
