"""The coordinator's routes against hostile bodies: a deeply nested /embed body (which segfaulted the
process once web3 had raised the recursion limit), oversized bodies, and an OpenAPI document that
says what the routes do."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from coordhelpers import make_app
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]

# The coordinator's app in a process of its own, web3 imported first as in `chorus coordinator run`:
# a crash there is a failed test, not a dead test run. The models are not needed: the body is
# refused before any model is called.
DEEP_BODY_SCRIPT = textwrap.dedent("""
    import sys
    from types import SimpleNamespace

    import web3  # noqa: F401 - py_ecc, imported through it, raises the recursion limit to 100,000
    from fastapi.testclient import TestClient

    sys.path.insert(0, "tests/coordinator")
    from coordhelpers import make_app

    app, service = make_app(SimpleNamespace(decide_batch=lambda payloads: []))
    client = TestClient(app)
    deep = b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for route in ("/embed", "/decide"):
        r = client.post(route, content=deep, headers={"content-type": "application/json"})
        print(route, r.status_code, r.headers["content-type"], r.json()["error"])
    print("/health", client.get("/health").status_code)
    service.close()
""")


def test_a_deeply_nested_body_is_refused_and_the_coordinator_lives_on() -> None:
    out = subprocess.run([sys.executable, "-c", DEEP_BODY_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, f"the coordinator's process died ({out.returncode}): {out.stderr[-2000:]}"
    lines = out.stdout.splitlines()
    assert lines == ["/embed 422 application/json invalid_request", "/decide 422 application/json invalid_request",
                     "/health 200"], out.stdout


@pytest.fixture
def stub_client() -> Any:
    app, service = make_app(SimpleNamespace(decide_batch=lambda payloads: []), max_texts=2, max_text_chars=10)
    yield TestClient(app), service.settings
    service.close()


@pytest.mark.parametrize("route", ["/embed", "/decide"])
def test_a_body_over_the_limit_is_a_json_413(stub_client: Any, route: str) -> None:
    client, settings = stub_client
    r = client.post(route, content=b" " * (settings.max_body_bytes + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "content_too_large"


def test_the_body_limit_fits_the_largest_valid_request(stub_client: Any) -> None:
    _, settings = stub_client
    from node.protocol.payload import MAX_PAYLOAD_BYTES

    assert settings.max_body_bytes >= MAX_PAYLOAD_BYTES
    escaped = '{"texts": [' + ", ".join(['"' + "\\u00e9" * settings.max_text_chars + '"'] * settings.max_texts) + "]}"
    assert len(escaped.encode()) <= settings.max_body_bytes


def test_openapi_says_what_the_routes_do(stub_client: Any) -> None:
    client, _ = stub_client
    paths = client.get("/openapi.json").json()["paths"]
    decide = paths["/decide"]["post"]
    schema = decide["requestBody"]["content"]["application/json"]["schema"]
    assert decide["requestBody"]["required"] is True and "schema" in schema["required"]
    assert {"413", "422", "500", "503"} <= set(decide["responses"])
    assert {"400", "413", "422", "500", "503"} <= set(paths["/embed"]["post"]["responses"])
    # /decide's code refuses a body without `schema`, as its document now says.
    r = client.post("/decide", json={"asset": "ETH", "headlines": ["x"]})
    assert r.status_code == 422 and "unsupported payload schema" in r.json()["message"]


def test_a_body_that_is_not_utf8_is_a_declared_400(stub_client: Any) -> None:
    client, _ = stub_client
    r = client.post("/embed", content=b'{"texts": ["\xff"]}', headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and r.headers["content-type"] == "application/json"
    assert str(r.status_code) in client.get("/openapi.json").json()["paths"]["/embed"]["post"]["responses"]
