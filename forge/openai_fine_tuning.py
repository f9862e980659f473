"""OpenAI's fine-tuning half under /v1, typed: files and fine-tuning jobs, and how they map onto this service's.

A file is a dataset: its id is the dataset's filename, so `client.files.create(...)`
and `POST /api/upload_dataset` make the same object, listed by both APIs. A
fine-tuning job is a job: its id is the job id (`train_<hex>`), and a job started
through either API is listed by both. What OpenAI calls a method maps onto a
strategy (supervised: LoRA SFT; dpo: DPO), its hyperparameters onto the request's
fields; the rest of a job's request keeps this service's defaults, except that no
hold-out is taken from the training file (OpenAI evaluates on a `validation_file`
only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Generic, Literal, Optional, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from forge.schemas import DatasetFormat, JobStatus, TrainingRequest

FILE_PURPOSE = "fine-tune"
# Owner of every object: this service has no organisations.
ORGANIZATION = "modelforge"
DEFAULT_PAGE = 20
MAX_PAGE = 100
Auto = Literal["auto"]

# A job's state as OpenAI names it. A job cut off by a restart of the service waits for a
# resume (POST /api/jobs/{id}/resume): it is not running, and it has not succeeded.
_STATUSES: dict[str, str] = {
    "idle": "queued", "queued": "queued", "starting": "running", "training": "running",
    "stopping": "running", "completed": "succeeded", "failed": "failed", "stopped": "cancelled",
    "interrupted": "failed",
}
assert set(_STATUSES) == set(JobStatus.__args__), "every job status needs its OpenAI name"
# strategy -> method type, and back (the method a request names trains with its first strategy).
_METHODS: dict[str, str] = {"sft": "supervised", "qlora": "supervised", "dpo": "dpo", "rlhf": "reinforcement"}


def unix_seconds(iso: Optional[str]) -> Optional[int]:
    """An ISO 8601 UTC time (the registry's) as Unix seconds (OpenAI's)."""
    if not iso:
        return None
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


# --------------------------------------------------------------------------- files


class FileObject(BaseModel):
    id: str = Field(description="The dataset's filename (also its name in /api/datasets).")
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["fine-tune"] = FILE_PURPOSE
    status: Literal["processed"] = Field("processed", description="Stored files are validated already.")
    format: DatasetFormat = Field(description="The rows' format, as /api/datasets shows it.")
    num_examples: int


def file_object(dataset: dict[str, Any]) -> FileObject:
    """A dataset record (registry) as an OpenAI file."""
    return FileObject(id=dataset["filename"], bytes=dataset["size_bytes"], filename=dataset["filename"],
                      created_at=unix_seconds(dataset["uploaded_at"]) or 0, format=dataset["format"],
                      num_examples=dataset["num_examples"])


Item = TypeVar("Item", bound=BaseModel)


class CursorPage(BaseModel, Generic[Item]):
    """A page of a list, OpenAI's way: the next page starts `after` the last item's id."""

    object: Literal["list"] = "list"
    data: list[Item]
    has_more: bool
    first_id: Optional[str] = None
    last_id: Optional[str] = None

    @classmethod
    def of(cls, items: list[Item], has_more: bool) -> "CursorPage[Item]":
        return cls(data=items, has_more=has_more, first_id=items[0].id if items else None,
                   last_id=items[-1].id if items else None)


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


# ---------------------------------------------------------------------- job request


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hyperparameters(_Strict):
    batch_size: Union[Auto, int, None] = Field(None, description="Examples per optimizer step (one worker).")
    learning_rate_multiplier: Union[Auto, float, None] = Field(
        None, description="Times this service's default learning rate (2e-4).")
    n_epochs: Union[Auto, int, None] = Field(None, description="Passes over the training file.")

    @field_validator("batch_size", "n_epochs")
    @classmethod
    def _positive_count(cls, value: Union[str, int, None]) -> Union[str, int, None]:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("learning_rate_multiplier")
    @classmethod
    def _positive_multiplier(cls, value: Union[str, float, None]) -> Union[str, float, None]:
        if isinstance(value, float) and not 0 < value <= 100:
            raise ValueError("must be above 0 and at most 100")
        return value


class DpoHyperparameters(Hyperparameters):
    beta: Union[Auto, float, None] = Field(None, description="DPO's beta: how far the model may move from its base.")

    @field_validator("beta")
    @classmethod
    def _positive_beta(cls, value: Union[str, float, None]) -> Union[str, float, None]:
        if isinstance(value, float) and value <= 0:
            raise ValueError("must be above 0")
        return value


class SupervisedMethod(_Strict):
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class DpoMethod(_Strict):
    hyperparameters: DpoHyperparameters = Field(default_factory=DpoHyperparameters)


class Method(_Strict):
    type: Literal["supervised", "dpo"] = Field(
        description="supervised: LoRA SFT on chat (or this service's) rows; dpo: DPO on preference rows.")
    supervised: Optional[SupervisedMethod] = None
    dpo: Optional[DpoMethod] = None

    def hyperparameters(self) -> Hyperparameters:
        chosen = self.dpo if self.type == "dpo" else self.supervised
        return chosen.hyperparameters if chosen else (DpoHyperparameters() if self.type == "dpo" else Hyperparameters())


def _given(value: Any) -> bool:
    return value is not None and value != "auto"


class FineTuningJobCreate(_Strict):
    """Body of POST /v1/fine_tuning/jobs (OpenAI's fields; `integrations` and `metadata` are refused, not kept)."""

    model: str = Field(min_length=1, description="The base: a built-in (forge/tiny-llama), a local folder or a Hub id.")
    training_file: str = Field(min_length=1, description="A file's id (a dataset's filename).")
    validation_file: Optional[str] = Field(None, description="A file whose rows evaluate the model (eval_loss).")
    suffix: Optional[str] = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                                  description="Goes into the fine-tuned model's name.")
    seed: Optional[int] = Field(None, ge=0, le=2**31 - 1)
    method: Optional[Method] = None
    hyperparameters: Optional[Hyperparameters] = Field(None, description="Older form of method.supervised's.")
    integrations: Optional[list[dict[str, Any]]] = None
    metadata: Optional[dict[str, str]] = None

    @field_validator("integrations")
    @classmethod
    def _no_integrations(cls, value: Optional[list]) -> Optional[list]:
        if value:
            raise ValueError("integrations are not supported: watch the job in /api/jobs, the console or Ray's dashboard")
        return value

    @field_validator("metadata")
    @classmethod
    def _no_metadata(cls, value: Optional[dict]) -> Optional[dict]:
        if value:
            raise ValueError("metadata is not stored by this service")
        return value

    def to_training_request(self) -> TrainingRequest:
        """The request this job trains with (a ValueError or pydantic error names what does not fit)."""
        method = self.method or Method(type="supervised",
                                       supervised=SupervisedMethod(hyperparameters=self.hyperparameters or
                                                                   Hyperparameters()))
        if self.method is not None and self.hyperparameters is not None:
            raise ValueError("give hyperparameters in method, not both")
        chosen = method.hyperparameters()
        fields: dict[str, Any] = {
            "task": "text-generation", "model_name": self.model, "dataset": self.training_file,
            "strategy": "dpo" if method.type == "dpo" else "sft",
            "eval_split": 0, "eval_dataset": self.validation_file, "model_suffix": self.suffix,
        }
        if self.seed is not None:
            fields["seed"] = self.seed
        if _given(chosen.n_epochs):
            fields["num_train_epochs"] = chosen.n_epochs
        if _given(chosen.batch_size):  # OpenAI's batch is the examples of one update
            fields.update(per_device_train_batch_size=chosen.batch_size, gradient_accumulation_steps=1)
        if _given(chosen.learning_rate_multiplier):
            fields["learning_rate"] = TrainingRequest.model_fields["learning_rate"].default * \
                chosen.learning_rate_multiplier
        if isinstance(chosen, DpoHyperparameters) and _given(chosen.beta):
            fields["dpo_beta"] = chosen.beta
        return TrainingRequest(**{k: v for k, v in fields.items() if v is not None})


# ------------------------------------------------------------------------ job views


class JobError(BaseModel):
    code: str
    message: str
    param: Optional[str] = None


class ResolvedHyperparameters(BaseModel):
    batch_size: int = Field(description="Examples per optimizer step: batch × accumulation × workers.")
    learning_rate_multiplier: float
    n_epochs: int
    beta: Optional[float] = None


class JobMethod(BaseModel):
    type: Literal["supervised", "dpo", "reinforcement"]


class FineTuningJob(BaseModel):
    id: str = Field(description="The job id, as in /api/jobs.")
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: Optional[int] = None
    estimated_finish: Optional[int] = None
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    error: Optional[JobError] = None
    fine_tuned_model: Optional[str] = Field(None, description="The registered model's name, callable in /v1.")
    model: str
    training_file: str
    validation_file: Optional[str] = None
    hyperparameters: ResolvedHyperparameters
    method: JobMethod
    seed: int
    trained_tokens: Optional[int] = None
    organization_id: str = ORGANIZATION
    result_files: list[str] = Field(default_factory=list)
    integrations: list[dict[str, Any]] = Field(default_factory=list)
    metadata: Optional[dict[str, str]] = None


def fine_tuning_job(detail: dict[str, Any], *, fine_tuned_model: Optional[str] = None,
                    trained_tokens: Optional[int] = None) -> FineTuningJob:
    """A job's detail (GET /api/jobs/{id}) as OpenAI's job object."""
    request = TrainingRequest.model_validate(detail["request"])
    status = _STATUSES[detail["status"]]
    error = None
    if detail["status"] == "failed":
        error = JobError(code="training_failed", message=detail.get("message") or "the job failed")
    elif detail["status"] == "interrupted":
        error = JobError(code="interrupted", message=detail.get("message") or "the service stopped during the job")
    default_rate = TrainingRequest.model_fields["learning_rate"].default
    return FineTuningJob(
        id=detail["job_id"], created_at=unix_seconds(detail.get("created_at")) or 0,
        finished_at=unix_seconds(detail.get("finished_at")) if status in ("succeeded", "failed", "cancelled") else None,
        estimated_finish=unix_seconds(detail.get("estimated_finish")), status=status, error=error,
        fine_tuned_model=fine_tuned_model, model=request.model_name, training_file=request.dataset,
        validation_file=request.eval_dataset,
        hyperparameters=ResolvedHyperparameters(
            batch_size=request.per_device_train_batch_size * request.gradient_accumulation_steps
            * request.num_workers,
            learning_rate_multiplier=round(request.learning_rate / default_rate, 6),
            n_epochs=request.num_train_epochs, beta=request.dpo_beta if request.strategy == "dpo" else None),
        method=JobMethod(type=_METHODS[request.strategy]), seed=request.seed, trained_tokens=trained_tokens,
    )


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: Optional[dict[str, Any]] = None


# Event kinds a user should notice: something was changed for them, or the job is held up or cut off.
_WARN_KINDS = {"substitution", "waiting", "interrupted", "restart"}


def message_event(index: int, event: dict[str, Any]) -> FineTuningJobEvent:
    """The `index`-th event of a job's history (oldest 0) as an OpenAI event."""
    level = "error" if event["kind"] == "failed" else "warn" if event["kind"] in _WARN_KINDS else "info"
    return FineTuningJobEvent(id=f"event-{index}", created_at=unix_seconds(event["at"]) or 0, level=level,
                              message=event["message"], type="message")


# This service's metric names -> OpenAI's.
_METRIC_NAMES = {"loss": "train_loss", "eval_loss": "valid_loss"}


def metrics_event(index: int, metrics: dict[str, Any]) -> FineTuningJobEvent:
    """The `index`-th logged step of a job (oldest 0) as an OpenAI metrics event."""
    data = {_METRIC_NAMES.get(k, k): v for k, v in metrics.items() if k != "logged_at"}
    step = metrics["step"]
    summary = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in data.items() if k != "step")
    return FineTuningJobEvent(id=f"metrics-{index}", created_at=unix_seconds(metrics.get("logged_at")) or 0,
                              level="info", message=f"Step {step}: {summary}", type="metrics", data=data)


class CheckpointMetrics(BaseModel):
    step: float
    train_loss: Optional[float] = None
    valid_loss: Optional[float] = None


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str = Field(
        description="The name the checkpoint's model gets once registered "
                    "(POST /api/jobs/{job_id}/checkpoints/{step}/register); callable after that.")
    fine_tuning_job_id: str
    step_number: int
    metrics: CheckpointMetrics


def page_after(items: list[Any], after: Optional[str], limit: int,
               id_of: Callable[[Any], str] = lambda item: item.id) -> tuple[list[Any], bool]:
    """OpenAI's cursor paging: the `limit` items after the one whose id is `after` (from the start when None),
    and whether more follow.

    An `after` that names no item starts nowhere: the page is empty (a deleted cursor ends the listing).
    """
    start = 0
    if after is not None:
        ids = [id_of(item) for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    page = items[start:start + limit]
    return page, start + limit < len(items)
