"""StatusCopy: the ingress's copy of job statuses answers only what it knows is as current as the feed it read."""

from __future__ import annotations

from forge.status_copy import StatusCopy

IDLE = {"job_id": None, "status": "idle", "current_step": 0}


def status(job_id: str, state: str, step: int = 0) -> dict:
    return {"job_id": job_id, "status": state, "current_step": step}


def following(epoch: str = "e1", seq: int = 10, default: dict = IDLE) -> StatusCopy:
    copy = StatusCopy()
    copy.restart(epoch, seq, default)
    return copy


def test_nothing_is_answered_before_the_feed_is_followed_or_while_the_manager_is_away():
    copy = StatusCopy()
    assert copy.answer(None) is None and copy.answer("train_a") is None
    copy.learn("e1", 3, "train_a", status("train_a", "running"))  # no feed followed: not kept
    assert copy.answer("train_a") is None

    copy = following(default=status("train_a", "running", 4))
    assert copy.answer("train_a") == status("train_a", "running", 4)
    copy.stop_following()
    assert copy.answer("train_a") is None and copy.answer(None) is None


def test_a_jobs_status_follows_the_feed_and_an_older_answer_never_replaces_a_newer_one():
    copy = following()
    assert copy.apply([(11, status("train_a", "starting")), (12, status("train_a", "running", 1))])
    assert copy.answer("train_a") == status("train_a", "running", 1)
    assert copy.applied == 12
    # The manager's answer to a miss, read before the feed's entry 12 was published: ignored.
    copy.learn("e1", 11, "train_a", status("train_a", "starting"))
    assert copy.answer("train_a") == status("train_a", "running", 1)
    assert copy.answer("train_b") is None  # never seen: the caller asks the manager


def test_the_default_status_stays_answerable_while_the_default_job_only_progresses():
    copy = following(default=status("train_a", "running", 4))
    assert copy.answer(None) == status("train_a", "running", 4)
    assert copy.apply([(11, status("train_a", "running", 5)), (12, status("train_a", "running", 6))])
    assert copy.answer(None) == status("train_a", "running", 6)


def test_a_new_job_or_a_state_change_makes_the_default_the_managers_to_say_again():
    copy = following(default=status("train_a", "completed", 9))
    assert copy.apply([(11, status("train_b", "queued"))])  # a newer job: is it now the default?
    assert copy.answer(None) is None
    copy.learn("e1", 10, None, status("train_a", "completed", 9))  # read before the new job: no use
    assert copy.answer(None) is None
    copy.learn("e1", 11, None, status("train_b", "queued"))
    assert copy.answer(None) == status("train_b", "queued")

    assert copy.apply([(12, status("train_b", "running", 1))])  # queued -> running: a state change
    assert copy.answer(None) is None
    copy.learn("e1", 12, None, status("train_b", "running", 1))
    assert copy.apply([(13, status("train_b", "running", 2))])
    assert copy.answer(None) == status("train_b", "running", 2)


def test_idle_is_answered_until_the_first_job_appears():
    copy = following(default=IDLE)
    assert copy.answer(None) == IDLE
    assert copy.apply([(11, status("train_a", "queued"))])
    assert copy.answer(None) is None


def test_after_a_change_made_here_nothing_is_answered_until_the_feed_has_caught_up_with_it():
    copy = following(default=status("train_a", "running", 4))
    copy.require("e1", 12)  # a stop: its snapshot is entry 12 of the feed
    assert copy.answer("train_a") is None and copy.answer(None) is None
    assert copy.apply([(11, status("train_a", "running", 5))])
    assert copy.answer("train_a") is None
    assert copy.apply([(12, status("train_a", "stopped", 5))])
    assert copy.answer("train_a") == status("train_a", "stopped", 5)


def test_a_requirement_survives_a_restart_from_a_position_before_it():
    copy = following(default=status("train_a", "running", 4))
    copy.require("e1", 12)
    copy.restart("e1", 11, status("train_a", "running", 5))  # read again, from before the change
    assert copy.answer("train_a") is None
    assert copy.apply([(12, status("train_a", "stopped", 5))])
    assert copy.answer("train_a") == status("train_a", "stopped", 5)


def test_a_restarted_manager_makes_the_copy_answer_nothing_until_it_follows_the_new_feed():
    copy = following(default=status("train_a", "running", 4))
    copy.require("e2", 1)  # a change made on a restarted manager (a feed of another epoch)
    assert copy.answer("train_a") is None
    copy.restart("e2", 3, status("train_a", "interrupted", 4))
    assert copy.answer("train_a") == status("train_a", "interrupted", 4)
    copy.learn("e1", 99, "train_a", status("train_a", "running", 7))  # an answer from the previous life
    assert copy.answer("train_a") == status("train_a", "interrupted", 4)


def test_entries_that_skip_part_of_the_feed_are_refused():
    copy = following(seq=10)
    assert not copy.apply([(15, status("train_a", "running", 3))])
    assert copy.answer("train_a") is None and copy.answer(None) is None


def test_a_deleted_job_is_never_answered_again_even_from_entries_still_in_flight():
    copy = following(default=status("train_a", "completed", 9))
    copy.forget("train_a")
    assert copy.answer("train_a") is None and copy.answer(None) is None
    assert copy.apply([(11, status("train_a", "completed", 9))])
    copy.learn("e1", 11, "train_a", status("train_a", "completed", 9))
    assert copy.answer("train_a") is None


def test_the_oldest_learned_jobs_are_dropped_beyond_the_limit():
    copy = following()
    copy.MAX_JOBS = 3
    assert copy.apply([(11 + n, status(f"train_{n}", "completed")) for n in range(4)])
    assert copy.answer("train_0") is None
    assert [copy.answer(f"train_{n}")["job_id"] for n in (1, 2, 3)] == ["train_1", "train_2", "train_3"]
