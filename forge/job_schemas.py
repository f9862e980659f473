"""What users read about jobs beyond their status: the job list, one job's detail, its history
(events, metrics), its worker logs and its checkpoints — the bodies of the /api/jobs routes.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, Field

from forge.schemas import JobProgress, Provider, Strategy, Task


class JobSummary(JobProgress):
    """One job in GET /api/jobs: its status fields, what it trains, and when."""

    job_id: str = Field(description="The job, `train_<hex>`.")
    task: Task
    strategy: Strategy
    provider: Provider
    model_name: str = Field(description="The base model, as the request named it.")
    dataset: str = Field(description="The dataset, as the request named it.")
    started_at: Optional[str] = Field(
        None, description="When its workers first reported a training step (ISO 8601 UTC); null until then.")
    finished_at: Optional[str] = Field(None, description="When it last ended (ISO 8601 UTC); null while active.")


class JobList(BaseModel):
    """Body of GET /api/jobs: a page of jobs, newest first."""

    jobs: list[JobSummary]
    next_cursor: Optional[str] = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page.")


class JobDetail(JobSummary):
    """Body of GET /api/jobs/{job_id}."""

    request: dict[str, Any] = Field(description="The training request as submitted: the fields that were sent.")
    options: Optional[dict[str, Any]] = Field(
        None, description="What the workers use after hardware substitutions (device, optimizer, precision, "
        "quantization), as of the job's latest start; null before it first started.")
    notes: list[str] = Field(
        default_factory=list, description="Every substitution made to the request, as a sentence (also in its events).")


class JobEvent(BaseModel):
    at: str = Field(description="When it happened (ISO 8601 UTC).")
    kind: str = Field(description="queued, substitution, setting, checkpoint, waiting, restart, resume, stop, "
                                   "or the state the job ended in.")
    message: str


class JobEventPage(BaseModel):
    """Body of GET /api/jobs/{job_id}/events: a page of the job's history, oldest first."""

    job_id: str
    events: list[JobEvent]
    next_offset: Optional[int] = Field(None, description="Pass as `offset` for the next page; null on the last.")


class JobMetricsPage(BaseModel):
    """Body of GET /api/jobs/{job_id}/metrics: a page of the job's logged steps, by step (a step's entries in
    the order they were logged)."""

    job_id: str
    metrics: list[dict[str, Any]] = Field(
        description="One entry per logged step: `step` and what was logged (loss, learning_rate, grad_norm, "
                    "num_tokens, logged_at), or an evaluation's eval_loss.")
    next_offset: Optional[int] = Field(None, description="Pass as `offset` for the next page; null on the last.")


class JobLogs(BaseModel):
    """Body of GET /api/jobs/{job_id}/logs: the end of one worker's output."""

    job_id: str
    rank: int = Field(description="The worker whose output this is (0: the one that reports and saves).")
    ranks: list[int] = Field(description="The workers that left output for this job.")
    lines: list[str] = Field(description="The last `tail` lines, oldest first; a failed job's end with its traceback.")
    truncated: bool = Field(description="Whether earlier lines exist (ask for a larger `tail` to see more).")


class CheckpointInfo(BaseModel):
    """A checkpoint a job keeps: the point a resume continues from, and a model it can register."""

    step: int = Field(description="The job's step when it was saved (across stages of a multi-stage job).")
    stage: str = Field(description="The trainer it belongs to: `train`, or an rlhf job's `reward` / `policy`.")
    saved_at: Optional[str] = Field(None, description="When it was written (ISO 8601 UTC).")
    train_loss: Optional[float] = Field(None, description="The training loss logged at its step (or the last before).")
    eval_loss: Optional[float] = Field(None, description="The evaluation loss at its step, when one was computed.")
    registrable: bool = Field(description="Whether it holds the job's model (an rlhf job's reward stage does not).")


class CheckpointList(BaseModel):
    """Body of GET /api/jobs/{job_id}/checkpoints, oldest first."""

    job_id: str
    checkpoints: list[CheckpointInfo]
