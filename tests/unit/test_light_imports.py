"""The API process stays light: importing the Serve app never imports torch, transformers or TRL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def heavy_modules_after(statements: str, home: Path, candidates: tuple[str, ...]) -> list[str]:
    """Which of `candidates` a fresh interpreter has imported after running `statements`."""
    probe = f"import sys\n{statements}\nprint(','.join(sorted(m for m in {candidates!r} if m in sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "FORGE_HOME": str(home), "HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    return [m for m in result.stdout.strip().split(",") if m]


def test_building_the_app_imports_no_heavy_library(tmp_path: Path):
    assert heavy_modules_after("import deployments.app", tmp_path,
                               ("torch", "transformers", "trl", "peft", "unsloth")) == []


def test_a_jobs_runner_imports_no_training_stack(tmp_path: Path):
    # The runner only hands Ray Train the entry point; the training stack loads in the workers.
    statements = ("import forge.jobs.runners as runners\n"
                  "from ray import cloudpickle\n"
                  "cloudpickle.loads(cloudpickle.dumps(runners.train_worker_huggingface))\n"
                  "cloudpickle.loads(cloudpickle.dumps(runners.train_worker_unsloth))")
    assert heavy_modules_after(statements, tmp_path, ("transformers", "trl", "peft", "unsloth")) == []


def test_the_probe_sees_a_heavy_import(tmp_path: Path):
    # The two checks above can only fail if the probe notices an import at all.
    assert heavy_modules_after("import peft", tmp_path, ("peft", "unsloth")) == ["peft"]


def test_the_playground_and_modeling_wings_import_nothing_of_training(tmp_path: Path):
    # The playground serves trained models with the modeling wing alone; training code
    # (and its Ray Train wiring) never loads in a playground replica.
    statements = ("import importlib, pkgutil, forge.modeling\n"
                  "for module in pkgutil.iter_modules(forge.modeling.__path__):\n"
                  "    importlib.import_module('forge.modeling.' + module.name)\n"
                  "import forge.playground.adapter_cache, forge.playground.responder")
    # forge.modeling.model_card in the answer shows that the loop above imported the wing's modules.
    found = heavy_modules_after(statements, tmp_path, ("forge.training", "forge.jobs", "forge.modeling.model_card"))
    assert found == ["forge.modeling.model_card"]


def test_task_scores_load_rouge_only_when_scoring(tmp_path: Path):
    assert heavy_modules_after("import forge.training.task_scores", tmp_path,
                               ("rouge_score", "nltk", "numpy", "torch")) == []
    assert heavy_modules_after("from forge.training.task_scores import rouge_scores\nrouge_scores(['a b'], ['a c'])",
                               tmp_path, ("rouge_score", "torch")) == ["rouge_score"]
