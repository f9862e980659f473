"""The job queue without Ray: who may join it, its order, the place each job is told, and a restart.

The queue is the registry's queued jobs (real SQLite on tmp_path); the manager's
part (starting them as slots free, cancelling one) runs in tests/integration/test_queue.py.
"""

from __future__ import annotations

import pytest

from forge.errors import Conflict
from forge.jobs.admission import Admission
from forge.jobs.queue import JobQueue
from forge.registry import Registry

pytestmark = pytest.mark.anyio

RUNNING = {"train_run": object()}


def _admission(admission: Admission, **limits: int) -> Admission:
    admission.settings = admission.settings.model_copy(update=limits)
    return admission


def test_with_no_queue_a_busy_service_answers_409_as_the_contract_says(admission):
    plain = _admission(admission, max_concurrent_jobs=1, queue_size=0)
    plain.check_capacity({})  # a free slot
    with pytest.raises(Conflict, match="already in progress .*at most 1 job.* stop it or wait"):
        plain.check_capacity(RUNNING)


def test_with_a_queue_jobs_wait_until_it_is_full(admission):
    queued = _admission(admission, max_concurrent_jobs=1, queue_size=2)
    queued.check_capacity(RUNNING, waiting=0)
    queued.check_capacity(RUNNING, waiting=1)
    with pytest.raises(Conflict, match=r"queue is full \(2 waiting, FORGE_QUEUE_SIZE=2\)"):
        queued.check_capacity(RUNNING, waiting=2)
    # A slot that frees while others wait is theirs: a newcomer joins the line (if there is room).
    assert queued.has_free_slot({})
    queued.check_capacity({}, waiting=1)
    with pytest.raises(Conflict, match="queue is full"):
        queued.check_capacity({}, waiting=2)


def _queue_jobs(registry: Registry, *job_ids: str) -> None:
    for job_id in job_ids:
        registry.add_job(job_id, {"task": "text-generation", "model_name": "forge/tiny-llama", "dataset": "d.jsonl"},
                         status="queued")


def test_the_queue_is_the_queued_jobs_first_in_line_first(registry):
    queue = JobQueue(registry, size=3)
    _queue_jobs(registry, "train_a", "train_b", "train_c")
    assert [j.job_id for j in queue.waiting({})] == ["train_a", "train_b", "train_c"]
    # A job a run holds (a resume passes through `queued`) is not waiting.
    assert [j.job_id for j in queue.waiting({"train_a": object()})] == ["train_b", "train_c"]
    assert not queue.has_room({})
    registry.update_job("train_b", status="stopped")  # cancelled
    assert queue.has_room({})
    assert queue.renumber({}) == [("train_a", queue.position_message(1, 2)), ("train_c", queue.position_message(2, 2))]
    assert queue.position_message(2, 2) == "Queued: 2 of 2 in line; it starts when a running job ends"


def test_a_restarted_manager_finds_the_queue_as_it_was(registry, storage, tracker):
    _queue_jobs(registry, "train_a", "train_b")
    registry.add_job("train_run", {"task": "text-generation"}, status="training")
    registry.close()
    reopened = Registry(storage.database)
    try:
        tracker.registry = reopened
        tracker.mark_orphans_interrupted(keep_queued=True)
        assert [j.job_id for j in JobQueue(reopened, size=2).waiting({})] == ["train_a", "train_b"]
        assert reopened.get_job("train_run").status == "interrupted"
        # Without a queue configured, nothing waits: queued jobs are interrupted like the rest, as before.
        tracker.mark_orphans_interrupted()
        assert JobQueue(reopened, size=0).waiting({}) == []
        assert reopened.get_job("train_a").status == "interrupted"
    finally:
        reopened.close()


def test_a_resumed_job_takes_its_place_at_the_end_of_the_line(registry, tracker):
    """Its place is when it joined the queue, not when it was first created."""
    queue = JobQueue(registry, size=3)
    registry.add_job("train_old", {"task": "text-generation", "model_name": "forge/tiny-llama",
                                   "dataset": "d.jsonl"}, status="interrupted")
    _queue_jobs(registry, "train_a", "train_b")
    where = tracker.queue_resume("train_old")
    assert where == "from step 0 (it has no checkpoint)"
    assert [j.job_id for j in queue.waiting({})] == ["train_a", "train_b", "train_old"]
    assert registry.get_job("train_old").queued_at > registry.get_job("train_b").queued_at
