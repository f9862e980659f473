"""The API process stays light: importing the Serve app never imports torch, transformers or TRL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_building_the_app_imports_no_heavy_library(tmp_path: Path):
    probe = (
        "import sys\n"
        "import deployments.app\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'unsloth') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "FORGE_HOME": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_a_jobs_runner_imports_no_training_stack(tmp_path: Path):
    # The runner only hands Ray Train the entry point; the training stack loads in the workers.
    probe = (
        "import sys\n"
        "import forge.training.runner as runner\n"
        "from ray import cloudpickle\n"
        "cloudpickle.loads(cloudpickle.dumps(runner.train_worker_huggingface))\n"
        "heavy = sorted(m for m in ('transformers', 'trl', 'peft', 'unsloth') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "FORGE_HOME": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
