"""How `make test`'s two pytest-xdist workers share the suite (the hook is in tests/conftest.py)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from xdist.scheduler import LoadScopeScheduling

# The integration tests share one Ray instance and one Serve app (tests/integration/conftest.py).
SERVICE_SCOPE = "tests/integration"


class _ServiceFirst(OrderedDict):
    """A work queue that hands out the integration tests first, whatever the other units' sizes."""

    def __setitem__(self, scope: str, tests: dict) -> None:
        super().__setitem__(scope, tests)
        if scope == SERVICE_SCOPE:
            self.move_to_end(scope, last=False)


class WingScheduling(LoadScopeScheduling):
    """`make test`'s two xdist workers: one runs every integration test, the other everything else.

    The integration tests are one unit, so one worker process holds the session's service
    and runs them in file order, as a serial run does; every other test module is a unit of
    its own, so module fixtures (a trained model, a built engine) are made once. The
    integration unit, the long one, starts first; beside it the other worker runs the
    in-process wings, then the deployment tests, which start Ray instances of their own.
    """

    def __init__(self, config: pytest.Config, log=None) -> None:
        super().__init__(config, log)
        self.workqueue = _ServiceFirst()

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return SERVICE_SCOPE if module.startswith(SERVICE_SCOPE + "/") else module
