"""Extractive question answering: an encoder with a span head (AutoModelForQuestionAnswering),
a LoRA plus the trainable head, trained with transformers' Trainer; exact match and F1
(SQuAD definitions) on the eval split."""

from __future__ import annotations

from typing import Any

from forge.modeling.qa_spans import STRIDE, WINDOW_TOKENS, answer_questions, training_features
from forge.training import task_scores
from forge.training.loss_figures import loss_and_eval_metrics
from forge.training.recipe import RecipeContext, RecipeResult
from forge.training.trainer_args import lora_config, trainer_arguments

SPAN_HEAD = "qa_outputs"


def window_size(ctx: RecipeContext) -> int:
    return min(ctx.request.max_seq_length or WINDOW_TOKENS, 512)


def train_extractive_qa(ctx: RecipeContext) -> RecipeResult:
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    tokenizer = ctx.tokenizer()
    model = ctx.base_model("question-answering", keep_full_precision=(SPAN_HEAD,))
    limit = window_size(ctx)
    train_rows, eval_rows = ctx.examples()

    def features(rows: list[dict[str, Any]]) -> Dataset:
        return Dataset.from_dict(training_features(tokenizer, rows, max_length=limit, stride=STRIDE))

    eval_set = features(eval_rows) if eval_rows else None
    trainer = Trainer(
        # PEFT's question-answering wrapper keeps the randomly initialised span head trainable.
        model=_with_lora(model, ctx),
        args=TrainingArguments(**trainer_arguments(ctx, has_eval=eval_set is not None)),
        train_dataset=features(train_rows),
        eval_dataset=eval_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    if ctx.train(trainer, model_kind="question-answering"):
        return RecipeResult(stopped=True)

    metrics = loss_and_eval_metrics(trainer, has_eval=eval_set is not None)
    if eval_rows:
        spans = answer_questions(trainer.model, tokenizer, eval_rows, max_length=limit)
        metrics.update(task_scores.squad_scores([s.text for s in spans], [r["answer"] for r in eval_rows]))
    return RecipeResult(model=trainer.model, tokenizer=tokenizer, metrics=metrics, model_kind="question-answering")


def _with_lora(model: Any, ctx: RecipeContext) -> Any:
    from peft import get_peft_model

    # The span head is trained in full (modules_to_save), so LoRA must not wrap it too.
    return get_peft_model(model, lora_config(ctx, "QUESTION_ANS", exclude_modules=[SPAN_HEAD]))
