"""Round-trips through the SQLite Registry: datasets, jobs, events, metrics, models."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.registry import DatasetRecord, JobEvent, Registry

REQUEST = {"task": "text-generation", "model_name": "forge/tiny-llama", "dataset": "d.jsonl"}
MODEL_FIELDS = {
    "name": "my-model",
    "base_model": "forge/tiny-llama",
    "task": "text-generation",
    "provider": "huggingface",
    "strategy": "sft",
    "training_params": {"num_epochs": 2, "batch_size": 1, "learning_rate": 0.0002},
    "metrics": {"train_loss": 1.25, "eval_loss": None},
    "job_id": "job-1",
}


@pytest.fixture
def registry(tmp_path):
    reg = Registry(tmp_path / "state" / "registry.db")
    yield reg
    reg.close()


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _placer(root: Path):
    def place_files(model_id: int) -> Path:
        target = root / f"model-{model_id}"
        target.mkdir(parents=True)
        (target / "adapter.bin").write_bytes(b"x" * 123)
        return target

    return place_files


# ---------------------------------------------------------------- datasets


def test_creates_parent_directory(tmp_path):
    reg = Registry(tmp_path / "a" / "b" / "r.db")
    try:
        assert (tmp_path / "a" / "b" / "r.db").is_file()
    finally:
        reg.close()


def test_dataset_round_trip(registry):
    first = DatasetRecord(filename="b.jsonl", format="pairs", num_examples=10, size_bytes=2048,
                          uploaded_at="2024-01-01T00:00:00.000000Z")
    second = DatasetRecord(filename="a.jsonl", format=None, num_examples=3, size_bytes=99,
                           uploaded_at="2024-01-02T00:00:00.000000Z")
    registry.add_dataset(first)
    registry.add_dataset(second)
    assert registry.get_dataset("b.jsonl") == first
    assert registry.get_dataset("a.jsonl") == second
    assert registry.get_dataset("missing.jsonl") is None
    assert registry.list_datasets() == [first, second]  # ordered by uploaded_at


def test_empty_registry(registry):
    assert registry.list_datasets() == []
    assert registry.list_models() == []
    assert registry.latest_job() is None
    assert registry.get_job("nope") is None
    assert registry.get_model(1) is None
    assert registry.events("nope") == []
    assert registry.metrics("nope") == []


# -------------------------------------------------------------------- jobs


def test_job_round_trip(registry):
    added = registry.add_job("job-1", REQUEST, "queued")
    assert added.job_id == "job-1"
    assert added.status == "queued"
    assert added.request == REQUEST
    assert added.created_at == added.updated_at
    assert added.created_at.endswith("Z")

    fetched = registry.get_job("job-1")
    assert fetched == added
    assert fetched.progress == 0.0
    assert fetched.total_steps == 0
    assert fetched.loss is None
    assert fetched.finished_at is None


def test_update_job(registry):
    added = registry.add_job("job-1", REQUEST, "queued")
    registry.update_job("job-1", status="training", progress=0.5, current_step=5, total_steps=10,
                        loss=1.5, learning_rate=1e-4, current_epoch=0.5, total_epochs=1, message="going")
    job = registry.get_job("job-1")
    assert job.status == "training"
    assert job.progress == 0.5
    assert job.current_step == 5
    assert job.total_steps == 10
    assert job.loss == 1.5
    assert job.learning_rate == 1e-4
    assert job.current_epoch == 0.5
    assert job.total_epochs == 1
    assert job.message == "going"
    assert job.request == REQUEST
    assert job.created_at == added.created_at
    assert job.updated_at >= added.updated_at

    registry.update_job("job-1", status="completed", model_id=7, finished_at="2030-01-01T00:00:00.000000Z")
    job = registry.get_job("job-1")
    assert (job.status, job.model_id, job.finished_at) == ("completed", 7, "2030-01-01T00:00:00.000000Z")


def test_update_job_unknown_column(registry):
    registry.add_job("job-1", REQUEST, "queued")
    with pytest.raises(ValueError, match="bogus"):
        registry.update_job("job-1", status="failed", bogus=1)
    assert registry.get_job("job-1").status == "queued"


def test_latest_job_and_jobs_with_status(registry):
    registry.add_job("job-1", REQUEST, "completed")
    registry.add_job("job-2", REQUEST, "queued")
    registry.add_job("job-3", {**REQUEST, "lora_r": 8}, "training")
    latest = registry.latest_job()
    assert latest.job_id == "job-3"
    assert latest.request["lora_r"] == 8

    active = registry.jobs_with_status({"queued", "training"})
    assert [j.job_id for j in active] == ["job-2", "job-3"]
    assert [j.job_id for j in registry.jobs_with_status({"completed"})] == ["job-1"]
    assert registry.jobs_with_status({"failed"}) == []

    registry.update_job("job-2", status="failed")
    assert [j.job_id for j in registry.jobs_with_status({"queued", "training"})] == ["job-3"]
    assert registry.latest_job().job_id == "job-3"


def test_events_in_order(registry):
    registry.add_job("job-1", REQUEST, "queued")
    registry.add_job("job-2", REQUEST, "queued")
    registry.add_event("job-1", "status", "queued")
    registry.add_event("job-2", "status", "other job")
    registry.add_event("job-1", "note", "optim substituted")
    registry.add_event("job-1", "status", "training")
    events = registry.events("job-1")
    assert [(e.kind, e.message) for e in events] == [
        ("status", "queued"), ("note", "optim substituted"), ("status", "training"),
    ]
    assert all(isinstance(e, JobEvent) and e.at.endswith("Z") for e in events)
    assert [(e.kind, e.message) for e in registry.events("job-2")] == [("status", "other job")]


def test_metrics_in_order(registry):
    registry.add_job("job-1", REQUEST, "training")
    registry.add_metrics("job-1", 10, {"loss": 2.0, "learning_rate": 1e-4})
    registry.add_metrics("job-1", 20, {"loss": 1.5})
    registry.add_metrics("job-1", 20, {"eval_loss": 1.7})
    assert registry.metrics("job-1") == [
        {"step": 10, "loss": 2.0, "learning_rate": 1e-4},
        {"step": 20, "loss": 1.5},
        {"step": 20, "eval_loss": 1.7},
    ]


def test_events_and_metrics_are_read_a_page_at_a_time(registry):
    registry.add_job("job-1", REQUEST, "training")
    for step in range(1, 6):
        registry.add_event("job-1", "checkpoint", f"checkpoint saved at step {step}")
        registry.add_metrics("job-1", step, {"loss": 1.0 / step})
    assert [e.message[-1] for e in registry.events("job-1", offset=1, limit=2)] == ["2", "3"]
    assert [e.message[-1] for e in registry.events("job-1", offset=4, limit=2)] == ["5"]
    assert registry.events("job-1", offset=5, limit=2) == []
    assert [m["step"] for m in registry.metrics("job-1", offset=3, limit=10)] == [4, 5]
    assert len(registry.metrics("job-1")) == 5


def test_deleting_a_job_forgets_its_history_and_keeps_its_models_and_other_jobs(registry):
    for job_id in ("job-1", "job-2"):
        registry.add_job(job_id, REQUEST, "completed")
        registry.add_event(job_id, "completed", "Training completed")
        registry.add_metrics(job_id, 1, {"loss": 1.0})
    model = registry.add_model(place_files=lambda model_id: f"/models/{model_id}", size_bytes=lambda path: 1,
                               **MODEL_FIELDS)
    assert registry.delete_job("job-1")
    assert registry.get_job("job-1") is None
    assert registry.events("job-1") == [] and registry.metrics("job-1") == []
    assert registry.get_model(model.id) == model  # its model (job-1's) stays
    assert [e.kind for e in registry.events("job-2")] == ["completed"] and registry.metrics("job-2")
    assert not registry.delete_job("job-1")


def test_a_resumed_run_replaces_the_history_after_its_checkpoint(registry):
    registry.add_job("job-1", REQUEST, "training")
    registry.add_job("job-2", REQUEST, "training")
    for step in (1, 2, 3, 4):
        registry.add_metrics("job-1", step, {"loss": 5.0 - step})
    registry.add_metrics("job-2", 4, {"loss": 9.0})
    registry.forget_metrics_after("job-1", 2)  # resumed from the checkpoint at step 2
    registry.add_metrics("job-1", 3, {"loss": 1.5})
    assert registry.metrics("job-1") == [{"step": 1, "loss": 4.0}, {"step": 2, "loss": 3.0}, {"step": 3, "loss": 1.5}]
    assert registry.metrics("job-2") == [{"step": 4, "loss": 9.0}]


# ------------------------------------------------------------------ models


def test_add_model(registry, tmp_path):
    model = registry.add_model(place_files=_placer(tmp_path / "models"), size_bytes=_dir_size, **MODEL_FIELDS)
    assert model.id == 1
    assert isinstance(model.id, int)
    assert model.name == "my-model"
    assert model.base_model == "forge/tiny-llama"
    assert model.task == "text-generation"
    assert model.provider == "huggingface"
    assert model.strategy == "sft"
    assert model.training_params == {"num_epochs": 2, "batch_size": 1, "learning_rate": 0.0002}
    assert model.metrics == {"train_loss": 1.25, "eval_loss": None}
    assert model.job_id == "job-1"
    assert model.path == str(tmp_path / "models" / "model-1")
    assert model.size_bytes == 123
    assert (tmp_path / "models" / "model-1" / "adapter.bin").read_bytes() == b"x" * 123
    assert model.created_at.endswith("Z")

    second = registry.add_model(place_files=_placer(tmp_path / "models"), size_bytes=_dir_size,
                                **{**MODEL_FIELDS, "name": "second", "job_id": None})
    assert second.id == 2
    assert second.job_id is None
    assert second.path == str(tmp_path / "models" / "model-2")

    assert registry.list_models() == [model, second]
    assert registry.get_model(1) == model
    assert registry.get_model(2) == second
    assert registry.get_model(3) is None


def test_delete_model(registry, tmp_path):
    model = registry.add_model(place_files=_placer(tmp_path), size_bytes=_dir_size, **MODEL_FIELDS)
    assert registry.delete_model(model.id) is True
    assert registry.delete_model(model.id) is False
    assert registry.get_model(model.id) is None
    assert registry.list_models() == []
    assert registry.delete_model(999) is False


def test_add_model_rolls_back_when_place_files_fails(registry, tmp_path):
    def failing_place(model_id: int) -> Path:
        raise OSError(f"disk full while placing model {model_id}")

    with pytest.raises(OSError, match="disk full while placing model 1"):
        registry.add_model(place_files=failing_place, size_bytes=_dir_size, **MODEL_FIELDS)
    assert registry.list_models() == []
    assert registry.get_model(1) is None

    # The registry is still usable afterwards (the transaction was closed).
    model = registry.add_model(place_files=_placer(tmp_path), size_bytes=_dir_size, **MODEL_FIELDS)
    assert model.id == 1  # the failed insert was rolled back, sequence included
    assert registry.list_models() == [model]


def test_add_model_rolls_back_when_size_fails(registry, tmp_path):
    def bad_size(path: Path) -> int:
        raise RuntimeError("cannot stat")

    with pytest.raises(RuntimeError, match="cannot stat"):
        registry.add_model(place_files=_placer(tmp_path), size_bytes=bad_size, **MODEL_FIELDS)
    assert registry.list_models() == []


# ------------------------------------------------------------- persistence


def test_data_survives_reopen(tmp_path):
    db = tmp_path / "registry.db"
    first = Registry(db)
    dataset = DatasetRecord(filename="d.jsonl", format="pairs", num_examples=5, size_bytes=10,
                            uploaded_at="2024-01-01T00:00:00.000000Z")
    first.add_dataset(dataset)
    first.add_job("job-1", REQUEST, "queued")
    first.update_job("job-1", status="completed", progress=1.0)
    first.add_event("job-1", "status", "completed")
    first.add_metrics("job-1", 3, {"loss": 0.5})
    model = first.add_model(place_files=_placer(tmp_path / "models"), size_bytes=_dir_size, **MODEL_FIELDS)
    first.close()

    second = Registry(db)
    try:
        assert second.list_datasets() == [dataset]
        job = second.get_job("job-1")
        assert (job.status, job.progress, job.request) == ("completed", 1.0, REQUEST)
        assert [(e.kind, e.message) for e in second.events("job-1")] == [("status", "completed")]
        assert second.metrics("job-1") == [{"step": 3, "loss": 0.5}]
        assert second.list_models() == [model]
        next_model = second.add_model(place_files=_placer(tmp_path / "more"), size_bytes=_dir_size,
                                      **MODEL_FIELDS)
        assert next_model.id == 2
    finally:
        second.close()


def test_a_registry_from_before_started_at_and_options_gains_them_and_keeps_its_jobs(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE jobs (job_id TEXT PRIMARY KEY, status TEXT NOT NULL, request TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT, message TEXT,
            progress REAL NOT NULL DEFAULT 0, current_epoch REAL NOT NULL DEFAULT 0,
            total_epochs INTEGER NOT NULL DEFAULT 0, current_step INTEGER NOT NULL DEFAULT 0,
            total_steps INTEGER NOT NULL DEFAULT 0, loss REAL, learning_rate REAL, eval_loss REAL,
            model_id INTEGER);
        INSERT INTO jobs (job_id, status, request, created_at, updated_at)
            VALUES ('train_old', 'completed', '{"task": "text-generation"}', '2026-01-01T00:00:00.000000Z',
                    '2026-01-01T00:00:00.000000Z');
    """)
    old.close()
    reg = Registry(path)
    try:
        job = reg.get_job("train_old")
        assert job.status == "completed" and job.started_at is None and job.options is None
        reg.update_job("train_old", options={"optim": "adamw_torch"}, started_at="2026-01-01T00:00:01.000000Z")
        assert reg.get_job("train_old").options == {"optim": "adamw_torch"}
        assert [j.job_id for j in reg.list_jobs()] == ["train_old"]
    finally:
        reg.close()
    # Opening it again adds nothing twice.
    Registry(path).close()


def test_a_model_is_renamed_and_described_and_found_by_name(registry, tmp_path):
    model = registry.add_model(place_files=_placer(tmp_path), size_bytes=_dir_size, **MODEL_FIELDS)
    assert model.description is None and registry.model_named("my-model").id == model.id
    registry.update_model(model.id, name="support-bot", description="v1, trained on the FAQ")
    renamed = registry.get_model(model.id)
    assert (renamed.name, renamed.description) == ("support-bot", "v1, trained on the FAQ")
    assert registry.model_named("my-model") is None and registry.model_named("support-bot").id == model.id
    registry.update_model(model.id, description=None)
    assert registry.get_model(model.id).name == "support-bot" and registry.get_model(model.id).description is None
    with pytest.raises(ValueError, match="cannot be changed"):
        registry.update_model(model.id, path="/elsewhere")


def test_a_batch_commits_together_or_not_at_all(registry):
    registry.add_job("job-1", REQUEST, "training")
    with registry.batch():
        registry.update_job("job-1", current_step=1)
        registry.add_metrics("job-1", 1, {"loss": 2.0})
    with pytest.raises(RuntimeError):
        with registry.batch():
            registry.update_job("job-1", current_step=2)
            registry.add_metrics("job-1", 2, {"loss": 1.0})
            raise RuntimeError("the manager failed midway")
    assert registry.get_job("job-1").current_step == 1
    assert registry.metrics("job-1") == [{"step": 1, "loss": 2.0}]


def test_models_registered_before_merging_existed_are_adapters(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE models (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, base_model TEXT NOT NULL,
            task TEXT NOT NULL, provider TEXT NOT NULL, strategy TEXT NOT NULL, training_params TEXT NOT NULL,
            metrics TEXT NOT NULL, path TEXT NOT NULL, size_bytes INTEGER NOT NULL, created_at TEXT NOT NULL,
            job_id TEXT);
        INSERT INTO models (name, base_model, task, provider, strategy, training_params, metrics, path, size_bytes,
                            created_at)
            VALUES ('old-model', 'forge/tiny-llama', 'text-generation', 'huggingface', 'sft', '{}', '{}', '/m/1', 1,
                    '2026-01-01T00:00:00.000000Z');
    """)
    old.close()
    reg = Registry(path)
    try:
        assert reg.get_model(1).kind == "adapter" and reg.get_model(1).description is None
        merged = reg.add_model(place_files=_placer(tmp_path), size_bytes=_dir_size, kind="merged",
                               description="from 1", **{**MODEL_FIELDS, "name": "merged"})
        assert (reg.get_model(merged.id).kind, reg.get_model(merged.id).description) == ("merged", "from 1")
        assert [m.kind for m in reg.list_models()] == ["adapter", "merged"]
    finally:
        reg.close()
