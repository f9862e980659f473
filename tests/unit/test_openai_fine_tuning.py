"""OpenAI's fine-tuning objects and how they map onto this service's requests, jobs, events and checkpoints.

Pure mapping, no service: tests/integration/test_openai_fine_tuning_sdk.py runs the same
through the official SDK against the real one.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from forge.openai_fine_tuning import (
    FineTuningJobCreate,
    fine_tuning_job,
    message_event,
    metrics_event,
    page_after,
)
from forge.schemas import TrainingRequest

DEFAULT_RATE = TrainingRequest.model_fields["learning_rate"].default


def create(**fields: Any) -> FineTuningJobCreate:
    return FineTuningJobCreate.model_validate({"model": "forge/tiny-llama", "training_file": "chat.jsonl", **fields})


def test_a_bare_job_is_lora_sft_on_the_whole_file_with_the_service_defaults():
    request = create().to_training_request()
    assert (request.task, request.strategy, request.model_name, request.dataset) == (
        "text-generation", "sft", "forge/tiny-llama", "chat.jsonl")
    # No hold-out from the training file: OpenAI evaluates on a validation file only.
    assert request.eval_split == 0 and request.eval_dataset is None
    defaults = TrainingRequest(task="text-generation", model_name="m", dataset="d")
    assert (request.learning_rate, request.num_train_epochs, request.seed) == (
        defaults.learning_rate, defaults.num_train_epochs, defaults.seed)


def test_method_hyperparameters_become_the_request_s_fields():
    request = create(method={"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 2.5}}},
        validation_file="held-out.jsonl", suffix="support-bot", seed=7).to_training_request()
    assert request.num_train_epochs == 3
    # OpenAI's batch is the examples of one update: no accumulation on top.
    assert (request.per_device_train_batch_size, request.gradient_accumulation_steps) == (8, 1)
    assert request.learning_rate == pytest.approx(DEFAULT_RATE * 2.5)
    assert (request.eval_dataset, request.model_suffix, request.seed) == ("held-out.jsonl", "support-bot", 7)


def test_dpo_trains_with_its_beta_and_auto_leaves_the_default():
    request = create(method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.3, "n_epochs": "auto"}}}
                     ).to_training_request()
    assert (request.strategy, request.dpo_beta, request.num_train_epochs) == ("dpo", 0.3, 1)
    assert create(hyperparameters={"n_epochs": 2}).to_training_request().num_train_epochs == 2  # the older form


@pytest.mark.parametrize("fields,field", [
    ({"method": {"type": "reinforcement"}}, "method.type"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}}, "n_epochs"),
    ({"hyperparameters": {"learning_rate_multiplier": -1.0}}, "learning_rate_multiplier"),
    ({"suffix": "has space"}, "suffix"),
    ({"integrations": [{"type": "wandb"}]}, "integrations"),
    ({"metadata": {"team": "a"}}, "metadata"),
    ({"unknown_field": 1}, "unknown_field"),
])
def test_what_cannot_be_honoured_is_refused_naming_the_field(fields: dict, field: str):
    with pytest.raises(ValidationError) as caught:
        create(**fields)
    assert field in ".".join(map(str, caught.value.errors()[0]["loc"]))


def test_hyperparameters_in_method_and_at_the_top_are_refused_together():
    with pytest.raises(ValueError, match="not both"):
        create(method={"type": "supervised"}, hyperparameters={"n_epochs": 2}).to_training_request()


def detail(status: str, **fields: Any) -> dict[str, Any]:
    request = {"task": "text-generation", "model_name": "forge/tiny-llama", "dataset": "chat.jsonl",
               "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4, "num_workers": 2,
               "learning_rate": DEFAULT_RATE * 3, "seed": 5, **fields.pop("request", {})}
    return {"job_id": "train_abc", "status": status, "created_at": "2026-12-01T10:00:00Z",
            "finished_at": "2026-12-01T10:05:00Z", "estimated_finish": None, "message": "why", "request": request,
            **fields}


@pytest.mark.parametrize("status,openai_status", [
    ("queued", "queued"), ("starting", "running"), ("training", "running"), ("stopping", "running"),
    ("completed", "succeeded"), ("failed", "failed"), ("stopped", "cancelled"), ("interrupted", "failed"),
])
def test_every_job_status_has_its_openai_name(status: str, openai_status: str):
    job = fine_tuning_job(detail(status))
    assert job.status == openai_status
    assert (job.finished_at is not None) == (openai_status in ("succeeded", "failed", "cancelled"))
    # A failed job says why; one cut off by a restart says so under its own code.
    expected_code = {"failed": "training_failed", "interrupted": "interrupted"}.get(status)
    assert (job.error.code if job.error else None) == expected_code


def test_a_job_object_shows_the_request_as_openai_reads_it():
    job = fine_tuning_job(detail("completed", request={"strategy": "dpo", "dpo_beta": 0.2,
                                                       "eval_dataset": "held.jsonl"}),
                          fine_tuned_model="tiny-llama-dpo-abc", trained_tokens=1234)
    assert (job.id, job.model, job.training_file, job.validation_file) == (
        "train_abc", "forge/tiny-llama", "chat.jsonl", "held.jsonl")
    assert job.created_at == 1796119200 and job.finished_at == job.created_at + 300
    assert job.hyperparameters.batch_size == 2 * 4 * 2  # per device x accumulation x workers
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(3)
    assert (job.method.type, job.hyperparameters.beta, job.seed) == ("dpo", 0.2, 5)
    assert (job.fine_tuned_model, job.trained_tokens) == ("tiny-llama-dpo-abc", 1234)


def test_events_and_logged_steps_read_as_openai_events():
    failed = message_event(3, {"at": "2026-12-01T10:00:01Z", "kind": "failed", "message": "out of memory"})
    assert (failed.id, failed.level, failed.type, failed.message) == ("event-3", "error", "message", "out of memory")
    assert message_event(0, {"at": "2026-12-01T10:00:00Z", "kind": "substitution", "message": "x"}).level == "warn"
    step = metrics_event(0, {"step": 4, "loss": 1.5, "learning_rate": 1e-4, "logged_at": "2026-12-01T10:00:02Z"})
    assert step.type == "metrics" and step.data == {"step": 4, "train_loss": 1.5, "learning_rate": 1e-4}
    assert step.message.startswith("Step 4: train_loss 1.5")
    assert metrics_event(1, {"step": 6, "eval_loss": 0.5}).data == {"step": 6, "valid_loss": 0.5}


def test_cursor_pages_follow_after_and_say_whether_more_follow():
    ids = [f"id-{n}" for n in range(5)]
    assert page_after(ids, None, 2, id_of=str) == (["id-0", "id-1"], True)
    assert page_after(ids, "id-1", 2, id_of=str) == (["id-2", "id-3"], True)
    assert page_after(ids, "id-3", 2, id_of=str) == (["id-4"], False)
    assert page_after(ids, "gone", 2, id_of=str) == ([], False)
