"""Checkpoints a job resumes from: written every `save_steps`, pruned to `save_total_limit`.

The Hugging Face trainer writes a complete checkpoint (adapter, optimizer,
scheduler, RNG and trainer state) into the job's scratch folder;
`callbacks.CheckpointCallback` hands it to a `CheckpointStore` and removes the scratch copy.
Under Ray the store is Ray Train's own (`ray.train.report` persists it under
`runs/<job_id>/` and prunes old ones; `ray.train.get_checkpoint()` returns the
latest after a worker-group restart or an explicit resume). In-process runs use a
plain folder, or none.

A checkpoint folder holds the trainer's checkpoint under `checkpoint/`, extra
folders a multi-stage recipe needs to pick up again (e.g. rlhf's reward model),
and `forge_checkpoint.json` naming the stage and step. The job's folder name is
`<stage>-<job step, 6 digits>` so a person can read `runs/<job_id>/` at a glance.
Nothing here imports torch or transformers: the manager lists checkpoints too.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any, Optional, Protocol

CHECKPOINT_META = "forge_checkpoint.json"
TRAINER_FOLDER = "checkpoint"
# Default cadence: this many checkpoints per epoch, so a crash costs at most a third of one,
# but not more often than every MIN_DEFAULT_SAVE_STEPS steps (short jobs lose little anyway).
CHECKPOINTS_PER_EPOCH = 3
MIN_DEFAULT_SAVE_STEPS = 10
_NAME = re.compile(r"^(?P<stage>[a-z_]+)-(?P<step>\d{6,})$")


class CheckpointStore(Protocol):
    def latest(self) -> Optional[Path]:
        """A local folder holding the latest checkpoint of this job, or None on a fresh start."""
        ...

    def save(self, folder: Optional[Path], name: str, metrics: dict[str, Any]) -> None:
        """Persist `folder` as checkpoint `name`. Every rank calls this; only rank 0 passes a folder."""
        ...


class NoCheckpoints:
    def latest(self) -> Optional[Path]:
        return None

    def save(self, folder: Optional[Path], name: str, metrics: dict[str, Any]) -> None:
        return None


class FolderCheckpoints:
    """Checkpoints in a local folder, newest `keep` kept: for runs without Ray Train."""

    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = root
        self.keep = keep

    def latest(self) -> Optional[Path]:
        found = list_checkpoints(self.root)
        return found[-1][2] if found else None

    def save(self, folder: Optional[Path], name: str, metrics: dict[str, Any]) -> None:
        if folder is None:
            return
        target = self.root / name
        partial = self.root / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(folder, partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        for _, _, old in list_checkpoints(self.root)[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)


class RayTrainCheckpoints:
    """Ray Train's checkpoint store of the current run (persisted under RunConfig.storage_path)."""

    def __init__(self, scratch: Path) -> None:
        self._scratch = scratch
        self._latest: Optional[Path] = None
        self._fetched = False

    def latest(self) -> Optional[Path]:
        import ray.train

        if not self._fetched:
            self._fetched = True
            checkpoint = ray.train.get_checkpoint()
            if checkpoint is not None:
                # A local copy: the run's storage may be remote, and the trainer reads it lazily.
                self._latest = Path(checkpoint.to_directory(str(self._scratch / "resume")))
        return self._latest

    def save(self, folder: Optional[Path], name: str, metrics: dict[str, Any]) -> None:
        import ray.train
        from ray.train import Checkpoint

        # A barrier: every rank reports, the same number of times; rank 0 brings the files.
        checkpoint = Checkpoint.from_directory(str(folder)) if folder is not None else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)


def checkpoint_name(stage: str, job_step: int) -> str:
    return f"{stage}-{job_step:06d}"


def list_checkpoints(run_dir: Path) -> list[tuple[str, int, Path]]:
    """Complete checkpoints under `run_dir` as (stage, job step, folder), oldest first."""
    found = []
    if run_dir.is_dir():
        for folder in run_dir.iterdir():
            match = _NAME.match(folder.name)
            if match and (folder / CHECKPOINT_META).is_file():
                found.append((match["stage"], int(match["step"]), folder))
    return sorted(found, key=lambda item: item[1])


def _run_result(run_dir: str):
    """Ray Train's record of the run at `run_dir` (a path or URI), or None when it has none."""
    from ray.train import Result

    from forge.storage import open_filesystem

    try:
        filesystem, path = open_filesystem(str(run_dir))
        return Result.from_path(path, storage_filesystem=filesystem)
    except Exception:  # no run, or a run that never registered a checkpoint
        return None


def latest_registered_step(run_dir: str) -> Optional[int]:
    """The job step of the checkpoint Ray Train resumes `run_dir` (a path or URI) from, or None.

    Ray Train's own record decides, not the folders: a checkpoint being copied when
    the service died may be on disk without being registered.
    """
    result = _run_result(run_dir)
    if result is None or result.checkpoint is None:
        return None
    match = _NAME.match(Path(result.checkpoint.path).name)
    return int(match["step"]) if match else None


def kept_checkpoints(run_dir: str) -> list[tuple[str, dict[str, Any]]]:
    """The checkpoints Ray Train keeps for `run_dir`: (folder name, what was reported with it), oldest first.

    Only complete ones: Ray Train records a checkpoint once its files are all in place.
    """
    result = _run_result(run_dir)
    if result is None:
        return []
    kept = [(Path(checkpoint.path).name, dict(metrics)) for checkpoint, metrics in result.best_checkpoints or []]
    return sorted((k for k in kept if _NAME.match(k[0])), key=lambda k: int(_NAME.match(k[0])["step"]))


def read_meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / CHECKPOINT_META).read_text())


# The trainer's log keys a job's metric history keeps: a training step's, then an evaluation's.
TRAIN_LOG_KEYS = ("loss", "learning_rate", "grad_norm", "num_tokens")
EVAL_LOG_KEYS = ("eval_loss",)


def finite_logs(logs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    """The `keys` of a trainer log entry that hold finite numbers, as floats."""
    return {k: float(logs[k]) for k in keys if isinstance(logs.get(k), (int, float)) and math.isfinite(logs[k])}


def logged_history(folder: Path) -> list[dict[str, Any]]:
    """The metric history up to checkpoint `folder`, as the trainer logged it, keyed by job step.

    A run resumed from this checkpoint redoes none of these steps, and their live reports
    may never have reached the manager: a manager that was down while they ran missed
    them. The manager fills its history's gaps from here. Entries are the live reports'
    fields: a training step's loss, learning rate, gradient norm and tokens, or an
    evaluation's loss.
    """
    state_file = folder / TRAINER_FOLDER / "trainer_state.json"
    if not state_file.is_file():
        return []
    state = json.loads(state_file.read_text())
    offset = int(read_meta(folder)["job_step"]) - int(state.get("global_step", 0))  # a later stage's steps
    history = []
    for entry in state.get("log_history", []):
        if "step" not in entry:
            continue
        train = finite_logs(entry, TRAIN_LOG_KEYS) if "loss" in entry else {}
        for fields in (train, finite_logs(entry, EVAL_LOG_KEYS)):
            if fields:
                history.append({"step": int(entry["step"]) + offset, **fields})
    return history


def save_every(max_steps: int, num_epochs: int, save_steps: Optional[int]) -> int:
    """Optimizer steps between checkpoints: the request's, else a few per epoch."""
    if save_steps:
        return save_steps
    per_epoch = max(1, math.ceil(max_steps / max(1, num_epochs)))
    return max(MIN_DEFAULT_SAVE_STEPS, per_epoch // CHECKPOINTS_PER_EPOCH)
