"""Load on the running service, bounded in count and time, on loopback only.

20 simultaneous starts against a service allowing 2 concurrent jobs: exactly two
accepted (the session's own service allows 1: see test_concurrency.py).

The load on a training job (50 status pollers and 5 WebSocket subscribers while a
2-worker job trains) is in test_user_story.py, on the job the story then stops:
one Ray Train start-up (~17 s) serves both.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from support import NO_PLAYGROUND, SAMPLE_DATASET, Service, side_app

from forge.schemas import TERMINAL_STATUSES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_job_service(service: Service, tmp_path_factory: pytest.TempPathFactory):
    """A second service in the same cluster, with its own manager, registry and a limit of 2 jobs."""
    environ = {"FORGE_HOME": str(tmp_path_factory.mktemp("two_jobs_home")), "FORGE_MAX_CONCURRENT_JOBS": "2"}
    with side_app(service, "two_jobs", environ, **NO_PLAYGROUND) as two_jobs:
        yield two_jobs


def test_twenty_simultaneous_starts_accept_exactly_two_with_a_limit_of_two(two_job_service: Service):
    dataset = two_job_service.upload(SAMPLE_DATASET, name="limit2.jsonl").json()["filename"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: two_job_service.start(dataset=dataset, max_steps=2, eval_split=0),
                                  range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 2 + [409] * 18, [r.text for r in responses if r.status_code not in (200, 409)]
    for rejected in (r for r in responses if r.status_code == 409):
        assert "at most 2 job(s)" in rejected.json()["detail"]
    for accepted in (r for r in responses if r.status_code == 200):
        job_id = accepted.json()["job_id"]
        assert two_job_service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id)["status"] == "completed"
