"""Typed service settings, read once from FORGE_* environment variables.

Each field is read from FORGE_<FIELD NAME> by pydantic-settings. The app builder
resolves them in the process that runs `serve run` and passes the result to every
deployment and to the TrainingManager, so relative paths are resolved once, against
the directory the user started the service from.

The README's settings table is this model's `markdown_table()`
(`python -m forge.settings` prints it; a test keeps the two equal).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

MANAGER_NAME = "training_manager"
# The unsloth provider's venv, built by `make install` next to the project.
DEFAULT_UNSLOTH_PYTHON = Path(__file__).resolve().parents[1] / ".venv-unsloth" / "bin" / "python"
# A fixed namespace: `serve run`, `serve deploy` and scripts each put replicas in a
# different namespace, and all of them must find the one manager.
RAY_NAMESPACE = "modelforge"
_FLAG_ON = {"1", "true", "yes"}


def _shown(default: str) -> dict[str, str]:
    """The default the README shows where the field's own default is computed."""
    return {"shown_default": default}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORGE_", extra="ignore")

    home: Path = Field(
        Path(".forge"), validate_default=True,
        description="registry (`forge.db`), built-in models",
    )
    storage: str = Field(
        "", validate_default=True, json_schema_extra=_shown("`FORGE_HOME`"),
        description="datasets, Ray Train runs, trained models: a path, or `s3://…` / `gs://…`",
    )
    worker_resources: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description="JSON of custom Ray resources each training worker needs, e.g. `{\"A10G\": 1}`",
    )
    max_concurrent_jobs: int = Field(1, ge=1, description="jobs that may run at once (409 beyond)")
    queue_size: int = Field(
        0, ge=0, description="jobs that may wait, in order, for a running one to end; `0`: a start while every "
        "slot is busy is a 409",
    )
    train_device: Literal["auto", "gpu", "cpu"] = Field(
        "auto", description="where jobs train: `auto` on GPUs when the cluster has one up, `gpu` on GPUs even "
        "while none is up (an autoscaler starts GPU nodes for the job; cluster.yaml sets it), `cpu` never on GPUs",
    )
    max_train_gpus: Optional[int] = Field(
        None, ge=1, description="the most GPUs jobs can ever get (the autoscaler's GPU workers × their GPUs); "
        "a job asking for more is a 400. Unset: the GPUs up when the job starts",
    )
    job_start_timeout_s: float = Field(
        900.0, gt=0, description="a job whose workers have not started by then (no node can hold them) fails "
        "with the reason, and frees its slot",
    )
    max_upload_mb: float = Field(1024, gt=0, description="larger uploads get 413")
    upload_part_mb: float = Field(
        64, gt=0, description="largest part of a `/v1/uploads` upload (413 beyond); a large file goes in parts, "
        "so the service holds at most about one part in memory",
    )
    dataset_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="`:`-separated folders whose JSONL files may be trained on by path",
    )
    trust_remote_code: bool = Field(
        False, description="allow model repositories with custom code (weights always load from safetensors)",
    )
    stop_grace_s: float = Field(
        20.0, gt=0, description="seconds a stop waits for a clean step boundary before killing the run",
    )
    spare_runner: bool = Field(
        True, description="start the next job's runner ahead, when the service starts and after each job "
        "(an idle process of about 400 MB resident; jobs start about 3 s sooner); `0` turns it off",
    )
    max_worker_failures: int = Field(
        2, ge=0, description="worker-group restarts per job after a crashed worker",
    )
    api_key: Optional[SecretStr] = Field(
        None, description="when set, every route but `/api/health` needs `Authorization: Bearer <key>`",
    )
    manager_name: str = Field(
        MANAGER_NAME, min_length=1,
        description="the manager actor's name: two services in one cluster need two names (and two "
        "`FORGE_HOME`s)",
    )
    unsloth_python: Path = Field(
        DEFAULT_UNSLOTH_PYTHON, json_schema_extra=_shown("`.venv-unsloth/bin/python`"),
        description="interpreter of the unsloth provider's environment",
    )

    def changed_from(self, earlier: "Settings", ignore: frozenset[str] = frozenset()) -> list[str]:
        """The FORGE_* variables whose values differ from `earlier`'s, in field order (`ignore`: field names)."""
        prefix = self.model_config["env_prefix"]
        return [f"{prefix}{name.upper()}" for name in type(self).model_fields
                if name not in ignore and getattr(self, name) != getattr(earlier, name)]

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """Settings from `environ` alone (os.environ when None)."""
        if environ is None:
            return cls()
        return cls(_build_sources=((_MappingEnvSource(cls, environ),), {}))

    @field_validator("api_key", "manager_name", "unsloth_python", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: Any, info: ValidationInfo) -> Any:
        if value == "":
            return cls.model_fields[info.field_name].get_default()
        return value

    @field_validator("trust_remote_code", "spare_runner", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        # Anything but these spellings is off, as it always was (pydantic would reject "maybe").
        return value.lower() in _FLAG_ON if isinstance(value, str) else value

    @field_validator("worker_resources", mode="before")
    @classmethod
    def _json_resources(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value) if value else {}
        except ValueError as error:
            raise ValueError(f"FORGE_WORKER_RESOURCES is not JSON ({error}); e.g. '{{\"A10G\": 1}}'") from None

    @field_validator("dataset_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        return [part for part in value.split(os.pathsep) if part] if isinstance(value, str) else value

    @field_validator("dataset_roots", mode="after")
    @classmethod
    def _resolve_roots(cls, roots: list[Path]) -> list[Path]:
        return [root.expanduser().resolve() for root in roots]

    @field_validator("home", mode="after")
    @classmethod
    def _resolve_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @field_validator("storage", mode="after")
    @classmethod
    def _storage_or_home(cls, storage: str, info: ValidationInfo) -> str:
        storage = storage or str(info.data.get("home", ""))
        if "://" in storage:  # an object store: kept as given
            return storage
        return str(Path(storage).expanduser().resolve())  # a path: resolved once, like FORGE_HOME

    @field_validator("unsloth_python", mode="after")
    @classmethod
    def _expand_user(cls, path: Path) -> Path:
        return path.expanduser()


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, Optional[str]]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _shown_default(name: str) -> str:
    field = Settings.model_fields[name]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        return str(extra["shown_default"])
    default = field.get_default(call_default_factory=True)
    if isinstance(default, bool):
        return "1" if default else "0"  # how the flag is spelled
    if default in (None, [], {}):
        return "none"
    if isinstance(default, (int, float)):
        return f"{default:g}"
    if isinstance(default, Path) and not default.is_absolute():
        return f"`./{default}`"
    return f"`{default}`"


def markdown_table() -> str:
    """The README's settings table: every variable, its default and its description."""
    prefix = Settings.model_config["env_prefix"]
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{prefix}{name.upper()}` | {_shown_default(name)} | {field.description} |"
             for name, field in Settings.model_fields.items()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
