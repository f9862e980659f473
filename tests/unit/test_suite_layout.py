"""`make test` runs every wing: pytest's testpaths name each tests/ folder, and its two workers share them out.

A serial run (plain `pytest`) takes the folders in testpaths' order, integration last;
`make test` runs the integration tests in one pytest-xdist worker and everything else
beside them in the other (tests/wing_scheduling.py).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]


def test_testpaths_name_every_folder_of_tests_and_run_integration_last():
    testpaths = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    folders = {f"tests/{d.name}" for d in (REPO / "tests").iterdir() if d.is_dir() and any(d.glob("test_*.py"))}
    assert set(testpaths) == folders
    assert testpaths[-1] == "tests/integration"


class _Worker:
    """Stands in for one of pytest-xdist's worker processes: it records the tests it is sent."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.extend(indexes)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_make_test_gives_one_worker_the_integration_tests_first_and_in_order_and_the_other_whole_modules():
    from wing_scheduling import WingScheduling

    integration = [f"tests/integration/test_{name}.py::test_{i}" for name in ("story", "errors") for i in range(3)]
    # A unit module with more tests than the integration folder: xdist alone would hand it out first.
    big_module = [f"tests/unit/test_big.py::test_{i}" for i in range(10)]
    small_module = ["tests/training/test_recipe.py::test_sft", "tests/training/test_recipe.py::test_dpo"]
    own_ray = ["tests/deployment/test_restart.py::test_ctrl_c"]  # starts a Ray instance of its own
    collection = big_module + small_module + own_ray + integration
    config = SimpleNamespace(getvalue=lambda name: ["2*popen"], option=SimpleNamespace(loadscopereorder=True))
    scheduler = WingScheduling(config)
    workers = [_Worker("gw0"), _Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()

    service_worker, wings_worker = workers
    assert [collection[i] for i in service_worker.sent] == integration  # all of them, in file order, alone

    def finish(worker: _Worker) -> None:  # the worker runs what it was sent, and is sent more meanwhile
        while pending := [i for i in worker.sent if not scheduler.assigned_work[worker][
                scheduler._split_scope(collection[i])][collection[i]]]:
            scheduler.mark_test_complete(worker, pending[0])

    finish(wings_worker)  # the wings take minutes, the integration tests a quarter of an hour
    finish(service_worker)
    assert scheduler.tests_finished
    assert [collection[i] for i in service_worker.sent] == integration
    # Whole modules, the bigger first (xdist's order otherwise).
    assert [collection[i] for i in wings_worker.sent] == big_module + small_module + own_ray
