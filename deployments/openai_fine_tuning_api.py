"""OpenAI's fine-tuning half under /v1: files and fine-tuning jobs, over the same datasets and jobs as /api.

A mixin of the ingress, like deployments/openai_api.py. Files are stored through the
same upload pipeline as POST /api/upload_dataset (deployments/dataset_uploads.py);
jobs start, stop and resume on the same TrainingManager as /api/start_training.
forge/openai_fine_tuning.py holds the objects and how they map; routes here only
fetch and hand over. Errors answer in OpenAI's shape (every path under /v1 does).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, Optional

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from deployments.openai_errors import OPENAI_ERROR_RESPONSES, OPENAI_PREFIX
from forge.errors import BadRequest, ForgeError, NotFound
from forge.jobs.listing import MAX_PAGE as MAX_JOBS_PAGE
from forge.model_store import model_name
from forge.openai_fine_tuning import (
    DEFAULT_PAGE,
    FILE_PURPOSE,
    MAX_PAGE,
    CheckpointMetrics,
    CursorPage,
    FileDeleted,
    FileObject,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobCreate,
    FineTuningJobEvent,
    file_object,
    fine_tuning_job,
    message_event,
    metrics_event,
    page_after,
    unix_seconds,
)
from forge.schemas import TrainingRequest

router = APIRouter(prefix=OPENAI_PREFIX, tags=["OpenAI-compatible fine-tuning"], responses=OPENAI_ERROR_RESPONSES)
_Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Objects per page.")]
# An empty `after` names no object: a 400, as the schema says (the SDK leaves it out for a first page).
_After = Annotated[Optional[str], Query(min_length=1, description="The id of the last object of the previous page.")]
_HISTORY_PAGE = 1000  # what /api/jobs/{id}/events and /metrics give per call
_CONTENT_CHUNK = 1024 * 1024
_SHOWN_LINE_ERRORS = 5


def _missing_file(file_id: str) -> NotFound:
    return NotFound(f"no file {file_id!r} (GET /v1/files lists them)", extra={"param": "file_id"})


def with_line_errors(error: BadRequest) -> BadRequest:
    """An upload's refusal with its first line errors in the message: OpenAI's error shape has no other field."""
    report = error.extra.get("validation") or {}
    lines = [f"line {e['line']}: {e['error']}" for e in report.get("errors", [])[:_SHOWN_LINE_ERRORS]]
    more = report.get("total_errors", 0) - len(lines)
    detail = "; ".join([error.detail, *lines, *([f"and {more} more"] if more > 0 else [])])
    return BadRequest(detail, extra={"param": "file", "code": "invalid_file"})


def _request_problem(error: Exception) -> BadRequest:
    """A fine-tuning job body that does not make a training request, as the 400 naming the field at fault."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        return BadRequest(f"{field}: {message}" if field else message, extra={"param": field or None})
    return BadRequest(str(error))


class OpenAIFineTuningRoutes:
    """The /v1/files and /v1/fine_tuning routes; the ingress provides the manager, storage and uploads."""

    manager: Any
    storage: Any
    uploads: Any

    # ------------------------------------------------------------------- files

    @router.post("/files", response_model=FileObject)
    async def openai_upload_file(
        self, request: Request,
        file: UploadFile = File(..., description="A JSONL (or CSV, Parquet, JSON) dataset, as /api/upload_dataset."),
        purpose: str = Form(..., description="`fine-tune` (the only purpose this service stores)."),
    ) -> FileObject:
        """Store a training file: chat rows, OpenAI's DPO rows, or this service's formats; validated line by line."""
        if purpose != FILE_PURPOSE:
            raise BadRequest(f"purpose {purpose!r} is not supported: only {FILE_PURPOSE!r}", extra={"param": "purpose"})
        self.uploads.refuse_oversized(request.headers.get("content-length"))
        try:
            stored = await self.uploads.store(file, None)
        except BadRequest as error:
            raise with_line_errors(error) from None
        return await self._file(stored.filename)

    @router.get("/files", response_model=CursorPage[FileObject])
    async def openai_list_files(
        self, purpose: Optional[str] = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
        after: _After = None, order: Literal["asc", "desc"] = "desc",
    ) -> CursorPage[FileObject]:
        """The stored datasets as files, newest first by default."""
        files = [file_object(d) for d in await self.manager.list_datasets.remote()]
        if purpose not in (None, FILE_PURPOSE):
            files = []
        files.sort(key=lambda f: (f.created_at, f.id), reverse=order == "desc")
        return CursorPage[FileObject].of(*page_after(files, after, limit))

    @router.get("/files/{file_id}", response_model=FileObject)
    async def openai_retrieve_file(self, file_id: str) -> FileObject:
        return await self._file(file_id)

    @router.delete("/files/{file_id}", response_model=FileDeleted)
    async def openai_delete_file(self, file_id: str) -> FileDeleted:
        """Delete the file (the dataset); 409 while a job trains on it. Models trained on it stay."""
        await self._file(file_id)
        await self.manager.delete_dataset.remote(file_id)
        return FileDeleted(id=file_id)

    @router.get("/files/{file_id}/content", response_class=StreamingResponse,
                responses={200: {"content": {"application/jsonl": {}}}})
    async def openai_file_content(self, file_id: str) -> StreamingResponse:
        """The file as stored: JSONL (a CSV, Parquet or JSON upload was converted when it was stored)."""
        await self._file(file_id)
        return StreamingResponse(self._content(self.storage.dataset_path(file_id)), media_type="application/jsonl")

    async def _content(self, path: str) -> AsyncIterator[bytes]:
        stream = await asyncio.to_thread(self.storage.open_input, path)
        try:
            while chunk := await asyncio.to_thread(stream.read, _CONTENT_CHUNK):
                yield chunk
        finally:
            stream.close()

    async def _file(self, file_id: str) -> FileObject:
        for dataset in await self.manager.list_datasets.remote():
            if dataset["filename"] == file_id:
                return file_object(dataset)
        raise _missing_file(file_id)

    # -------------------------------------------------------------------- jobs

    @router.post("/fine_tuning/jobs", response_model=FineTuningJob)
    async def openai_create_job(self, body: FineTuningJobCreate) -> FineTuningJob:
        """Start a fine-tuning job: supervised (LoRA SFT) or dpo, on the same queue as /api/start_training."""
        try:
            training = body.to_training_request()
        except (ValidationError, ValueError) as error:
            raise _request_problem(error) from None
        for field, name in (("training_file", body.training_file), ("validation_file", body.validation_file)):
            if name is not None and not any(d["filename"] == name for d in await self.manager.list_datasets.remote()):
                raise NotFound(f"no file {name!r} (GET /v1/files lists them)", extra={"param": field})
        try:
            async with self.status.changing():
                started = await self.manager.start_training.remote(training)
        except BadRequest as error:  # the same checks as /api/start_training: the message says which
            raise BadRequest(error.detail, extra={"param": error.extra.get("param")}) from None
        return await self._job(started["job_id"])

    @router.get("/fine_tuning/jobs", response_model=CursorPage[FineTuningJob])
    async def openai_list_jobs(self, after: _After = None, limit: _Limit = DEFAULT_PAGE) -> CursorPage[FineTuningJob]:
        """Every job (started here or through /api), newest first."""
        ids: list[str] = []
        cursor = None
        while True:  # pages of /api/jobs until `after` and more than `limit` jobs past it are in hand
            page = await self.manager.list_jobs.remote([], MAX_JOBS_PAGE, cursor)
            ids += [summary["job_id"] for summary in page["jobs"]]
            cursor = page["next_cursor"]
            start = 0 if after is None else ids.index(after) + 1 if after in ids else None
            if cursor is None or (start is not None and len(ids) - start > limit):
                break
        chosen, has_more = page_after(ids, after, limit, id_of=str)
        return CursorPage[FineTuningJob].of([await self._job(job_id) for job_id in chosen], has_more)

    @router.get("/fine_tuning/jobs/{job_id}", response_model=FineTuningJob)
    async def openai_retrieve_job(self, job_id: str) -> FineTuningJob:
        return await self._job(job_id)

    @router.post("/fine_tuning/jobs/{job_id}/cancel", response_model=FineTuningJob)
    async def openai_cancel_job(self, job_id: str) -> FineTuningJob:
        """Stop the job (it ends `cancelled` at its next step; a queued job leaves the queue at once)."""
        async with self.status.changing():
            await self.manager.stop_training.remote(job_id)
        return await self._job(job_id)

    @router.post("/fine_tuning/jobs/{job_id}/resume", response_model=FineTuningJob)
    async def openai_resume_job(self, job_id: str) -> FineTuningJob:
        """Continue a cancelled, failed or cut-off job from its latest checkpoint (as /api/jobs/{id}/resume)."""
        async with self.status.changing():
            await self.manager.resume_training.remote(job_id)
        return await self._job(job_id)

    @router.get("/fine_tuning/jobs/{job_id}/events", response_model=CursorPage[FineTuningJobEvent])
    async def openai_job_events(self, job_id: str, after: _After = None,
                                limit: _Limit = DEFAULT_PAGE) -> CursorPage[FineTuningJobEvent]:
        """The job's messages (its /api events) and logged steps (its metrics), newest first."""
        events = [message_event(i, e) for i, e in enumerate(await self._history(job_id, "job_events", "events"))]
        events += [metrics_event(i, m) for i, m in enumerate(await self._history(job_id, "job_metrics", "metrics"))]
        # Newest first; within one second, the later-logged first (a metrics row and then the message it led to).
        events.sort(key=lambda e: (e.created_at, e.type == "message", int(e.id.rsplit("-", 1)[1])), reverse=True)
        return CursorPage[FineTuningJobEvent].of(*page_after(events, after, limit))

    @router.get("/fine_tuning/jobs/{job_id}/checkpoints", response_model=CursorPage[FineTuningJobCheckpoint])
    async def openai_job_checkpoints(self, job_id: str, after: _After = None,
                                     limit: _Limit = 10) -> CursorPage[FineTuningJobCheckpoint]:
        """The checkpoints the job keeps, newest first (a completed job's model is registered; it keeps none)."""
        detail = await self.manager.job_detail.remote(job_id)
        name = model_name(TrainingRequest.model_construct(**detail["request"]), job_id)
        kept = (await self.manager.job_checkpoints.remote(job_id))["checkpoints"]
        checkpoints = [FineTuningJobCheckpoint(
            id=f"{job_id}-step{c['step']}", created_at=unix_seconds(c["saved_at"]) or 0,
            fine_tuned_model_checkpoint=f"{name}-step{c['step']}", fine_tuning_job_id=job_id, step_number=c["step"],
            metrics=CheckpointMetrics(step=c["step"], train_loss=c["train_loss"], valid_loss=c["eval_loss"]),
        ) for c in reversed(kept) if c["registrable"]]
        return CursorPage[FineTuningJobCheckpoint].of(*page_after(checkpoints, after, limit))

    async def _history(self, job_id: str, method: str, key: str) -> list[dict[str, Any]]:
        entries, offset = [], 0
        while offset is not None:
            page = await getattr(self.manager, method).remote(job_id, offset, _HISTORY_PAGE)
            entries += page[key]
            offset = page["next_offset"]
        return entries

    async def _job(self, job_id: str) -> FineTuningJob:
        detail = await self.manager.job_detail.remote(job_id)
        fine_tuned = None
        if detail.get("model_id") is not None:
            try:
                fine_tuned = (await self.manager.get_model.remote(detail["model_id"]))["name"]
            except ForgeError:  # the model was deleted since: the job no longer has a callable model
                fine_tuned = None
        return fine_tuning_job(detail, fine_tuned_model=fine_tuned,
                               trained_tokens=await self.manager.trained_tokens.remote(job_id))

