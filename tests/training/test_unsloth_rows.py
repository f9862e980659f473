"""Provider unsloth's qlora, dpo and plain-text sft rows, trained in its own venv, answered by the core's playground.

The REST path of an unsloth job (its runner and workers in the unsloth venv through
Ray's runtime_env) is tests/integration/test_unsloth_provider.py's sft job; qlora and
dpo differ from it only in their recipe, so they train here, in one process of the
unsloth venv (unsloth_rows.py), without a Ray Train start-up each. The adapters they
write are standard PEFT folders: this process, in the core environment, loads them
with the playground's own code.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from forge.builtin import ensure_builtin
from forge.modeling.model_card import ModelCard
from forge.playground.responder import load_trained_model, respond
from forge.schemas import GenerateRequest

REPO = Path(__file__).resolve().parents[2]
UNSLOTH_PYTHON = REPO / ".venv-unsloth" / "bin" / "python"
SCRIPT = Path(__file__).with_name("unsloth_rows.py")


@pytest.fixture(scope="module")
def rows(builtin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    # Built here, in the core venv, as the runner builds it before any worker starts.
    ensure_builtin("forge/tiny-llama", builtin_dir)
    workdir = tmp_path_factory.mktemp("unsloth_rows")
    done = subprocess.run([str(UNSLOTH_PYTHON), str(SCRIPT), str(workdir), str(builtin_dir)],
                          capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((workdir / "facts.json").read_text())


def _ran_unsloths_stack(folder: Path) -> dict:
    meta = json.loads((folder / "forge.json").read_text())
    assert meta["request"]["provider"] == "unsloth"
    assert meta["unsloth_imported"] is True
    assert meta["versions"]["unsloth"] == "2026.10.9" and meta["versions"]["trl"] == "1.15.0"
    return meta


def test_unsloth_qlora_trains_and_the_core_playground_answers_with_it(rows: dict, builtin_dir: Path):
    row = rows["qlora"]
    assert row["stopped"] is False
    metrics = row["metrics"]
    assert metrics["final_loss"] < metrics["first_loss"]
    assert math.isfinite(metrics["perplexity"])
    folder = Path(row["folder"])
    _ran_unsloths_stack(folder)
    assert ModelCard.read(folder).strategy == "qlora"

    generate = GenerateRequest(model_id=1, prompt="What is 2 plus 3?", max_new_tokens=8, temperature=0, top_p=1.0)
    answer = respond(load_trained_model(folder, builtin_dir), generate)
    assert isinstance(answer["generated_text"], str)
    assert 0 <= answer["tokens_generated"] <= 8


def test_unsloth_dpo_trains_and_keeps_only_the_trained_adapter(rows: dict):
    row = rows["dpo"]
    assert row["stopped"] is False
    assert row["metrics"]["train_reward_accuracy"] > 0.5
    folder = Path(row["folder"])
    _ran_unsloths_stack(folder)
    assert (folder / "adapter_model.safetensors").is_file()
    assert not (folder / "ref").exists()


def test_unsloth_sft_trains_on_plain_text_rows(rows: dict, builtin_dir: Path):
    row = rows["text"]
    assert row["stopped"] is False
    assert row["metrics"]["final_loss"] < row["metrics"]["first_loss"]
    folder = Path(row["folder"])
    _ran_unsloths_stack(folder)
    generate = GenerateRequest(model_id=1, prompt="What is the capital of Spain?", max_new_tokens=8, temperature=0,
                               top_p=1.0)
    assert isinstance(respond(load_trained_model(folder, builtin_dir), generate)["generated_text"], str)
