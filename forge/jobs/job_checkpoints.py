"""A job's kept checkpoints, as users see them, and a checkpoint's adapter staged to become a model.

Ray Train keeps the checkpoints (under `runs/<job_id>/<stage>-<step>/`, see
forge.training.checkpoints); the training worker writes a model card into each
checkpoint of a stage that trains the job's model, so that one can be registered
like a finished job's adapter: its adapter and tokenizer files and the card, without
the trainer's state (optimizer, scheduler, RNG), which only a resume needs.
Plain functions over the storage (blocking: the manager runs them in a thread).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pyarrow.fs as pafs

from forge.errors import Conflict, NotFound
from forge.job_schemas import CheckpointInfo
from forge.modeling.model_card import CARD_FILE
from forge.storage import Storage
from forge.training.checkpoints import TRAINER_FOLDER, kept_checkpoints

_NAME = re.compile(r"^(?P<stage>[a-z_]+)-(?P<step>\d+)$")
# What a trainer checkpoint holds besides the model: a resume needs it, a model does not.
_TRAINER_STATE = re.compile(r"^(optimizer\.pt|scheduler\.pt|scaler\.pt|trainer_state\.json|training_args\.bin|"
                            r"rng_state.*\.pth)$")


def _info(name: str, reported: dict[str, Any]) -> CheckpointInfo:
    match = _NAME.match(name)
    assert match is not None
    return CheckpointInfo(
        step=int(match["step"]), stage=match["stage"], saved_at=reported.get("saved_at"),
        train_loss=reported.get("train_loss"), eval_loss=reported.get("eval_loss"),
        registrable=bool(reported.get("registrable")),
    )


def list_job_checkpoints(storage: Storage, job_id: str) -> list[CheckpointInfo]:
    """The job's kept checkpoints, oldest first (none once a completed job's model is registered)."""
    return [_info(name, reported) for name, reported in kept_checkpoints(storage.uri(storage.run_dir(job_id)))]


def _folder_of(storage: Storage, job_id: str, step: int) -> str:
    kept = kept_checkpoints(storage.uri(storage.run_dir(job_id)))
    for name, reported in kept:
        info = _info(name, reported)
        if info.step != step:
            continue
        if not info.registrable:
            raise Conflict(f"the checkpoint at step {step} is of stage {info.stage!r}, which trains a helper "
                           "model, not the job's: it cannot be registered")
        return f"{storage.run_dir(job_id)}/{name}"
    steps = ", ".join(str(_info(n, r).step) for n, r in kept) or "none"
    raise NotFound(f"job {job_id!r} keeps no checkpoint at step {step} (kept: {steps})")


def stage_checkpoint_model(storage: Storage, job_id: str, step: int) -> str:
    """Copy the model files of the job's checkpoint at `step` into a fresh staging folder; returns its path.

    NotFound when no such checkpoint is kept (it may have been pruned meanwhile),
    Conflict when it does not hold the job's model.
    """
    folder = _folder_of(storage, job_id, step)
    staging = f"{storage.models_dir}/.staging-{job_id}-step{step}-{uuid.uuid4().hex[:8]}"
    files = storage.fs.get_file_info(pafs.FileSelector(f"{folder}/{TRAINER_FOLDER}", recursive=True))
    try:
        storage.fs.create_dir(staging, recursive=True)
        storage.fs.copy_file(f"{folder}/{CARD_FILE}", f"{staging}/{CARD_FILE}")
        for info in files:
            relative = info.path[len(f"{folder}/{TRAINER_FOLDER}/"):]
            if info.type != pafs.FileType.File or _TRAINER_STATE.match(relative):
                continue
            if "/" in relative:
                storage.fs.create_dir(f"{staging}/{relative.rsplit('/', 1)[0]}", recursive=True)
            storage.fs.copy_file(info.path, f"{staging}/{relative}")
    except FileNotFoundError as error:  # Ray Train pruned it while it was being copied
        storage.remove_tree(staging)
        raise NotFound(f"the checkpoint at step {step} of job {job_id!r} was removed while it was being "
                       "registered (newer checkpoints replace older ones)") from error
    except BaseException:
        storage.remove_tree(staging)
        raise
    return staging
