"""Listing jobs and reading one, without Ray: newest first, filters, pages, and what a job's detail says.

Jobs are opened, progressed and ended through the real tracker on a real SQLite
registry (tmp_path), as the manager does.
"""

from __future__ import annotations

import pytest

from forge.errors import BadRequest, NotFound
from forge.jobs import listing
from forge.pagination import decode_cursor, encode_cursor
from forge.training.manager_link import ProgressUpdate
from forge.training.options import Hardware

pytestmark = pytest.mark.anyio


def _ids(page) -> list[str]:
    return [job.job_id for job in page.jobs]


async def test_jobs_are_listed_newest_first_a_page_at_a_time(tracker, open_job, registry):
    for n in range(5):
        open_job(f"train_{n:04d}")
    first = listing.list_jobs(registry, limit=2)
    assert _ids(first) == ["train_0004", "train_0003"] and first.next_cursor
    second = listing.list_jobs(registry, limit=2, cursor=first.next_cursor)
    assert _ids(second) == ["train_0002", "train_0001"] and second.next_cursor
    last = listing.list_jobs(registry, limit=2, cursor=second.next_cursor)
    assert _ids(last) == ["train_0000"] and last.next_cursor is None
    # A job created meanwhile goes to the head of the list, not into a page already handed out.
    open_job("train_0005")
    assert _ids(listing.list_jobs(registry, limit=2, cursor=first.next_cursor)) == ["train_0002", "train_0001"]
    assert listing.list_jobs(registry, limit=2).jobs[0].job_id == "train_0005"


async def test_a_full_last_page_has_no_next_cursor(tracker, open_job, registry):
    for n in range(2):
        open_job(f"train_{n:04d}")
    page = listing.list_jobs(registry, limit=2)
    assert len(page.jobs) == 2 and page.next_cursor is None
    assert listing.list_jobs(registry).jobs and listing.list_jobs(registry, ["failed"]).jobs == []


async def test_jobs_are_filtered_by_status(tracker, open_job, registry, write_adapter):
    done = open_job("train_0001")
    open_job("train_0002")
    write_adapter("train_0001")
    tracker.end_run(done, {"stopped": False, "metrics": {"final_loss": 0.5}})
    await tracker.close("train_0001")
    completed = listing.list_jobs(registry, ["completed"]).jobs
    assert [(j.job_id, j.status) for j in completed] == [("train_0001", "completed")]
    assert completed[0].model_id is not None and completed[0].finished_at is not None
    assert _ids(listing.list_jobs(registry, ["queued", "completed"])) == ["train_0002", "train_0001"]


async def test_a_summary_says_what_the_job_trains_and_when(tracker, open_job, registry):
    open_job("train_0001", strategy="qlora", num_train_epochs=3)
    (queued,) = listing.list_jobs(registry).jobs
    # Stored as sent; the defaults fill in what was not sent.
    assert (queued.task, queued.strategy, queued.provider) == ("text-generation", "qlora", "huggingface")
    assert (queued.model_name, queued.dataset) == ("forge/tiny-llama", "pairs.jsonl")
    assert queued.total_epochs == 3 and queued.started_at is None and queued.finished_at is None
    tracker.apply_progress("train_0001", ProgressUpdate(current_step=1, total_steps=4, current_epoch=0.5, loss=1.0))
    (training,) = listing.list_jobs(registry).jobs
    assert training.status == "training" and training.started_at is not None
    assert training.created_at <= training.started_at


async def test_a_job_keeps_the_time_it_first_started_across_a_resume(tracker, open_job, registry):
    first_run = open_job("train_0001")
    tracker.apply_progress("train_0001", ProgressUpdate(current_step=1, total_steps=4, loss=1.0))
    started = registry.get_job("train_0001").started_at
    assert started is not None
    await tracker.close("train_0001")
    # Resumed as the manager resumes a job: queued again, then opened with its spec.
    tracker.queue_resume("train_0001")
    tracker.open(registry.get_job("train_0001"), first_run.spec, [], record_notes=False)
    assert listing.list_jobs(registry).jobs[0].status == "queued"
    tracker.apply_progress("train_0001", ProgressUpdate(current_step=2, total_steps=4, loss=0.9))
    assert listing.job_detail(registry, "train_0001").started_at == started


async def test_the_detail_has_the_request_as_sent_the_options_used_and_the_substitutions(open_job, registry):
    open_job("train_0001", hardware=Hardware(cpus=2), optim="paged_adamw_32bit", bf16=True)
    detail = listing.job_detail(registry, "train_0001")
    assert detail.request == {"task": "text-generation", "model_name": "forge/tiny-llama",
                              "dataset": "pairs.jsonl", "num_train_epochs": 2, "optim": "paged_adamw_32bit",
                              "bf16": True}
    # On this CPU-only hardware the optimizer and precision were substituted, and said so.
    assert detail.options["optim"] == "adamw_torch" and detail.options["bf16"] is False
    assert detail.options["use_gpu"] is False
    assert any("paged_adamw_32bit needs CUDA" in note for note in detail.notes)
    assert any("mixed precision needs a GPU" in note for note in detail.notes)
    with pytest.raises(NotFound):
        listing.job_detail(registry, "train_ffff")


def test_a_cursor_round_trips_and_a_forged_one_is_a_bad_request():
    cursor = encode_cursor("2026-12-01T05:00:00.000000Z", "train_00ab")
    assert decode_cursor(cursor, 2) == ("2026-12-01T05:00:00.000000Z", "train_00ab")
    assert all(c.isalnum() or c in "-_" for c in cursor)  # safe in a URL as it is
    for forged in ("", "not base64!", encode_cursor("only-one"), "W1sxXV0", encode_cursor("a", "b", "c")):
        with pytest.raises(BadRequest, match="cursor"):
            decode_cursor(forged, 2)
