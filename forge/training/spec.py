"""The job specification a training run is a pure function of."""

from __future__ import annotations

from pydantic import BaseModel

from forge.schemas import TrainingRequest
from forge.training.options import ResolvedOptions


class JobSpec(BaseModel):
    job_id: str
    request: TrainingRequest
    options: ResolvedOptions
    model_source: str  # a built-in name, a local directory or a Hub id, already checked by the manager
    dataset_path: str
    dataset_format: str  # pairs | chat | preference | qa: how the worker reads the rows
    output_dir: str  # rank 0 writes the final adapter here; the manager then registers it
    builtin_dir: str
    runs_dir: str
    manager_name: str
    namespace: str
    trust_remote_code: bool = False
