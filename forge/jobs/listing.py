"""What users read about jobs past and present: the paginated list and one job's detail.

Plain functions over the registry (which the tracker keeps current as jobs progress),
so they run without Ray in unit tests.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Optional

from forge.errors import NotFound
from forge.job_schemas import JobDetail, JobList, JobSummary
from forge.pagination import decode_cursor, encode_cursor
from forge.registry import JobRecord, Registry
from forge.schemas import TrainingRequest

MAX_PAGE = 100


def summary_of(record: JobRecord) -> JobSummary:
    # The request was stored as sent (only the fields set): the defaults fill in the rest.
    request = TrainingRequest.model_construct(**record.request)
    fields = record.model_dump(exclude={"request", "options"})
    # Known once the workers start; until then the request says it (as /api/training_status does).
    fields["total_epochs"] = record.total_epochs or request.num_train_epochs
    return JobSummary(**fields, task=request.task, strategy=request.strategy, provider=request.provider,
                      model_name=request.model_name, dataset=request.dataset)


def list_jobs(registry: Registry, statuses: Collection[str] = (), limit: int = 20,
              cursor: Optional[str] = None) -> JobList:
    """A page of jobs, newest first, with the cursor of the next page (None on the last)."""
    before = decode_cursor(cursor, 2) if cursor else None
    records = registry.list_jobs(statuses, limit + 1, before)  # one more: is there a next page?
    page = records[:limit]
    more = len(records) > limit
    return JobList(jobs=[summary_of(r) for r in page],
                   next_cursor=encode_cursor(page[-1].created_at, page[-1].job_id) if more else None)


def job_detail(registry: Registry, job_id: str) -> JobDetail:
    record = registry.get_job(job_id)
    if record is None:
        raise NotFound(f"job {job_id!r} does not exist")
    notes = [e.message for e in registry.events(job_id) if e.kind == "substitution"]
    return JobDetail(**summary_of(record).model_dump(), request=record.request, options=record.options, notes=notes)
