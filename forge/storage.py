"""Where every file of the service lives.

All paths go through `Storage`, so that putting datasets, runs and models on
shared storage is a change to this module only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from forge.settings import Settings


class Storage:
    def __init__(self, settings: Settings) -> None:
        self.home = settings.home
        self.root = settings.storage

    # Local to the node that owns the registry / builds models.
    @property
    def database(self) -> Path:
        return self.home / "forge.db"

    @property
    def builtin_dir(self) -> Path:
        return self.home / "builtin"

    # Shared between the manager, training workers and playground replicas.
    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def dataset_path(self, filename: str) -> Path:
        return self.datasets_dir / filename

    def model_dir(self, model_id: int) -> Path:
        return self.models_dir / str(model_id)

    def run_dir(self, job_id: str) -> Path:
        """The job's Ray Train run (its checkpoints); the run is named by the job id."""
        return self.runs_dir / job_id

    def staging_dir(self, job_id: str) -> Path:
        """Where a job's rank 0 writes the final adapter before it is registered."""
        return self.models_dir / f".staging-{job_id}"

    def ensure_dirs(self) -> None:
        for folder in (self.home, self.builtin_dir, self.datasets_dir, self.runs_dir, self.models_dir):
            folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def size_bytes(path: Path) -> int:
        if path.is_file():
            return path.stat().st_size
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

    @staticmethod
    def remove_tree(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
