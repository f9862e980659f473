"""OpenAI's fine-tuning half through the official `openai` SDK, over real HTTP, against the session's service.

A team's existing OpenAI code, pointed at this service: it uploads a chat file, fine-tunes
forge/tiny-llama on it (a real Ray Train job), follows the job's events and calls the
fine-tuned model; a DPO job from OpenAI-style preference rows is followed to a
checkpoint and cancelled. Files are the service's datasets and jobs its jobs: each
object is also checked through /api.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest
from support import Service, wait_until

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration

QUESTIONS = [(f"What is {a} plus {b}?", str(a + b)) for a in range(1, 5) for b in range(1, 4)]  # 12 rows


def chat_rows() -> list[dict]:
    return [{"messages": [{"role": "system", "content": "You add numbers."}, {"role": "user", "content": q},
                          {"role": "assistant", "content": a}]} for q, a in QUESTIONS]


def preference_rows() -> list[dict]:
    return [{"input": {"messages": [{"role": "user", "content": q}]},
             "preferred_output": [{"role": "assistant", "content": a}],
             "non_preferred_output": [{"role": "assistant", "content": f"{a}0"}]} for q, a in QUESTIONS]


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def client(service: Service) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def chat_file(client: openai.OpenAI, tmp_path_factory: pytest.TempPathFactory) -> openai.types.FileObject:
    path = jsonl(tmp_path_factory.mktemp("ft") / "ft-chat.jsonl", chat_rows())
    with path.open("rb") as handle:
        return client.files.create(file=handle, purpose="fine-tune")


def wait_for_job(client: openai.OpenAI, job_id: str, done, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(1)


def test_a_file_is_a_dataset_and_reads_back_as_sent(client: openai.OpenAI, service: Service,
                                                    chat_file: openai.types.FileObject, tmp_path: Path):
    assert (chat_file.id, chat_file.filename, chat_file.purpose, chat_file.status) == (
        "ft-chat.jsonl", "ft-chat.jsonl", "fine-tune", "processed")
    datasets = {d["filename"]: d for d in service.get("/api/datasets").json()["datasets"]}
    assert datasets[chat_file.id]["format"] == "chat" and datasets[chat_file.id]["num_examples"] == len(QUESTIONS)
    assert client.files.retrieve(chat_file.id).bytes == chat_file.bytes
    content = client.files.content(chat_file.id).read()
    assert [json.loads(line) for line in content.splitlines()] == chat_rows()
    assert chat_file.id in [f.id for f in client.files.list()]

    # A file with bad lines is refused with their numbers, and nothing is stored.
    before = [f.id for f in client.files.list()]
    bad = jsonl(tmp_path / "ft-bad.jsonl", [*chat_rows()[:11], {"messages": "hello"}, {"prompt": "x"}])
    with pytest.raises(openai.BadRequestError) as refused, bad.open("rb") as handle:
        client.files.create(file=handle, purpose="fine-tune")
    assert "line 12" in refused.value.message and "line 13" in refused.value.message
    assert [f.id for f in client.files.list()] == before
    with pytest.raises(openai.BadRequestError) as wrong_purpose, bad.open("rb") as handle:
        client.files.create(file=handle, purpose="batch")
    assert wrong_purpose.value.body["param"] == "purpose"
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("no-such-file.jsonl")


def test_a_supervised_job_succeeds_and_its_model_answers_at_once(
        client: openai.OpenAI, service: Service, chat_file: openai.types.FileObject, tmp_path: Path):
    with jsonl(tmp_path / "ft-held-out.jsonl", chat_rows()[:10]).open("rb") as handle:
        held_out = client.files.create(file=handle, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="forge/tiny-llama", training_file=chat_file.id, validation_file=held_out.id, suffix="adder", seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 25}}})
    assert job.status in ("queued", "running") and job.fine_tuned_model is None
    assert (job.model, job.training_file, job.validation_file, job.seed) == (
        "forge/tiny-llama", chat_file.id, held_out.id, 7)
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (2, 4)
    # The same job through /api: the request as sent there.
    request = service.get(f"/api/jobs/{job.id}").json()["request"]
    assert (request["strategy"], request["per_device_train_batch_size"], request["eval_dataset"]) == (
        "sft", 4, held_out.id)
    assert job.id in [j.id for j in client.fine_tuning.jobs.list(limit=5)]

    done = wait_for_job(client, job.id, lambda j: j.status in ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    assert "-adder-" in done.fine_tuned_model and done.finished_at >= done.created_at
    assert done.trained_tokens and done.trained_tokens > 0
    assert service.status(job.id)["status"] == "completed"

    # Every event, a page of 4 at a time through the SDK's cursor: newest first, none twice.
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=4))
    assert len({e.id for e in events}) == len(events)
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    steps = [e.data for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert sorted(s["step"] for s in steps) == list(range(1, 7))  # 12 rows / batch 4 x 2 epochs
    assert any("valid_loss" in e.data for e in events if e.type == "metrics"), "the held-out file was evaluated"
    assert events[0].type == "message" and "completed" in events[0].message.lower()

    def ask(**options) -> str:
        reply = client.chat.completions.create(model=done.fine_tuned_model, temperature=0, max_tokens=8,
                                               messages=[{"role": "user", "content": "What is 2 plus 2?"}], **options)
        if options.get("stream"):
            return "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
        return reply.choices[0].message.content

    whole = ask()
    assert whole and ask(stream=True) == whole


def test_a_dpo_job_from_openai_preference_rows_checkpoints_and_is_cancelled(
        client: openai.OpenAI, service: Service, tmp_path: Path):
    with jsonl(tmp_path / "ft-prefer.jsonl", preference_rows()).open("rb") as handle:
        pairs = client.files.create(file=handle, purpose="fine-tune")
    assert service.get(f"/api/datasets/{pairs.id}").json()["format"] == "preference"
    job = client.fine_tuning.jobs.create(model="forge/tiny-llama", training_file=pairs.id, method={
        "type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 50, "batch_size": 1}}})
    assert (job.method.type, job.hyperparameters.beta) == ("dpo", 0.2)

    # Checkpoints every 10 steps (12 steps an epoch): cancel once one is listed.
    wait_until(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data, "a DPO checkpoint", timeout=180)
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job.id).data[0]
    assert checkpoint.step_number >= 10 and checkpoint.fine_tuning_job_id == job.id
    assert checkpoint.metrics.train_loss is not None
    assert checkpoint.fine_tuned_model_checkpoint.endswith(f"-step{checkpoint.step_number}")

    client.fine_tuning.jobs.cancel(job.id)
    cancelled = wait_for_job(client, job.id, lambda j: j.status != "running")
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None
    assert service.status(job.id)["status"] in TERMINAL_STATUSES
    with pytest.raises(openai.ConflictError):  # it ended: nothing left to cancel
        client.fine_tuning.jobs.cancel(job.id)


def test_jobs_started_through_api_are_listed_too_and_errors_are_the_sdk_s(
        client: openai.OpenAI, trained_models: list[dict], chat_file: openai.types.FileObject):
    listed = {j.id: j for j in client.fine_tuning.jobs.list(limit=100)}
    for final in trained_models:  # /api/start_training jobs with their registered models
        assert listed[final["job_id"]].status == "succeeded" and listed[final["job_id"]].fine_tuned_model

    with pytest.raises(openai.NotFoundError) as missing_file:
        client.fine_tuning.jobs.create(model="forge/tiny-llama", training_file="no-such-file.jsonl")
    assert missing_file.value.body["param"] == "training_file"
    with pytest.raises(openai.BadRequestError) as bad_epochs:
        client.fine_tuning.jobs.create(model="forge/tiny-llama", training_file=chat_file.id,
                                       hyperparameters={"n_epochs": 0})
    assert "n_epochs" in bad_epochs.value.body["param"]
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="./no-such-model", training_file=chat_file.id)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("train_000000000000")
