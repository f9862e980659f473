"""Typed service settings, read once from FORGE_* environment variables.

The app builder resolves them in the process that runs `serve run` and passes the
result to every deployment and to the TrainingManager, so relative paths are
resolved once, against the directory the user started the service from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, Field, SecretStr

MANAGER_NAME = "training_manager"
# The unsloth provider's venv, built by `make install` next to the project.
DEFAULT_UNSLOTH_PYTHON = Path(__file__).resolve().parents[1] / ".venv-unsloth" / "bin" / "python"
# A fixed namespace: `serve run`, `serve deploy` and scripts each put replicas in a
# different namespace, and all of them must find the one manager.
RAY_NAMESPACE = "modelforge"


def _flag(value: str) -> bool:
    return value.lower() in {"1", "true", "yes"}


class Settings(BaseModel):
    home: Path = Field(description="FORGE_HOME: registry, built-in models, local state.")
    storage: str = Field(
        description="FORGE_STORAGE: datasets, runs and models (defaults to FORGE_HOME): a local or mounted path, "
        "or an object-store URI such as s3://bucket/prefix.",
    )
    manager_name: str = Field(
        MANAGER_NAME, min_length=1,
        description="FORGE_MANAGER_NAME: the TrainingManager actor's name; two services in one cluster need two.",
    )
    max_concurrent_jobs: int = Field(1, ge=1, description="FORGE_MAX_CONCURRENT_JOBS: 409 beyond this.")
    max_upload_mb: float = Field(1024, gt=0, description="FORGE_MAX_UPLOAD_MB: larger uploads get 413.")
    dataset_roots: list[Path] = Field(
        default_factory=list, description="FORGE_DATASET_ROOTS (os.pathsep-separated): readable dataset folders."
    )
    api_key: Optional[SecretStr] = Field(None, description="FORGE_API_KEY: when set, routes need a bearer token.")
    trust_remote_code: bool = Field(False, description="FORGE_TRUST_REMOTE_CODE: allow custom model code.")
    max_worker_failures: int = Field(
        2, ge=0, description="FORGE_MAX_WORKER_FAILURES: times a job's workers are restarted after a crash."
    )
    worker_resources: dict[str, float] = Field(
        default_factory=dict,
        description="FORGE_WORKER_RESOURCES (JSON): Ray resources each training worker needs on top of its CPU "
        "(and GPU), e.g. {\"A10G\": 1} to train only on nodes that advertise it.",
    )
    stop_grace_s: float = Field(20.0, gt=0, description="FORGE_STOP_GRACE_S: cooperative stop before a hard kill.")
    spare_runner: bool = Field(
        True, description="FORGE_SPARE_RUNNER: keep a job runner started ahead (an idle process of about "
        "400 MB resident) so the next job starts about 3 s sooner.",
    )
    unsloth_python: Path = Field(
        DEFAULT_UNSLOTH_PYTHON,
        description="FORGE_UNSLOTH_PYTHON: interpreter of the unsloth provider's venv (on a cluster: a path "
        "present on every node).",
    )

    @classmethod
    def from_env(cls, environ: Optional[dict[str, str]] = None) -> "Settings":
        env = os.environ if environ is None else environ
        home = Path(env.get("FORGE_HOME", ".forge")).expanduser().resolve()
        storage = env.get("FORGE_STORAGE") or str(home)
        if "://" not in storage:  # a path: resolved once, like FORGE_HOME
            storage = str(Path(storage).expanduser().resolve())
        roots = [Path(p).expanduser().resolve() for p in env.get("FORGE_DATASET_ROOTS", "").split(os.pathsep) if p]
        values: dict = {"home": home, "storage": storage, "dataset_roots": roots}
        if env.get("FORGE_MANAGER_NAME"):
            values["manager_name"] = env["FORGE_MANAGER_NAME"]
        if "FORGE_MAX_CONCURRENT_JOBS" in env:
            values["max_concurrent_jobs"] = env["FORGE_MAX_CONCURRENT_JOBS"]
        if "FORGE_MAX_UPLOAD_MB" in env:
            values["max_upload_mb"] = env["FORGE_MAX_UPLOAD_MB"]
        if env.get("FORGE_API_KEY"):
            values["api_key"] = env["FORGE_API_KEY"]
        if "FORGE_MAX_WORKER_FAILURES" in env:
            values["max_worker_failures"] = env["FORGE_MAX_WORKER_FAILURES"]
        if env.get("FORGE_WORKER_RESOURCES"):
            try:
                values["worker_resources"] = json.loads(env["FORGE_WORKER_RESOURCES"])
            except ValueError as error:
                raise ValueError(f"FORGE_WORKER_RESOURCES is not JSON ({error}); e.g. '{{\"A10G\": 1}}'") from None
        if "FORGE_STOP_GRACE_S" in env:
            values["stop_grace_s"] = env["FORGE_STOP_GRACE_S"]
        if env.get("FORGE_UNSLOTH_PYTHON"):
            values["unsloth_python"] = Path(env["FORGE_UNSLOTH_PYTHON"]).expanduser()
        values["trust_remote_code"] = _flag(env.get("FORGE_TRUST_REMOTE_CODE", "0"))
        values["spare_runner"] = _flag(env.get("FORGE_SPARE_RUNNER", "1"))
        return cls(**values)
