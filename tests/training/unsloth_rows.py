"""The unsloth provider's qlora, dpo and plain-text sft rows, trained in-process in its venv; run by test_unsloth_rows.py.

    .venv-unsloth/bin/python tests/training/unsloth_rows.py <workdir> <builtin_dir>

Unsloth is imported first, as `train_worker_unsloth` does in a Ray Train worker, so
its patches apply to the transformers, TRL and PEFT this run uses. Each row trains
with `run_training` and a recording link; <workdir>/facts.json gets, per row, the
metrics, the recorded event kinds and the saved model's folder.
"""

from __future__ import annotations

import unsloth  # noqa: F401, I001  (first, before anything imports transformers)

import json
import sys
from pathlib import Path

from recording import RecordingLink, make_spec

from forge.training.entry import run_training

FAST = {"learning_rate": 5e-3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
        "num_train_epochs": 2, "provider": "unsloth"}
ROWS = {
    "qlora": {"dataset": "text_generation", "dataset_format": "pairs", "strategy": "qlora"},
    "dpo": {"dataset": "preference", "dataset_format": "preference", "strategy": "dpo"},
    # Plain language modelling through TRL 1.15's "text" field, as Unsloth's own notebooks train.
    "text": {"dataset": "text", "dataset_format": "text", "strategy": "sft"},
}


def main(workdir: Path, builtin_dir: Path) -> None:
    facts = {}
    for name, row in ROWS.items():
        spec = make_spec(workdir / name, builtin_dir, **row, **FAST)
        link = RecordingLink()
        outcome = run_training(spec, link, is_main=True)
        facts[name] = {"stopped": outcome["stopped"], "metrics": outcome.get("metrics", {}),
                       "event_kinds": [kind for kind, _ in link.events], "folder": spec.output_dir}
    (workdir / "facts.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
