"""20 simultaneous starts against the session's service, which allows one job at a time: exactly one accepted.

The race is the session's first shared job (`start_race` in conftest.py), so the
accepted job is one of `trained_models`; a limit of 2 is in test_load.py.
"""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.integration


def test_twenty_simultaneous_starts_accept_exactly_one(start_race: list[requests.Response],
                                                       trained_models: list[dict]):
    codes = sorted(r.status_code for r in start_race)
    assert codes == [200] + [409] * 19, [r.text for r in start_race if r.status_code not in (200, 409)]
    for rejected in (r for r in start_race if r.status_code == 409):
        assert rejected.json()["status_code"] == 409 and "already in progress" in rejected.json()["detail"]
    accepted = next(r.json()["job_id"] for r in start_race if r.status_code == 200)
    # The accepted job ran to the end: it is the first of the shared models.
    assert trained_models[0]["job_id"] == accepted and trained_models[0]["status"] == "completed"
