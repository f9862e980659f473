"""The job tracker without Ray: progress, restarts, how runs end, and the feed.

The registry is the real SQLite one on tmp_path, the feed the real ChangeFeed; what
only Ray knows (the checkpoint Ray Train recorded, killing a runner) is handed in
by the `ray_side` fixture, which records the kills the tracker asks for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.jobs.tracker import run_end
from forge.training.manager_link import ProgressUpdate, WorkerEvent

pytestmark = pytest.mark.anyio


def steps(*numbers: int, total: int = 10) -> list[ProgressUpdate]:
    return [ProgressUpdate(current_step=n, total_steps=total, current_epoch=n / 5, loss=1.0 / n) for n in numbers]


async def test_progress_never_goes_backwards(tracker, open_job):
    job = open_job(num_train_epochs=2)
    seen = []
    for update in steps(1, 3, 2, 3, 3, 5, 4, total=10):
        tracker.apply_progress("train_0001", update)
        status = tracker.status_of("train_0001")
        seen.append((status.current_step, status.progress))
    assert seen == [(1, 10.0), (3, 30.0), (3, 30.0), (3, 30.0), (3, 30.0), (5, 50.0), (5, 50.0)]
    assert tracker.status_of("train_0001").status == "training"
    assert tracker.status_of("train_0001").total_epochs == 2
    # The registry's row says the same as the live record.
    row = tracker.registry.get_job("train_0001")
    assert (row.current_step, row.progress) == (5, 50.0) == (job.record.current_step, job.record.progress)


async def test_an_active_jobs_status_and_feed_say_when_it_last_changed_as_its_row_does(tracker, open_job):
    open_job()
    opened = tracker.status_of("train_0001").updated_at
    tracker.apply_progress("train_0001", steps(1)[0])
    moved = tracker.status_of("train_0001")
    assert moved.updated_at > opened
    assert moved.updated_at == tracker.registry.get_job("train_0001").updated_at
    [(_, published)] = await tracker.feed.wait_after(tracker.feed.seq - 1, timeout=0)
    assert published["updated_at"] == moved.updated_at


async def test_progress_stays_below_100_until_the_model_is_registered(tracker, open_job, write_adapter):
    job = open_job()
    tracker.apply_progress("train_0001", steps(10, total=10)[0])
    assert tracker.status_of("train_0001").progress == 99.0
    write_adapter("train_0001")
    assert tracker.end_run(job, {"stopped": False, "metrics": {"final_loss": 0.5}}) == "completed"
    assert tracker.status_of("train_0001").progress == 100.0


async def test_a_restart_drops_the_history_past_the_checkpoint(tracker, open_job, registry):
    open_job()
    tracker.record_worker_event("train_0001", WorkerEvent(kind="workers_started", data={"resumed_step": None}))
    for update in steps(1, 2, 3, 4, 5):
        tracker.apply_progress("train_0001", update)
    tracker.record_worker_event("train_0001", WorkerEvent(kind="checkpoint", data={"step": 4, "stage": "sft"}))
    # A worker died after step 5; Ray Train restarts the group from the checkpoint at step 4.
    tracker.record_worker_event("train_0001", WorkerEvent(kind="workers_started", data={"resumed_step": 4}))
    assert [m["step"] for m in registry.metrics("train_0001")] == [1, 2, 3, 4]
    for update in steps(5, 6):
        tracker.apply_progress("train_0001", update)
    assert [m["step"] for m in registry.metrics("train_0001")] == [1, 2, 3, 4, 5, 6]
    # The status never went back to step 4 while the redone steps came in.
    assert tracker.status_of("train_0001").current_step == 6
    messages = {e.kind: e.message for e in registry.events("train_0001")}
    assert messages["checkpoint"] == "checkpoint saved at step 4"
    assert "restart 1 of at most 2" in messages["restart"]
    assert "continuing from the checkpoint at step 4" in messages["restart"]


async def test_steps_the_manager_missed_are_filled_in_from_the_checkpoint_a_run_resumes_from(
        tracker, open_job, registry):
    """The manager was down while steps 4..6 ran and the checkpoint at step 6 was saved; the resumed run says
    what that checkpoint's trainer logged. Steps it already has keep their live values."""
    open_job()
    tracker.record_worker_event("train_0001", WorkerEvent(kind="workers_started", data={"resumed_step": None}))
    for update in steps(1, 2, 3):
        tracker.apply_progress("train_0001", update)
    logged = [{"step": s, "loss": 2.0 / s, "learning_rate": 1e-3} for s in range(1, 7)] + [
        {"step": 6, "eval_loss": 0.9}]
    tracker.record_worker_event("train_0001", WorkerEvent(kind="workers_started",
                                                          data={"resumed_step": 6, "history": logged}))
    history = registry.metrics("train_0001")
    assert [m["step"] for m in history] == [1, 2, 3, 4, 5, 6, 6]
    assert [m["loss"] for m in history[:3]] == [u.loss for u in steps(1, 2, 3)]
    assert history[3:] == [{"step": 4, "loss": 0.5, "learning_rate": 1e-3}, {"step": 5, "loss": 0.4,
                           "learning_rate": 1e-3}, {"step": 6, "loss": 2.0 / 6, "learning_rate": 1e-3},
                           {"step": 6, "eval_loss": 0.9}]
    # The resumed run's own steps follow; a second resume from the same checkpoint adds nothing twice.
    tracker.apply_progress("train_0001", steps(7)[0])
    tracker.record_worker_event("train_0001", WorkerEvent(kind="workers_started",
                                                          data={"resumed_step": 6, "history": logged}))
    assert [m["step"] for m in registry.metrics("train_0001")] == [1, 2, 3, 4, 5, 6, 6]
    assert registry.last_metric("train_0001", "loss") == 2.0 / 6


async def test_a_restart_without_a_checkpoint_starts_the_history_over(tracker, open_job, registry):
    open_job()
    tracker.record_worker_event("train_0001", WorkerEvent(kind="workers_started", data={"resumed_step": None}))
    for update in steps(1, 2):
        tracker.apply_progress("train_0001", update)
    tracker.record_worker_event("train_0001", WorkerEvent(kind="workers_started", data={"resumed_step": None}))
    assert registry.metrics("train_0001") == []
    assert "continuing from step 0" in registry.events("train_0001")[-1].message


async def test_a_stop_racing_the_final_step_keeps_the_finished_model(tracker, open_job, write_adapter, registry,
                                                                     storage):
    job = open_job()
    write_adapter("train_0001")
    tracker.request_stop("train_0001")
    assert tracker.status_of("train_0001").status == "stopping"
    # The run finished its last step before it saw the request.
    assert tracker.end_run(job, {"stopped": False, "metrics": {"final_loss": 0.5, "note": "text"}}) == "completed"
    await tracker.close("train_0001")
    status = tracker.status_of("train_0001")
    assert status.status == "completed" and status.model_id is not None
    model = registry.get_model(status.model_id)
    assert model.job_id == "train_0001" and model.metrics == {"final_loss": 0.5}
    assert (Path(storage.path_of(model.path)) / "forge.json").is_file()
    assert (Path(storage.path_of(model.path)) / "adapter_model.safetensors").is_file()


async def test_a_run_stopped_early_registers_nothing(tracker, open_job, write_adapter, registry, storage):
    job = open_job()
    staging = write_adapter("train_0001")  # whatever the run left behind
    tracker.request_stop("train_0001")
    assert tracker.end_run(job, {"stopped": True}) == "stopped"
    await tracker.close("train_0001")
    status = tracker.status_of("train_0001")
    assert (status.status, status.model_id, status.message) == ("stopped", None, "Training stopped by request")
    assert registry.list_models() == []
    assert not staging.exists()
    assert tracker.active == {}


async def test_a_lost_runner_interrupts_the_job_and_names_its_checkpoint(tracker, open_job, ray_side):
    job = open_job()
    ray_side.checkpoints["train_0001"] = 6
    assert tracker.end_run(job, ConnectionError("actor died"), runner_lost=True) == "interrupted"
    status = tracker.status_of("train_0001")
    assert status.status == "interrupted"
    assert status.message == ("its runner was lost; its checkpoint at step 6 is kept: "
                              "POST /api/jobs/train_0001/resume continues it")


async def test_a_worker_error_fails_the_job_with_its_message(tracker, open_job, ray_side):
    job = open_job()
    tracker.record_worker_event("train_0001", WorkerEvent(kind="error", data={"message": "ValueError: bad row 3"}))
    assert ray_side.killed == ["train_0001"]  # at once: restarting would repeat the error
    # The kill makes the runner call fail as if the runner were lost: the worker's error decides.
    assert tracker.end_run(job, ConnectionError("actor died"), runner_lost=True) == "failed"
    assert tracker.status_of("train_0001").message == (
        "Training failed: ValueError: bad row 3 (the workers' output: GET /api/jobs/train_0001/logs)")


async def test_any_other_exception_fails_the_job(tracker, open_job):
    job = open_job()
    assert tracker.end_run(job, RuntimeError("disk full")) == "failed"
    status = tracker.status_of("train_0001")
    assert (status.status, status.message) == (
        "failed", "Training failed: disk full (the workers' output: GET /api/jobs/train_0001/logs)")


async def test_a_finished_run_without_an_adapter_fails(tracker, open_job, registry):
    job = open_job()
    assert tracker.end_run(job, {"stopped": False, "metrics": {}}) == "failed"
    assert tracker.status_of("train_0001").model_id is None and registry.list_models() == []


@pytest.mark.parametrize("outcome, stop, worker_error, lost, end", [
    ({"stopped": False}, False, None, False, "completed"),
    ({"stopped": False}, True, None, False, "completed"),
    ({"stopped": True}, True, None, False, "stopped"),
    (RuntimeError("killed"), True, None, True, "stopped"),
    (RuntimeError("lost"), False, None, True, "interrupted"),
    (RuntimeError("lost"), False, "ValueError: x", True, "failed"),
    (RuntimeError("boom"), False, None, False, "failed"),
])
def test_how_a_run_ends(outcome, stop, worker_error, lost, end):
    assert run_end(outcome, stop_requested=stop, worker_error=worker_error, runner_lost=lost) == end


async def test_the_feed_gets_a_snapshot_per_change(tracker, open_job, feed, write_adapter):
    start = feed.seq
    job = open_job()
    tracker.starting(job)
    for update in steps(1, 2, total=2):
        tracker.apply_progress("train_0001", update)
    write_adapter("train_0001")
    tracker.end_run(job, {"stopped": False, "metrics": {}})
    snapshots = [snapshot for _, snapshot in await feed.wait_after(start, timeout=0)]
    assert [(s["status"], s["current_step"], s["progress"]) for s in snapshots] == [
        ("queued", 0, 0.0), ("starting", 0, 0.0), ("training", 1, 50.0), ("training", 2, 99.0),
        ("completed", 2, 100.0)]
    assert all(s["job_id"] == "train_0001" for s in snapshots)
    assert snapshots[-1] == tracker.training_status().model_dump()


async def test_stop_requests_name_a_running_job(tracker, open_job):
    from forge.errors import Conflict, NotFound

    with pytest.raises(Conflict, match="no training job is running"):
        tracker.request_stop(None)
    with pytest.raises(NotFound):
        tracker.request_stop("train_nope")
    open_job()
    assert tracker.request_stop(None).record.job_id == "train_0001"
    assert tracker.stop_requested("train_0001") and tracker.stop_requested("train_gone")


def test_the_finish_is_estimated_from_the_pace_since_the_first_logged_step():
    from forge.jobs.tracker import estimate_finish

    origin = (10, "2026-12-01T10:00:00.000000Z")
    # 10 steps in 20 s since the first logged one: 2 s a step, 30 steps to go.
    assert estimate_finish(origin, 20, "2026-12-01T10:00:20.000000Z", 50) == "2026-12-01T10:01:20.000000Z"
    assert estimate_finish(origin, 50, "2026-12-01T10:01:20.000000Z", 50) == "2026-12-01T10:01:20.000000Z"
    assert estimate_finish(origin, 10, "2026-12-01T10:00:00.000000Z", 50) is None  # no pace yet
    assert estimate_finish(origin, 12, "2026-12-01T10:00:04.000000Z", 0) is None  # total not known


async def test_status_carries_the_estimated_finish_while_steps_flow_and_drops_it_at_the_end(
        tracker, open_job, write_adapter):
    job = open_job()

    def logged(step: int, second: int) -> ProgressUpdate:
        return ProgressUpdate(current_step=step, total_steps=10, loss=1.0,
                              logged_at=f"2026-12-01T10:00:{second:02d}.000000Z")

    tracker.apply_progress("train_0001", logged(1, 10))
    assert tracker.status_of("train_0001").estimated_finish is None  # one step says nothing of the pace
    tracker.apply_progress("train_0001", logged(3, 14))
    assert tracker.status_of("train_0001").estimated_finish == "2026-12-01T10:00:28.000000Z"
    # A restarted worker group redoes steps after loading its checkpoint: its pace starts over.
    tracker.record_worker_event("train_0001", WorkerEvent(kind="workers_started", data={"resumed_step": 2}))
    tracker.apply_progress("train_0001", logged(3, 40))
    tracker.apply_progress("train_0001", logged(4, 41))
    assert tracker.status_of("train_0001").estimated_finish == "2026-12-01T10:00:47.000000Z"
    write_adapter("train_0001")
    assert tracker.end_run(job, {"stopped": False, "metrics": {"final_loss": 0.5}}) == "completed"
    assert tracker.status_of("train_0001").estimated_finish is None
