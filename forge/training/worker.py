"""The function each Ray Train worker runs: setup, train, evaluate, save.

`train_worker` is what `TorchTrainer` calls; `run_training` is the recipe itself
and runs without Ray too, given any `JobLink` (tests use that to train in-process).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from forge.training.callbacks import JobLink, ProgressCallback
from forge.training.providers import load_causal_lm
from forge.training.spec import JobSpec
from forge.training.tasks import to_prompt_completion


class ManagerLink:
    """Reports to the TrainingManager actor; survives its restarts by never blocking on it."""

    def __init__(self, spec: JobSpec) -> None:
        import ray

        self._ray = ray
        self._job_id = spec.job_id
        self._manager = ray.get_actor(spec.manager_name, namespace=spec.namespace)

    def progress(self, update: dict[str, Any]) -> None:
        try:
            self._manager.report_progress.remote(self._job_id, update)  # fire-and-forget
        except Exception:  # a restarting manager must not kill the run
            pass

    def stop_requested(self) -> bool:
        try:
            return bool(self._ray.get(self._manager.stop_requested.remote(self._job_id), timeout=10))
        except Exception:
            return False


def train_worker(config: dict[str, Any]) -> dict[str, Any]:
    import ray.train

    spec = JobSpec.model_validate(config)
    rank = ray.train.get_context().get_world_rank()
    return run_training(spec, ManagerLink(spec), is_main=rank == 0)


def load_examples(spec: JobSpec):
    """The dataset as TRL prompt/completion pairs, split into train and eval."""
    from datasets import Dataset

    task = spec.request.task
    rows = []
    with open(spec.dataset_path, encoding="utf-8-sig") as handle:
        for line in handle:
            if line.strip():
                rows.append(to_prompt_completion(task, json.loads(line)))
    dataset = Dataset.from_list(rows)
    eval_size = int(len(rows) * spec.request.eval_split)
    if eval_size < 1:
        return dataset, None
    split = dataset.train_test_split(test_size=eval_size, seed=42, shuffle=True)
    return split["train"], split["test"]


def build_sft_config(spec: JobSpec, output_dir: str, has_eval: bool):
    from trl import SFTConfig

    req, opts = spec.request, spec.options
    return SFTConfig(
        output_dir=output_dir,
        num_train_epochs=req.num_train_epochs,
        max_steps=req.max_steps,
        per_device_train_batch_size=req.per_device_train_batch_size,
        per_device_eval_batch_size=req.per_device_eval_batch_size,
        gradient_accumulation_steps=req.gradient_accumulation_steps,
        gradient_checkpointing=opts.gradient_checkpointing,
        max_grad_norm=req.max_grad_norm,
        learning_rate=req.learning_rate,
        weight_decay=req.weight_decay,
        optim=opts.optim,
        lr_scheduler_type=req.lr_scheduler_type,
        # transformers 5 folds warmup_ratio into warmup_steps (a float in [0, 1) is a ratio).
        warmup_steps=req.warmup_ratio if req.warmup_ratio < 1 else 1.0 - 1e-9,
        train_sampling_strategy="group_by_length" if req.group_by_length else "random",
        packing=req.packing,
        max_length=req.max_seq_length or 512,
        fp16=opts.fp16,
        bf16=opts.bf16,
        use_cpu=not opts.use_gpu,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=req.eval_steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
        seed=42,
    )


def run_training(spec: JobSpec, link: JobLink, *, is_main: bool) -> dict[str, Any]:
    from peft import LoraConfig
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    req = spec.request
    model, tokenizer = load_causal_lm(
        spec.model_source, Path(spec.builtin_dir), trust_remote_code=spec.trust_remote_code
    )
    train_set, eval_set = load_examples(spec)
    lora = LoraConfig(
        r=req.lora_r, lora_alpha=req.lora_alpha, lora_dropout=req.lora_dropout,
        target_modules="all-linear", task_type="CAUSAL_LM",
    )
    progress = ProgressCallback(link, is_main=is_main)
    with tempfile.TemporaryDirectory(prefix=f"{spec.job_id}-") as scratch:
        trainer = SFTTrainer(
            model=model,
            args=build_sft_config(spec, scratch, eval_set is not None),
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[progress],
        )
        # Progress goes to the manager; the console printer only adds log noise.
        trainer.remove_callback(PrinterCallback)
        started = time.monotonic()
        trainer.train()
        if progress.stopped:
            return {"stopped": True}
        metrics = _final_metrics(trainer, eval_set is not None)
        metrics["train_runtime_s"] = round(time.monotonic() - started, 3)
        if is_main:
            link.progress({k: metrics[k] for k in ("eval_loss",) if metrics.get(k) is not None})
            save_adapter(trainer, tokenizer, spec, metrics)
    return {"stopped": False, "metrics": metrics}


def _final_metrics(trainer, has_eval: bool) -> dict[str, Any]:
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    metrics: dict[str, Any] = {
        "final_loss": losses[-1] if losses else None,
        "first_loss": losses[0] if losses else None,
        "eval_loss": None,
        "perplexity": None,
        "train_steps": trainer.state.global_step,
    }
    if has_eval:
        eval_loss = trainer.evaluate()["eval_loss"]
        metrics["eval_loss"] = eval_loss
        metrics["perplexity"] = math.exp(eval_loss) if eval_loss < 50 else math.inf
    return metrics


def save_adapter(trainer, tokenizer, spec: JobSpec, metrics: dict[str, Any]) -> None:
    """Write adapter, tokenizer and forge.json to spec.output_dir, atomically."""
    import peft
    import transformers
    import trl

    final = Path(spec.output_dir)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    trainer.model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    meta = {
        "job_id": spec.job_id,
        "task": spec.request.task,
        "base_model": spec.request.model_name,
        "base_model_source": spec.model_source,
        "request": spec.request.model_dump(mode="json"),
        "options": spec.options.model_dump(mode="json"),
        "metrics": metrics,
        "versions": {"transformers": transformers.__version__, "trl": trl.__version__, "peft": peft.__version__},
    }
    (partial / "forge.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
