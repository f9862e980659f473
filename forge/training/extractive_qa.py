"""Extractive question answering: an encoder with a span head (AutoModelForQuestionAnswering),
a LoRA plus the trainable head, trained with transformers' Trainer; exact match and F1
(SQuAD definitions) on the eval split."""

from __future__ import annotations

from typing import Any

from forge import metrics as task_metrics
from forge.training.common import (
    RecipeContext,
    RecipeResult,
    lora_config,
    loss_and_eval_metrics,
    trainer_arguments,
)
from forge.training.qa_spans import best_span, encode_windows, training_features

WINDOW_TOKENS = 256
SPAN_HEAD = "qa_outputs"
STRIDE = 64


def window_size(ctx: RecipeContext) -> int:
    return min(ctx.request.max_seq_length or WINDOW_TOKENS, 512)


def answer_questions(model: Any, tokenizer: Any, rows: list[dict[str, Any]], *, max_length: int) -> list[Any]:
    """The best span for each row's question in its context (evaluation and playground)."""
    import torch

    model.eval()
    spans = []
    for row in rows:  # one example at a time: a long context alone may make many windows
        encoding = encode_windows(tokenizer, [row["question"]], [row["context"]], max_length=max_length,
                                  stride=STRIDE, pad=True)
        inputs = {k: torch.tensor(encoding[k]) for k in ("input_ids", "attention_mask", "token_type_ids")
                  if k in encoding}
        with torch.inference_mode():
            output = model(**inputs)
        windows = list(range(len(encoding["input_ids"])))
        logits = [(output.start_logits[w].tolist(), output.end_logits[w].tolist()) for w in windows]
        spans.append(best_span(encoding, logits, row["context"], windows))
    return spans


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
    if ctx.train(trainer):
        return RecipeResult(stopped=True)

    metrics = loss_and_eval_metrics(trainer, has_eval=eval_set is not None)
    if eval_rows:
        spans = answer_questions(trainer.model, tokenizer, eval_rows, max_length=limit)
        metrics.update(task_metrics.squad_scores([s.text for s in spans], [r["answer"] for r in eval_rows]))
    return RecipeResult(model=trainer.model, tokenizer=tokenizer, metrics=metrics, model_kind="question-answering")


def _with_lora(model: Any, ctx: RecipeContext) -> Any:
    from peft import get_peft_model

    # The span head is trained in full (modules_to_save), so LoRA must not wrap it too.
    return get_peft_model(model, lora_config(ctx, "QUESTION_ANS", exclude_modules=[SPAN_HEAD]))
