"""Concurrent requests against the one TrainingManager (FORGE_MAX_CONCURRENT_JOBS=1 in this session)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from support import SAMPLE_DATASET, Service

from forge.schemas import TERMINAL_STATUSES

pytestmark = pytest.mark.integration


def test_twenty_simultaneous_starts_accept_exactly_one(service: Service):
    upload = service.upload(SAMPLE_DATASET, name="concurrent.jsonl")
    assert upload.status_code == 200, upload.text
    dataset = upload.json()["filename"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: service.start(dataset=dataset, max_steps=2, eval_split=0), range(20)))

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 19, [r.text for r in responses if r.status_code not in (200, 409)]
    for rejected in (r for r in responses if r.status_code == 409):
        assert rejected.json()["status_code"] == 409 and "already in progress" in rejected.json()["detail"]
    job_id = next(r.json()["job_id"] for r in responses if r.status_code == 200)
    assert service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id)["status"] == "completed"
