"""Task payloads: the versioned JSON document a task carries (schema id `chorus.task/1`).

A payload travels either inline in `submitTask` calldata or behind a URI (`submitTaskURI`), in
which case the chain holds only its sha256 and a node fetches and verifies it. Either way the bytes
are UTF-8 JSON; `decode` is the one gate every payload passes before an agent sees it, and it
raises `PayloadError` (never anything else) for malformed, oversized or mismatching input.

The layout is the one the benchmark generator writes (`models.data.synthetic.to_payload`). The
schema is documented in docs/payload.md; docs/chorus.task-1.schema.json is generated from the
model below (`python -m node.protocol.payload --schema`), and a test fails when the two drift apart.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import stat
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from node.protocol.errors import PayloadError

SCHEMA_ID = "chorus.task/1"
MAX_PAYLOAD_BYTES = 1 << 20
"""Hard cap on a payload's encoded size, inline or fetched (1 MiB)."""
INLINE_MAX_BYTES = 8 << 10
"""Above this size `chorus task submit` stores the payload behind a URI instead of in calldata."""
MAX_POINTS = 4096
MIN_POINTS = 2
MAX_HEADLINES = 64
MAX_HEADLINE_CHARS = 512
MAX_META_BYTES = 4096
MAX_DEPTH = 32
"""Deepest JSON nesting accepted; a valid payload needs 4. Deeper input could exhaust the C stack."""
MAX_AS_OF = 253_402_300_799
"""Largest `as_of`: the last second of the year 9999 (the last a `datetime` can hold)."""
FLOW_NAMES = (
    "exchange_inflow",
    "exchange_outflow",
    "whale_transfers",
    "stablecoin_mint",
    "active_addresses",
    "bridge_outflow",
    "dex_volume",
    "validator_outflow",
)
"""Order of the `flows` array: exchange flows in thousand tokens, mints in USD millions, active
addresses in thousands, whale transfers a count (the benchmark generator uses this order)."""

# Strict: a JSON string or boolean is not a number (lax mode would read "100" and true as 100.0 and
# 1.0); a JSON integer still is.
PositiveFloat = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
NonNegFloat = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]
UnixSeconds = Annotated[int, Field(strict=True, ge=0, le=MAX_AS_OF)]
Headline = Annotated[str, StringConstraints(min_length=1, max_length=MAX_HEADLINE_CHARS)]
Asset = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,31}$")]


class TaskPayload(BaseModel):
    """One task's input: an asset and up to three modalities. An empty list means the modality is
    missing (the benchmark's missing-modality knob); at least one must be present."""

    # The rules between fields that JSON Schema can state are stated (at least one modality present);
    # `volumes` having as many points as `prices` cannot be, and is said in its description.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True,
                              json_schema_extra={"anyOf": [
                                  {"required": [name], "properties": {name: {"minItems": 1}}}
                                  for name in ("prices", "headlines", "flows")]})

    schema_id: Literal["chorus.task/1"] = Field(default=SCHEMA_ID, alias="schema")
    """Schema identifier; a future incompatible version gets a new id (`chorus.task/2`)."""
    asset: Asset
    """What the decision is about, e.g. `ETH` or `ETH-USD`."""
    prices: list[PositiveFloat] = Field(default_factory=list, max_length=MAX_POINTS, json_schema_extra={
        "anyOf": [{"maxItems": 0}, {"minItems": MIN_POINTS}]})
    """Market modality: prices, oldest first; empty (missing) or 2..4096 positive numbers."""
    volumes: list[NonNegFloat] = Field(default_factory=list, max_length=MAX_POINTS)
    """Traded volume at the same times as `prices`, non-negative: exactly as many points as `prices`."""
    headlines: list[Headline] = Field(default_factory=list, max_length=MAX_HEADLINES)
    """Sentiment modality: news headlines, plain text; empty (missing) or 1..64 of 1..512 chars."""
    flows: list[NonNegFloat] = Field(default_factory=list, max_length=len(FLOW_NAMES), json_schema_extra={
        "anyOf": [{"maxItems": 0}, {"minItems": len(FLOW_NAMES)}]})
    """Risk modality: empty (missing) or the 8 on-chain flow numbers in `FLOW_NAMES` order."""
    as_of: UnixSeconds | None = None
    """Unix time (seconds) of the last observation, a JSON integer 0..253402300799; optional."""
    meta: dict[str, Any] | None = None
    """Free-form provenance (generator, seed, sample index); nodes ignore it. At most 4 KiB."""

    @model_validator(mode="after")
    def _sane(self) -> TaskPayload:
        if self.prices and len(self.prices) < MIN_POINTS:
            raise ValueError(f"prices must be empty or have at least {MIN_POINTS} points")
        if len(self.volumes) != len(self.prices):
            raise ValueError(f"volumes has {len(self.volumes)} points, prices {len(self.prices)}")
        if self.flows and len(self.flows) != len(FLOW_NAMES):
            raise ValueError(f"flows must be empty or have exactly {len(FLOW_NAMES)} values ({', '.join(FLOW_NAMES)})")
        if not self.modalities:
            raise ValueError("a payload needs at least one modality: prices, headlines or flows")
        if self.meta is not None and len(_canonical_json(self.meta)) > MAX_META_BYTES:
            raise ValueError(f"meta is larger than {MAX_META_BYTES} bytes")
        return self

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities present, by agent name, in a fixed order."""
        present = {"market": bool(self.prices), "sentiment": bool(self.headlines), "risk": bool(self.flows)}
        return tuple(k for k, v in present.items() if v)

    def flow(self, name: str) -> float | None:
        """One named flow value; None when the risk modality is missing."""
        return self.flows[FLOW_NAMES.index(name)] if self.flows else None


def nesting_depth(raw: bytes) -> int:
    """Deepest bracket nesting of JSON bytes outside strings, counted without parsing them: check it
    before `json.loads`, whose C parser recurses once per level (cheap when brackets are few)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def encode(payload: TaskPayload) -> bytes:
    """Canonical bytes: UTF-8 JSON, sorted keys, no whitespace, absent optional fields omitted.

    Nodes accept any valid JSON layout; canonical bytes make hashes reproducible.
    """
    doc = payload.model_dump(mode="json", by_alias=True)
    # Omit absent optionals; `meta` may hold nulls on purpose and is kept as given.
    doc = {k: v for k, v in doc.items() if v is not None}
    return _canonical_json(doc)


def decode(raw: bytes) -> TaskPayload:
    """Parse and validate payload bytes; PayloadError says what is wrong, briefly."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload is {len(raw)} bytes, the limit is {MAX_PAYLOAD_BYTES}")
    raw = bytes(raw)
    if nesting_depth(raw) > MAX_DEPTH:
        raise PayloadError(f"payload nests deeper than {MAX_DEPTH} levels")
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant,
                         object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"payload is not UTF-8 JSON: {_short(exc)}") from None
    if not isinstance(doc, dict):
        raise PayloadError("payload must be a JSON object")
    schema = doc.get("schema")
    if schema != SCHEMA_ID:
        raise PayloadError(f"unsupported payload schema {str(schema)[:40]!r}; this node reads {SCHEMA_ID!r}")
    try:
        return TaskPayload.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PayloadError(f"invalid payload: {where}: {first['msg']}{more}") from None


def payload_hash(raw: bytes) -> bytes:
    """sha256 of the payload bytes: what TaskBoard records as `payloadHash`."""
    return hashlib.sha256(raw).digest()


def verify(raw: bytes, expected_hash: bytes) -> TaskPayload:
    """Check the bytes against the on-chain hash, then decode them."""
    # The bytes' own hash stays out of the message: behind a URI it is the hash of whatever the
    # node read, and the API shows the message to anyone.
    if payload_hash(raw) != bytes(expected_hash):
        raise PayloadError(f"payload does not match the on-chain hash 0x{bytes(expected_hash).hex()}")
    return decode(raw)


def fetch(uri: str, *, allow_hosts: Sequence[str] = ("127.0.0.1",), allow_file: Sequence[str | PathLike[str]] = (),
          max_bytes: int = MAX_PAYLOAD_BYTES, timeout_s: float = 5.0, deadline_s: float | None = None) -> bytes:
    """Read the bytes behind a task's URI: `http(s)://` on a host of `allow_hosts`, or `file://`
    naming a regular file inside one of the directories `allow_file` (none by default: file://
    refused).

    Redirects are not followed (they could lead off the allow-list); the body is cut off past
    `max_bytes`. `timeout_s` bounds connecting and each read; `deadline_s` (default: `timeout_s`)
    bounds the whole body, checked between chunks, so a server that trickles a byte at a time is
    cut off too. Every failure is a PayloadError, and none names a local path: the message reaches
    the node's API, which anyone may read.
    """
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme == "file":
        if isinstance(allow_file, (str, bytes, bool)) or not allow_file:
            raise PayloadError("file:// payload URIs are disabled on this node")
        if parsed.netloc not in ("", "localhost"):
            raise PayloadError(f"file URI must be local, got host {parsed.netloc[:64]!r}")
        data = _read_allowed(Path(urllib.request.url2pathname(parsed.path)), allow_file, max_bytes)
    elif parsed.scheme in ("http", "https"):
        if parsed.hostname not in allow_hosts:
            raise PayloadError(f"payload host {str(parsed.hostname)[:64]!r} is not allowed "
                               f"(allowed: {', '.join(allow_hosts) or 'none'})")
        deadline = timeout_s if deadline_s is None else deadline_s
        data = _http_get(uri, max_bytes=max_bytes, timeout_s=min(timeout_s, deadline), deadline_s=deadline)
    else:
        raise PayloadError(f"unsupported payload URI scheme {parsed.scheme[:16]!r}; use file:// or http(s)://")
    if len(data) > max_bytes:
        where = "file" if parsed.scheme == "file" else redact_uri(uri)
        raise PayloadError(f"payload at {where} is larger than {max_bytes} bytes")
    return data


def _read_allowed(path: Path, allowed: Sequence[str | PathLike[str]], max_bytes: int) -> bytes:
    """The first `max_bytes + 1` bytes of `path` if it lies inside an allowed directory. Symlinks
    and `..` are resolved first, so neither leads out; outside, nothing is read, and whether the
    file exists stays unsaid."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        raise PayloadError("file:// payload URI cannot be resolved") from None
    if not any(real.is_relative_to(Path(d).resolve()) for d in allowed):
        raise PayloadError("file:// payload URI is outside the directories this node reads payloads from")
    # O_NOFOLLOW: a symlink swapped in after the check is not followed; O_NONBLOCK: a FIFO does
    # not block the open (and is refused below, as is anything but a regular file).
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise PayloadError(f"cannot read the payload file: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PayloadError("file:// payload URI does not name a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read(max_bytes + 1)
        except OSError as exc:
            raise PayloadError(f"cannot read the payload file: {exc.strerror or type(exc).__name__}") from None


def _http_get(uri: str, *, max_bytes: int, timeout_s: float, deadline_s: float) -> bytes:
    import httpx

    give_up = time.monotonic() + deadline_s
    try:
        with httpx.stream("GET", uri, timeout=timeout_s, follow_redirects=False) as resp:
            if resp.status_code != 200:
                raise PayloadError(f"GET {redact_uri(uri)} answered HTTP {resp.status_code}")
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                chunks.append(chunk)
                if size > max_bytes:
                    break
                if time.monotonic() > give_up:
                    raise PayloadError(f"GET {redact_uri(uri)} did not finish within {deadline_s:g}s")
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise PayloadError(f"GET {redact_uri(uri)} failed: {type(exc).__name__}") from None


def redact_uri(uri: str) -> str:
    """The URI without user info, query or fragment (they may carry tokens), for logs and the API."""
    p = urllib.parse.urlsplit(uri)
    host = p.hostname or ""
    try:
        port = f":{p.port}" if p.port else ""
    except ValueError:
        port = ""
    return urllib.parse.urlunsplit((p.scheme, host + port, p.path, "", ""))[:200]


def _short(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]


_EXAMPLE_HEADLINES = {
    "up": ["{a} rallies as institutional demand surges", "Analysts upgrade {a} after record inflows",
           "{a} breaks resistance on strong volume", "Developers ship major {a} upgrade ahead of schedule"],
    "down": ["{a} slides as regulators open investigation", "Exchange hack triggers {a} sell-off",
             "{a} plunges after large holder dumps tokens", "Lawsuit weighs on {a} outlook"],
    "flat": ["{a} trades sideways in quiet session", "Markets await data; {a} little changed",
             "{a} volume thins ahead of holiday", "Mixed signals leave {a} range-bound"],
}


def example_payload(seed: int = 0, *, points: int = 32, headlines: int = 2, asset: str = "ETH") -> TaskPayload:
    """A deterministic, plausible payload (random-walk prices, templated news, flows) for demos
    and tests; the benchmark's generator is `models.data.synthetic` (`to_payload`)."""
    rng = random.Random(seed)
    mood = rng.choice(("up", "down", "flat"))
    drift = {"up": 0.006, "down": -0.006, "flat": 0.0}[mood]
    prices = [round(100.0 + rng.uniform(-5, 5), 6)]
    for _ in range(points - 1):
        prices.append(round(prices[-1] * math.exp(drift + rng.gauss(0, 0.01)), 6))
    volumes = [round(abs(rng.gauss(1000, 200)), 3) for _ in range(points)]
    tilt = {"up": 0.5, "down": -0.5, "flat": 0.0}[mood]
    # (log-level, sensitivity to the mood) per flow, in FLOW_NAMES order.
    shape = ((4.0, -1), (4.0, 1), (2.5, -0.6), (3.0, 0.8), (5.0, 0.4), (2.0, -0.6), (4.5, 0), (1.5, -0.6))
    flows = [round(math.exp(level + sens * tilt + rng.gauss(0, 0.2)), 3) for level, sens in shape]
    news = [t.format(a=asset) for t in rng.sample(_EXAMPLE_HEADLINES[mood], k=min(headlines, 4))]
    return TaskPayload(
        asset=asset, prices=prices, volumes=volumes, headlines=news, flows=flows,
        as_of=1_767_225_600 + seed * 3600, meta={"generator": "node.protocol.payload.example_payload", "seed": seed},
    )


SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "chorus.task-1.schema.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `chorus.task/1`, generated from the model."""
    schema = TaskPayload.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://chorus.invalid/schemas/chorus.task-1.schema.json"
    schema["title"] = "chorus.task/1"
    schema["required"] = ["schema", *schema.get("required", [])]
    schema["properties"]["schema"].pop("default", None)
    schema["properties"]["flows"]["description"] += " Order: " + ", ".join(FLOW_NAMES) + "."
    return schema


def render_json_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover - a maintenance entry point
    import sys

    if "--schema" in sys.argv:
        SCHEMA_PATH.write_text(render_json_schema())
        sys.stdout.write(f"wrote {SCHEMA_PATH}\n")
    else:
        sys.stdout.write(encode(example_payload()).decode() + "\n")
