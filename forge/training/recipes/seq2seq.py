"""Summarization with an encoder-decoder model (T5 style): a LoRA trained with
transformers' Seq2SeqTrainer, scored with ROUGE on generated summaries."""

from __future__ import annotations

from typing import Any

from forge.modeling.generation import generate_texts
from forge.modeling.prompts import seq2seq_example
from forge.training import task_scores
from forge.training.loss_figures import loss_and_eval_metrics
from forge.training.recipe import RecipeContext, RecipeResult
from forge.training.trainer_args import lora_config, max_length, trainer_arguments

SUMMARY_TOKENS = 48


def train_seq2seq(ctx: RecipeContext) -> RecipeResult:
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    req = ctx.request
    tokenizer = ctx.tokenizer()
    model = get_peft_model(ctx.base_model("seq2seq-lm"), lora_config(ctx, "SEQ_2_SEQ_LM"))
    train_rows, eval_rows = ctx.examples()
    # Sources are the long side of a summarization pair; the targets share their limit.
    limit = max_length(ctx, tokenizer, (seq2seq_example(req.task, r)["source"] for r in train_rows))

    def encode(rows: list[dict[str, Any]]):
        pairs = [seq2seq_example(req.task, r) for r in rows]
        features = tokenizer([p["source"] for p in pairs], truncation=True, max_length=limit)
        features["labels"] = tokenizer(text_target=[p["target"] for p in pairs], truncation=True,
                                       max_length=limit)["input_ids"]
        return Dataset.from_dict(dict(features))

    eval_set = encode(eval_rows) if eval_rows else None
    trainer = Seq2SeqTrainer(
        model=model,
        args=Seq2SeqTrainingArguments(**trainer_arguments(ctx, has_eval=eval_set is not None, groups_by_length=True)),
        train_dataset=encode(train_rows),
        eval_dataset=eval_set,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
    )
    if ctx.train(trainer, model_kind="seq2seq-lm"):
        return RecipeResult(stopped=True)

    metrics = loss_and_eval_metrics(trainer, has_eval=eval_set is not None)
    if eval_rows:
        model.eval()
        sources = [seq2seq_example(req.task, r)["source"] for r in eval_rows]
        outputs = generate_texts(model, tokenizer, sources, max_new_tokens=SUMMARY_TOKENS, seq2seq=True)
        metrics.update(task_scores.rouge_scores([o.text for o in outputs], [r["output"] for r in eval_rows]))
    return RecipeResult(model=model, tokenizer=tokenizer, metrics=metrics, model_kind="seq2seq-lm")
