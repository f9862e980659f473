"""One real Ray instance and one Serve app for the whole integration session.

Everything is real: Ray, Serve's HTTP proxy on a free loopback port, the
TrainingManager actor, Ray Train workers training the built-in tiny model, and
the SQLite registry under a temporary FORGE_HOME.

Every REST training job costs about 17 s of Ray Train start-up however short it is,
so tests that only need some completed job or trained model share `trained_models`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from support import SAMPLE_DATASET, Service, free_port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each fuzzed operation gets a test id of its own (test_fuzz_openapi.py).

    schemathesis names each item after its operation ("...[GET /v1/models]"), but pytest 9.2
    builds an item's id from its original name and a parametrize call, which schemathesis
    items have not: all of them would share one id, and pytest-xdist, which tells tests
    apart by id, would run one of them in place of all.
    """
    for item in items:
        label = getattr(item, "operation_label", None)
        if label and item.nodeid.endswith(f"::{item.originalname}"):
            item._id = item._id.with_params(label)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory):
    import ray
    from ray import serve

    home = tmp_path_factory.mktemp("forge_home")
    os.environ["FORGE_HOME"] = str(home)
    os.environ["FORGE_STOP_GRACE_S"] = "20"
    os.environ["FORGE_MAX_UPLOAD_MB"] = "2"
    os.environ["FORGE_UPLOAD_PART_MB"] = "1"
    dataset_root = home / "dataset-root"
    dataset_root.mkdir()
    os.environ["FORGE_DATASET_ROOTS"] = str(dataset_root)
    os.environ["RAY_TRAIN_ENABLE_PRINT_PATCH"] = "0"
    # Two of the processes Ray Train starts per run that no test needs: the spot-preemption watcher
    # (one more Python process per job) and Train's metrics export. Each job pays less start-up.
    os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] = "0"
    os.environ["RAY_TRAIN_METRICS_ENABLED"] = "0"
    port = free_port()

    # "local": always a fresh instance, never one a `ray start` elsewhere on this machine left behind.
    context = ray.init(address="local", num_cpus=2, namespace="modelforge-tests", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    from deployments.app import AppArgs, build_app

    serve.run(build_app(AppArgs()), name="modelforge", route_prefix="/")
    service = Service(url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}", home=home,
                      dashboard_url=f"http://{context.dashboard_url}",
                      session_dir=Path(context.address_info["session_dir"]))
    service.first_status = service.get("/api/training_status").json()
    try:
        yield service
    finally:
        # The whole local instance goes, Serve with it: Serve's graceful drain first (about 5 s)
        # would serve no test. The restart test covers a user's Ctrl-C of `serve run`.
        ray.shutdown()


SHARED_JOB = {"max_steps": 3, "eval_split": 0}
LEARNING_RATES = (5e-3, 3e-2)


@pytest.fixture(scope="session")
def shared_dataset(service: Service) -> str:
    upload = service.upload(SAMPLE_DATASET, name="trained_models.jsonl")
    assert upload.status_code == 200, upload.text
    return upload.json()["filename"]


@pytest.fixture(scope="session")
def start_race(service: Service, shared_dataset: str) -> list[requests.Response]:
    """20 simultaneous starts of the first shared job (see `trained_models`): the 20 responses.

    The session's service allows one job at a time, so one is accepted; test_concurrency.py
    checks the other answers, and `trained_models` waits for the accepted job.
    """
    body = {**SHARED_JOB, "dataset": shared_dataset, "learning_rate": LEARNING_RATES[0]}
    with ThreadPoolExecutor(max_workers=20) as pool:
        return list(pool.map(lambda _: service.start(**body), range(20)))


@pytest.fixture(scope="session")
def trained_models(service: Service, shared_dataset: str, start_race: list[requests.Response]) -> list[dict]:
    """Two short completed jobs of forge/tiny-llama, trained one after the other: their final statuses.

    The first is the job `start_race` accepted. Each status has the job's `job_id` and its
    registered `model_id`. The two learning rates make the models answer differently
    (test_playground_adapters.py relies on it). Shared by every module that asks for it,
    in whichever order they run: no test may delete these models.
    """
    from forge.schemas import TERMINAL_STATUSES

    accepted = [r for r in start_race if r.status_code == 200]
    assert len(accepted) == 1, [r.text for r in start_race]
    finals = []
    for learning_rate in LEARNING_RATES:
        if learning_rate == LEARNING_RATES[0]:
            started = accepted[0]
        else:
            started = service.start(**SHARED_JOB, dataset=shared_dataset, learning_rate=learning_rate)
            assert started.status_code == 200, started.text
        final = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, started.json()["job_id"])
        assert final["status"] == "completed", final
        finals.append(final)
    return finals
