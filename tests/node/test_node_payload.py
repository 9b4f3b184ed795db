"""Task payloads: validation, canonical round trips, hashing, fetching, the published schema."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.protocol import payload as pl
from node.protocol.errors import PayloadError

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
positive = st.floats(min_value=1e-9, max_value=1e12, allow_nan=False, allow_infinity=False)
non_negative = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
text = st.text(min_size=1, max_size=80)
json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | finite | st.text(max_size=20)
meta = st.dictionaries(st.text(max_size=10), json_scalars | st.lists(json_scalars, max_size=3), max_size=4)


@st.composite
def payloads(draw: st.DrawFn) -> pl.TaskPayload:
    n = draw(st.sampled_from([0, 2, 5, 33]))
    prices = draw(st.lists(positive, min_size=n, max_size=n))
    volumes = draw(st.lists(non_negative, min_size=n, max_size=n))
    headlines = draw(st.lists(text, max_size=4))
    flows = draw(st.one_of(st.just([]), st.lists(non_negative, min_size=8, max_size=8)))
    if not (prices or headlines or flows):
        headlines = ["at least one modality"]
    return pl.TaskPayload(
        asset=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,10}", fullmatch=True)),
        prices=prices, volumes=volumes, headlines=headlines, flows=flows,
        as_of=draw(st.none() | st.integers(0, pl.MAX_AS_OF)), meta=draw(st.none() | meta),
    )


@given(payloads())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_decode_encode_round_trip(payload: pl.TaskPayload) -> None:
    raw = pl.encode(payload)
    assert pl.decode(raw) == payload
    assert pl.encode(pl.decode(raw)) == raw  # canonical bytes are a fixed point
    assert pl.verify(raw, pl.payload_hash(raw)) == payload


@given(payloads(), st.integers(0, 4))
@settings(max_examples=50)
def test_any_json_layout_is_accepted_and_canonicalised(payload: pl.TaskPayload, indent: int) -> None:
    doc = json.loads(pl.encode(payload))
    pretty = json.dumps(doc, indent=indent, sort_keys=False).encode()
    assert pl.encode(pl.decode(pretty)) == pl.encode(payload)


@given(st.binary(max_size=300))
@settings(max_examples=200)
def test_arbitrary_bytes_never_raise_anything_but_payload_error(raw: bytes) -> None:
    try:
        pl.decode(raw)
    except PayloadError:
        pass


def test_the_benchmark_generator_writes_valid_payloads() -> None:
    synthetic = pytest.importorskip("models.data.synthetic")
    assert tuple(synthetic.FLOW_NAMES) == pl.FLOW_NAMES
    ds = synthetic.generate(40, seed=3)
    for i in range(len(ds)):
        raw = json.dumps(synthetic.to_payload(ds[i])).encode()
        assert pl.decode(raw).asset == ds[i].asset


BASE = {"schema": "chorus.task/1", "asset": "ETH", "headlines": ["ETH up"]}


@pytest.mark.parametrize(("change", "message"), [
    ({"schema": "chorus.task/2"}, "unsupported payload schema"),
    ({"schema": None}, "unsupported payload schema"),
    ({"asset": ""}, "asset"),
    ({"asset": "bad asset!"}, "asset"),
    ({"headlines": [], "prices": [], "flows": []}, "at least one modality"),
    ({"prices": [1.0, 2.0], "volumes": [1.0]}, "volumes has 1 points"),
    ({"prices": [1.0], "volumes": [1.0]}, "at least 2 points"),
    ({"prices": [1.0, -2.0], "volumes": [1.0, 1.0]}, "prices.1"),
    ({"flows": [1.0, 2.0]}, "exactly 8 values"),
    ({"headlines": ["x" * 513]}, "headlines.0"),
    ({"headlines": ["h"] * 65}, "headlines"),
    ({"surprise": 1}, "surprise"),
    ({"meta": {"blob": "x" * 5000}}, "meta is larger"),
    # Strict types: a string or a boolean is not a number, and as_of is a JSON integer in range.
    ({"prices": ["100", "101"], "volumes": [1.0, 1.0]}, "prices.0: Input should be a valid number"),
    ({"prices": [100.0, True], "volumes": [1.0, 1.0]}, "prices.1: Input should be a valid number"),
    ({"prices": [100.0, 101.0], "volumes": [1.0, False]}, "volumes.1"),
    ({"flows": [1.0] * 7 + ["2"]}, "flows.7"),
    ({"as_of": "5"}, "as_of: Input should be a valid integer"),
    ({"as_of": 1.0}, "as_of: Input should be a valid integer"),
    ({"as_of": 1e29}, "as_of: Input should be a valid integer"),
    ({"as_of": True}, "as_of: Input should be a valid integer"),
    ({"as_of": pl.MAX_AS_OF + 1}, "as_of: Input should be less than or equal"),
    ({"as_of": -1}, "as_of"),
])
def test_invalid_payloads_are_refused_with_a_reason(change: dict, message: str) -> None:
    doc = {**BASE, **change}
    with pytest.raises(PayloadError, match=message):
        pl.decode(json.dumps(doc).encode())


@pytest.mark.parametrize("raw", [
    b"", b"[]", b"null", b"\xff\xfe", b'{"schema": "chorus.task/1", "asset": "A", "headlines": ["x"],}',
    b'{"schema": "chorus.task/1", "asset": "A", "prices": [NaN, 1], "volumes": [1, 1]}',
    b'{"schema": "chorus.task/1", "asset": "A", "prices": [Infinity, 1], "volumes": [1, 1]}',
    b'{"schema": "chorus.task/1", "asset": "A", "asset": "B", "headlines": ["x"]}',
    b"[" * 100_000,
])
def test_malformed_bytes_are_payload_errors(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        pl.decode(raw)


def test_integers_are_numbers_and_as_of_takes_its_whole_range() -> None:
    doc = {**BASE, "prices": [100, 101.5], "volumes": [0, 2], "as_of": pl.MAX_AS_OF}
    payload = pl.decode(json.dumps(doc).encode())
    assert payload.prices == [100.0, 101.5] and payload.as_of == pl.MAX_AS_OF


def test_the_documented_example_task_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "docs" / "example-task.json"
    assert pl.decode(example.read_bytes()).modalities


def test_nesting_depth_counts_brackets_outside_strings() -> None:
    assert pl.nesting_depth(b'{"a": [[1], {"b": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}]}') == 3
    assert pl.nesting_depth(b"[" * 100_000) == 100_000


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadError, match="limit"):
        pl.decode(b" " * (pl.MAX_PAYLOAD_BYTES + 1))


def test_hash_mismatch_is_refused_without_the_bytes_hash() -> None:
    raw = pl.encode(pl.example_payload(1))
    with pytest.raises(PayloadError, match="does not match") as caught:
        pl.verify(raw, pl.payload_hash(raw + b" "))
    assert pl.payload_hash(raw).hex() not in str(caught.value)  # the hash of what the node read stays home


def test_example_payload_is_deterministic_and_small_enough_for_calldata() -> None:
    a, b = pl.encode(pl.example_payload(7)), pl.encode(pl.example_payload(7))
    assert a == b and a != pl.encode(pl.example_payload(8))
    assert len(a) < pl.INLINE_MAX_BYTES
    assert pl.decode(a).modalities == ("market", "sentiment", "risk")


def test_json_schema_file_is_up_to_date() -> None:
    assert pl.SCHEMA_PATH.read_text() == pl.render_json_schema(), \
        "docs/chorus.task-1.schema.json is stale: run `python -m node.protocol.payload --schema`"


def test_json_schema_describes_the_document() -> None:
    schema = json.loads(pl.SCHEMA_PATH.read_text())
    assert schema["title"] == "chorus.task/1"
    assert schema["properties"]["schema"]["const"] == "chorus.task/1"
    assert {"schema", "asset"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    assert "exchange_inflow" in schema["properties"]["flows"]["description"]


# -- fetching -----------------------------------------------------------------------------------------


def test_fetch_file_uri_inside_an_allowed_directory(tmp_path: Path) -> None:
    raw = pl.encode(pl.example_payload(2))
    path = tmp_path / "p.json"
    path.write_bytes(raw)
    assert pl.fetch(path.as_uri(), allow_file=[tmp_path]) == raw
    assert pl.fetch(path.as_uri(), allow_file=[str(tmp_path)]) == raw
    with pytest.raises(PayloadError, match="cannot read") as missing:
        pl.fetch((tmp_path / "missing.json").as_uri(), allow_file=[tmp_path])
    assert str(tmp_path) not in str(missing.value)
    with pytest.raises(PayloadError, match="larger than") as big:
        pl.fetch(path.as_uri(), allow_file=[tmp_path], max_bytes=10)
    assert str(tmp_path) not in str(big.value)


def test_file_uris_are_off_by_default(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(pl.encode(pl.example_payload(2)))
    for allow in ((), [], True, False):
        with pytest.raises(PayloadError, match="disabled"):
            pl.fetch(path.as_uri(), **({} if allow == () else {"allow_file": allow}))


@pytest.mark.parametrize("target", ["/etc/passwd", "/root/.ssh/id_rsa", "/nonexistent/secret", "ALLOWED/../outside.json",
                                    "ALLOWED/link.json"])
def test_file_uris_outside_the_allow_list_say_neither_path_nor_hash(tmp_path: Path, target: str) -> None:
    allowed = tmp_path / "payloads"
    allowed.mkdir()
    (tmp_path / "outside.json").write_bytes(pl.encode(pl.example_payload(4)))
    (allowed / "link.json").symlink_to(tmp_path / "outside.json")  # a link out of the directory
    path = Path(target.replace("ALLOWED", str(allowed)))
    uri = "file://" + str(path)  # as_uri() would normalise the `..` away
    with pytest.raises(PayloadError, match="outside the directories") as caught:
        pl.fetch(uri, allow_file=[allowed])
    message = str(caught.value)
    assert target.split("/")[-1] not in message and str(tmp_path) not in message and "/" not in message.split("file://")[-1]
    if Path(target).is_file():  # e.g. /etc/passwd: its hash appears nowhere either
        assert pl.payload_hash(Path(target).read_bytes()).hex() not in message


@pytest.mark.parametrize("uri", ["ftp://127.0.0.1/p.json", "data:text/plain,hi", "file://evil.example/etc/passwd",
                                 "http://10.0.0.1/p.json", "https://example.com/p.json", "http://localhost:1/p"])
def test_fetch_refuses_schemes_and_hosts_off_the_allow_list(uri: str) -> None:
    with pytest.raises(PayloadError):
        pl.fetch(uri)


@pytest.fixture
def http_server() -> Iterator[str]:
    body = pl.encode(pl.example_payload(3))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path == "/p.json":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)
            elif path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://example.com/p.json")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_http_on_loopback(http_server: str) -> None:
    raw = pl.fetch(f"{http_server}/p.json?token=secret")
    assert pl.decode(raw) == pl.example_payload(3)
    with pytest.raises(PayloadError, match="HTTP 404") as err:
        pl.fetch(f"{http_server}/missing?token=secret")
    assert "secret" not in str(err.value)
    with pytest.raises(PayloadError, match="HTTP 302"):
        pl.fetch(f"{http_server}/redirect")  # redirects are not followed off the allow-list
    with pytest.raises(PayloadError, match="larger than"):
        pl.fetch(f"{http_server}/p.json", max_bytes=100)


def test_redact_uri_drops_credentials_and_queries() -> None:
    assert pl.redact_uri("https://user:pw@127.0.0.1:8080/a/b.json?key=1#x") == "https://127.0.0.1:8080/a/b.json"


@pytest.mark.parametrize("change", [
    {"prices": [], "volumes": [], "headlines": [], "flows": []},  # no modality at all
    {"prices": [100.0], "volumes": [1.0]},  # one point is not a series
    {"flows": [1.0, 2.0, 3.0]},  # flows are all eight or none
], ids=["no-modality", "one-price", "three-flows"])
def test_the_json_schema_states_the_rules_between_fields_it_can(change: dict) -> None:
    """What the model refuses across fields, the schema refuses too, where JSON Schema can say it
    (a fuzzer reading the schema then never sends a 'valid' payload that the API rejects)."""
    import jsonschema_rs  # the validator schemathesis itself uses

    validator = jsonschema_rs.validator_for(pl.json_schema())
    good = pl.example_payload(1).model_dump(by_alias=True, exclude_none=True)
    assert validator.is_valid(good)
    bad = {**good, **change}
    with pytest.raises(PayloadError):
        pl.decode(json.dumps(bad).encode())
    assert not validator.is_valid(bad)
