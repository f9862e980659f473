"""Property-based fuzzing of every REST endpoint from the service's own OpenAPI schema.

schemathesis reads the ingress app's OpenAPI schema (the one /openapi.json
serves, checked equal below), generates valid and
invalid requests for each operation (a bounded number per operation, so CI can
run it) and checks each response: never a 5xx, a status code the schema
documents, and a body that matches the documented schema (the error shape
included: the contract's under /api, OpenAI's under /v1, as each route documents it).

The fuzzer deletes, renames and stops whatever ids it makes up, so it runs against a
second app in the session's cluster with a registry of its own (FORGE_HOME), never
against the session's shared models and jobs.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from support import NO_PLAYGROUND, Service, side_app

from deployments.api import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 25


# Read at collection time from the app object itself, so the tests can be parametrized per operation.
schema = schemathesis.openapi.from_dict(app.openapi())


@pytest.fixture(scope="module")
def fuzzed(service: Service, tmp_path_factory: pytest.TempPathFactory):
    # No spare runner: the fuzzer's made-up requests start no job worth warming a runner for.
    environ = {"FORGE_HOME": str(tmp_path_factory.mktemp("fuzz_home")), "FORGE_SPARE_RUNNER": "0"}
    with side_app(service, "fuzz", environ, **NO_PLAYGROUND) as fuzzed:
        yield fuzzed


def test_the_fuzzed_schema_is_the_one_the_service_serves(service: Service):
    assert service.get("/openapi.json").json() == app.openapi()


@schema.parametrize()
# Derandomized: every run sends the same examples, so a finding reproduces and CI does not flip on a draw.
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_every_endpoint_holds_its_schema(case, fuzzed: Service):
    # Every check but "schema-valid data is accepted": the service also validates what a
    # schema cannot say (a dataset's rows, a filename's extension, a model that must exist).
    response = case.call_and_validate(base_url=fuzzed.url, timeout=60,
                                      excluded_checks=[checks.positive_data_acceptance])
    assert response.status_code < 500
