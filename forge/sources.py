"""Resolve a training request's model and dataset to something a worker can read.

Runs in the manager at start time, so an unusable name is a 400 there instead of
a job that fails minutes later. No heavy imports.
"""

from __future__ import annotations

import os
from pathlib import Path

from forge.builtin import is_builtin
from forge.errors import BadRequest

_HUB_TIMEOUT_S = 5.0


def _user_path(name: str, what: str) -> Path:
    """`name` as a path, with a leading `~` or `~user` expanded (a 400 when that user has no home)."""
    try:
        return Path(name).expanduser()
    except RuntimeError:  # "~someone/..." where no such user exists
        raise BadRequest(f"{what} {name!r} starts with ~ but names no user's home directory on this machine")


def resolve_model_source(model_name: str) -> str:
    """Built-in name, then local directory, then Hugging Face Hub id (local cache first)."""
    if is_builtin(model_name):
        return model_name
    path = _user_path(model_name, "model")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BadRequest(f"model directory {model_name!r} has no config.json")
        return str(path.resolve())
    looks_like_path = model_name.startswith(("/", ".", "~")) or model_name.count("/") > 1
    if looks_like_path:
        raise BadRequest(f"model {model_name!r} is not a built-in model and no such directory exists")
    return _resolve_hub_id(model_name)


def _resolve_hub_id(repo_id: str) -> str:
    from huggingface_hub import model_info, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except HFValidationError as error:
        raise BadRequest(f"model {repo_id!r} is not a built-in model, a local directory or a Hub id: {error}")
    if isinstance(cached, str):
        return repo_id
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true"}:
        raise BadRequest(f"model {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    try:
        model_info(repo_id, timeout=_HUB_TIMEOUT_S)
    except Exception as error:  # network failure, 404, gated repo...
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise BadRequest(
            f"model {repo_id!r} is not a built-in model, not a local directory, not in the local Hugging Face "
            f"cache, and the Hub could not provide it ({reason})"
        )
    return repo_id


def resolve_dataset_path(name: str, roots: list[Path]) -> Path:
    """A path inside one of the allowed roots (symlinks resolved before the check)."""
    candidate = _user_path(name, "dataset")
    if not candidate.is_absolute():
        raise BadRequest(f"dataset {name!r} is neither an uploaded dataset nor an absolute path")
    real = candidate.resolve()
    if not any(real.is_relative_to(root.resolve()) for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "none configured (set FORGE_DATASET_ROOTS)"
        raise BadRequest(f"dataset path {name!r} is outside the allowed dataset roots: {allowed}")
    if not real.is_file():
        raise BadRequest(f"dataset path {name!r} does not exist")
    return real
