"""What the jobs wing's tests share: settings, storage and a real SQLite registry on tmp_path, a feed,
a tracker, and small helpers that write real JSONL datasets and adapters.

No Ray here. Where the tracker needs what only Ray knows (the checkpoint Ray Train
recorded, killing a runner), the tests hand it the answer and record the request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from forge.feed import ChangeFeed
from forge.jobs.admission import Admission
from forge.jobs.tracker import ActiveJob, JobTracker
from forge.registry import DatasetRecord, Registry
from forge.schemas import TrainingRequest, utc_iso
from forge.settings import Settings
from forge.storage import Storage
from forge.training.options import Hardware, resolve_options
from forge.training.spec import JobSpec
from forge.unsloth_env import ProviderStatus


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the feed and the manager run on asyncio


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    root.mkdir()
    return root


@pytest.fixture
def settings(tmp_path: Path, dataset_root: Path) -> Settings:
    return Settings(home=tmp_path / "home", storage=str(tmp_path / "storage"), dataset_roots=[dataset_root],
                    max_worker_failures=2)


@pytest.fixture
def storage(settings: Settings) -> Storage:
    storage = Storage(settings)
    storage.ensure_dirs()
    return storage


@pytest.fixture
def registry(storage: Storage):
    registry = Registry(storage.database)
    yield registry
    registry.close()


@pytest.fixture
def feed() -> ChangeFeed:
    return ChangeFeed()


class RunnerKills:
    """Stands in for Ray: the recorded checkpoint step of each job, and the kills the tracker asks for."""

    def __init__(self) -> None:
        self.checkpoints: dict[str, int] = {}
        self.killed: list[str] = []

    def checkpoint_step(self, job_id: str) -> Optional[int]:
        return self.checkpoints.get(job_id)

    def kill(self, job: ActiveJob) -> None:
        self.killed.append(job.record.job_id)


@pytest.fixture
def ray_side() -> RunnerKills:
    return RunnerKills()


@pytest.fixture
def tracker(registry: Registry, storage: Storage, feed: ChangeFeed, ray_side: RunnerKills) -> JobTracker:
    return JobTracker(registry, storage, feed, checkpoint_step=ray_side.checkpoint_step, kill_runner=ray_side.kill)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def dataset_file(dataset_root: Path):
    """Writes rows as a JSONL file under FORGE_DATASET_ROOTS; returns its path."""
    return lambda name, rows: _write_jsonl(dataset_root / name, rows)


@pytest.fixture
def admission(settings: Settings, storage: Storage, registry: Registry) -> Admission:
    async def no_unsloth() -> ProviderStatus:
        return ProviderStatus(available=False, detail="no unsloth venv in the unit tests")
    return Admission(settings, storage, registry, no_unsloth)


@pytest.fixture
def upload(storage: Storage, registry: Registry):
    """A dataset as an upload leaves it: the file in storage, its row in the registry."""
    def upload(filename: str, rows: list[dict[str, Any]], row_format: str) -> None:
        path = _write_jsonl(Path(storage.dataset_path(filename)), rows)
        registry.add_dataset(DatasetRecord(filename=filename, format=row_format, num_examples=len(rows),
                                           size_bytes=path.stat().st_size, uploaded_at=utc_iso()))
    return upload


@pytest.fixture
def open_job(tracker: JobTracker, storage: Storage):
    """Makes a queued job active, as the manager's launch does; returns its ActiveJob."""
    def open_job(job_id: str = "train_0001", hardware: Hardware = Hardware(cpus=2), **fields: Any) -> ActiveJob:
        request = TrainingRequest(**{"task": "text-generation", "model_name": "forge/tiny-llama",
                                     "dataset": "pairs.jsonl", "num_train_epochs": 2, **fields})
        options, notes = resolve_options(request, hardware)
        record = tracker.registry.add_job(job_id, request.model_dump(mode="json", exclude_unset=True),
                                          status="queued")
        spec = JobSpec(job_id=job_id, request=request, options=options, model_source="forge/tiny-llama",
                       dataset_path="pairs.jsonl", dataset_format="pairs",
                       output_dir=storage.uri(storage.staging_dir(job_id)), builtin_dir=str(storage.builtin_dir),
                       runs_dir=storage.uri(storage.runs_dir), manager_name="unused", namespace="unused",
                       max_failures=2)
        return tracker.open(record, spec, notes)
    return open_job


@pytest.fixture
def write_adapter(storage: Storage):
    """What rank 0 leaves in staging when a run finishes: adapter files and forge.json."""
    def write_adapter(job_id: str) -> Path:
        staging = Path(storage.staging_dir(job_id))
        staging.mkdir(parents=True, exist_ok=True)
        (staging / "adapter_model.safetensors").write_bytes(b"\0" * 64)
        (staging / "forge.json").write_text(json.dumps({"job_id": job_id}))
        return staging
    return write_adapter
