"""Schemathesis against the coordinator's app (node routes + /embed + /decide over the real U and
MiniLM, in-process ASGI): every check, bounded and derandomized; no 5xx, no answer off its schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from coordhelpers import make_app
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance


class _Deferred:
    """An ASGI app that forwards to the coordinator app the fixture builds (the schema is read at
    collection time, the models load once per session)."""

    target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


APP = _Deferred()
SCHEMA_APP, _service = make_app(type("NoAgent", (), {"decide_batch": staticmethod(lambda payloads: [])})(),
                                max_texts=4, max_text_chars=64)
_service.close()
schema = schemathesis.openapi.from_dict(SCHEMA_APP.openapi())
schema.app = APP


@pytest.fixture(autouse=True)
def _serve(u_agent: Any) -> Iterator[None]:
    app, service = make_app(u_agent, max_texts=4, max_text_chars=64)
    APP.target = app
    yield
    service.close()


@schema.parametrize()
@settings(max_examples=30, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_coordinator_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    # Every check but one on /decide: "schema-valid data is accepted" cannot hold there, as JSON
    # Schema cannot say that `volumes` is as long as `prices` (schemathesis.toml says the same).
    excluded = [positive_data_acceptance] if case.operation.path == "/decide" else []
    response = case.call_and_validate(excluded_checks=excluded)
    assert response.status_code < 500
