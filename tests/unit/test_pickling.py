"""The ingress app's schema survives the pickle round trip Serve gives it (see deployments/pickling.py)."""

from __future__ import annotations

from ray import cloudpickle


def test_a_frozen_copy_of_the_app_publishes_the_same_schema():
    from deployments.api import app

    frozen = cloudpickle.loads(cloudpickle.dumps(app))
    frozen.openapi_schema = None
    assert frozen.openapi() == app.openapi()
    # What the round trip used to add to every Query(...) parameter.
    assert '"example": {}' not in str(frozen.openapi()).replace("'", '"')
