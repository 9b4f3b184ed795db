"""ABI helpers: revert decoding, event and view dataclasses in step with the ABIs."""

from __future__ import annotations

import dataclasses
from functools import cache

import eth_abi
import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from node.chain import events as ev
from node.chain.abi import ERROR_STRING_SELECTOR, PANIC_SELECTOR, ContractInterface, RevertDecoder
from node.chain.artifacts import Artifact, load_protocol_artifacts
from node.chain.contracts import revert_decoder
from node.chain.events import EVENT_TYPES, event_fields, snake_case
from node.protocol.errors import ArtifactError


@cache
def _artifacts() -> dict[str, Artifact]:
    return load_protocol_artifacts()


@pytest.fixture(scope="module")
def artifacts() -> dict[str, Artifact]:
    """Loaded lazily, so a missing build fails these tests (with the fix), not the collection."""
    try:
        return _artifacts()
    except ArtifactError as exc:
        pytest.fail(str(exc), pytrace=False)


def _all_errors() -> dict[str, dict]:
    return {e["name"]: e for a in _artifacts().values() for e in a.errors}


def _strategy(abi_type: str) -> st.SearchStrategy:
    if abi_type == "address":
        return st.binary(min_size=20, max_size=20).map(to_checksum_address)
    if abi_type == "bytes32":
        return st.binary(min_size=32, max_size=32)
    if abi_type == "bool":
        return st.booleans()
    if abi_type.startswith("uint"):
        return st.integers(0, 2 ** int(abi_type[4:] or 256) - 1)
    raise NotImplementedError(abi_type)


@given(data=st.data())
def test_every_custom_error_round_trips(artifacts, data: st.DataObject) -> None:
    errors = _all_errors()
    decoder = revert_decoder(artifacts)
    name = data.draw(st.sampled_from(sorted(errors)))
    inputs = errors[name]["inputs"]
    args = {p["name"]: data.draw(_strategy(p["type"])) for p in inputs}
    encoded = decoder.selector(name) + eth_abi.encode([p["type"] for p in inputs], list(args.values()))
    revert = decoder.decode("0x" + encoded.hex())
    assert revert.error_name == name
    assert revert.error_args == args
    assert revert.data == "0x" + encoded.hex()


def test_decoder_knows_every_error_of_every_contract(artifacts) -> None:
    decoder = revert_decoder(artifacts)
    assert decoder.error_names == set(_all_errors())
    assert {"DuplicateDecision", "WrongLength", "ModelMismatch", "UnknownAgent", "AlreadyFinalized",
            "InsufficientStake", "ModelAlreadyRegistered"} <= decoder.error_names


def test_error_string_panic_unknown_and_empty(artifacts) -> None:
    decoder = revert_decoder(artifacts)
    message = ERROR_STRING_SELECTOR + eth_abi.encode(["string"], ["nope"])
    assert decoder.decode(message).error_args == {"message": "nope"}
    panic = decoder.decode(PANIC_SELECTOR + eth_abi.encode(["uint256"], [0x11]))
    assert (panic.error_name, panic.error_args) == ("Panic", {"code": 0x11})
    unknown = decoder.decode(bytes.fromhex("deadbeef") + bytes(32))
    assert (unknown.error_name, unknown.error_args) == ("UnknownError", {"selector": "0xdeadbeef"})
    assert decoder.decode(None).error_name == "Reverted"
    assert decoder.decode("0x").error_name == "Reverted"


def test_selector_clash_is_refused() -> None:
    a = [{"type": "error", "name": "Foo", "inputs": [{"name": "x", "type": "uint256"}]}]
    b = [{"type": "error", "name": "Foo", "inputs": [{"name": "x", "type": "uint8"}]}]
    RevertDecoder([a, a])  # the same error in two contracts is fine
    assert RevertDecoder([a, b]).selector("Foo")  # different signatures, different selectors


def test_every_abi_event_has_a_matching_dataclass(artifacts) -> None:
    for abi in (e for a in artifacts.values() for e in a.events):
        name = abi["name"]
        assert name in EVENT_TYPES, f"add a dataclass for event {name} to node/chain/events.py"
        assert event_fields(EVENT_TYPES[name]) == [snake_case(p["name"]) for p in abi["inputs"]], name


@pytest.mark.parametrize(("contract", "function", "cls"), [
    ("ModelRegistry", "models", ev.ModelInfo),
    ("AgentRegistry", "agentInfo", ev.AgentInfo),
    ("AgentRegistry", "agents", ev.AgentRecord),
    ("TaskBoard", "taskInfo", ev.TaskInfo),
    ("TaskBoard", "published", ev.Published),
    ("TaskBoard", "tallies", ev.Tallies),
])
def test_view_dataclasses_match_outputs(artifacts, contract: str, function: str, cls: type) -> None:
    fn = ContractInterface(contract, artifacts[contract].abi).function(function)
    names = [f.name for f in dataclasses.fields(cls)]
    assert len(names) == len(fn.outputs)
    named = [n for n in fn.output_names if not n.startswith("arg")]
    if named:
        assert names == [snake_case(n) for n in fn.output_names]


def test_snake_case() -> None:
    assert snake_case("payloadHash") == "payload_hash"
    assert snake_case("previousOwner") == "previous_owner"
    assert snake_case("taskId") == "task_id"
    assert snake_case("vector") == "vector"


def test_facade_covers_every_contract_function(artifacts) -> None:
    """Every external function of the three contracts has a ChorusContracts method."""
    import inspect

    from node.chain import contracts

    source = inspect.getsource(contracts.ChorusContracts)
    missing = [f"{name}.{fn['name']}" for name, artifact in artifacts.items() for fn in artifact.functions
               if f'"{fn["name"]}"' not in source]
    assert not missing, f"add facade methods for {missing}"
