"""Schemathesis against the node API app (in-process ASGI): every check, a bounded and derandomized
run, so it is repeatable; no answer may be a 5xx or stray from the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from test_node_api import FakeView, view  # noqa: F401 - the filled store the API tests read

from node.runtime.api import create_app

APP = create_app()  # the view is set per test below
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(autouse=True)
def _serve(view: FakeView) -> Iterator[None]:  # noqa: F811
    APP.state.view = view
    yield
    APP.state.view = None


@schema.parametrize()
@settings(max_examples=40, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_node_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    response = case.call_and_validate()
    assert response.status_code < 500
