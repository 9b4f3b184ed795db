"""The fusion node's alignment resolver (`node.runtime.alignments.AlignmentResolver`) and the fusion
agent using it: a registered, locally held, checked map is applied; anything else is refused (the
vector absent, one WARNING per pair and reason, no local path in the log); the registry is asked
once per pair."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from agents.base import Action, PeerOutput, TaskInput
from agents.fusion import FusionAgent, TrainedHead
from models.align import AlignmentMap, fit_procrustes
from node.chain.events import AlignmentInfo
from node.protocol.codec import encode_vector
from node.protocol.enums import Arch, Encoding, Role
from node.protocol.payload import example_payload
from node.runtime.alignments import AlignmentResolver, map_file_name, write_map
from node.runtime.settings import NodeSettings

DIM = 4
HEAD_IDS = {Role.MARKET: b"\x01" * 32, Role.SENTIMENT: b"\x02" * 32, Role.RISK: b"\x03" * 32}
OTHER = b"\x09" * 32  # a second market model, trained apart
NONE = AlignmentInfo(bytes(32), 0, 0, "0x" + "0" * 40)


def _map(seed: int = 0) -> AlignmentMap:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, DIM))
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    return fit_procrustes(x, x @ q + 0.5)


class Registry:
    """The registry view, counting calls."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[bytes, bytes], AlignmentInfo] = {}
        self.calls = 0

    def register(self, src: bytes, dst: bytes, amap: AlignmentMap) -> None:
        self.pairs[(src, dst)] = AlignmentInfo(amap.map_id, amap.in_dim, amap.out_dim, "0x" + "a" * 40)

    def __call__(self, src: bytes, dst: bytes) -> AlignmentInfo:
        self.calls += 1
        return self.pairs.get((src, dst), NONE)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_registered_held_map_is_loaded_once_and_the_registry_asked_once(tmp_path: Path) -> None:
    amap, registry = _map(), Registry()
    registry.register(OTHER, HEAD_IDS[Role.MARKET], amap)
    path = write_map(tmp_path, amap)
    assert path.name == amap.map_id.hex() == map_file_name(amap.map_id) and path.read_bytes() == amap.to_bytes()
    resolver = AlignmentResolver(registry, tmp_path)
    for _ in range(5):
        assert resolver(OTHER, HEAD_IDS[Role.MARKET]) == amap
    assert registry.calls == 1 and resolver.lookups == 1
    path.unlink()  # loaded maps are kept: the file is not read again either
    assert resolver(OTHER, HEAD_IDS[Role.MARKET]) == amap


def test_each_refusal_is_one_warning_per_pair_and_reason_without_paths(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="node.runtime.alignments")
    amap, registry, clock = _map(), Registry(), Clock()
    dst = HEAD_IDS[Role.MARKET]
    resolver = AlignmentResolver(registry, tmp_path, retry_s=10, clock=clock)

    # none registered: refused, one warning; asked again only after retry_s
    for _ in range(3):
        assert resolver(OTHER, dst) is None
    assert registry.calls == 1
    assert len(_warnings(caplog)) == 1 and "no alignment is registered" in _warnings(caplog)[0]

    # registered, but no file: refused until the file shows up (after the retry interval)
    registry.register(OTHER, dst, amap)
    clock.now += 11
    assert resolver(OTHER, dst) is None and registry.calls == 2
    assert "not in the alignments directory" in _warnings(caplog)[-1]
    assert f"0x{amap.map_id.hex()}" in _warnings(caplog)[-1]

    # a file of other bytes under the id: a hash mismatch (the registry is not asked again: known)
    (tmp_path / map_file_name(amap.map_id)).write_bytes(_map(seed=1).to_bytes())
    clock.now += 11
    assert resolver(OTHER, dst) is None and registry.calls == 2
    assert "do not hash to it" in _warnings(caplog)[-1]
    clock.now += 11
    assert resolver(OTHER, dst) is None  # the same reason again: no new warning
    assert len(_warnings(caplog)) == 3

    # the right bytes: used from then on
    write_map(tmp_path, amap)
    clock.now += 11
    assert resolver(OTHER, dst) == amap and registry.calls == 2
    assert not any(str(tmp_path) in r.getMessage() for r in caplog.records)


def test_dims_other_than_registered_or_bytes_that_are_no_map_are_refused(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    amap, registry = _map(), Registry()
    dst = HEAD_IDS[Role.MARKET]
    registry.pairs[(OTHER, dst)] = AlignmentInfo(amap.map_id, DIM, DIM + 1, "0x" + "a" * 40)  # a false claim
    write_map(tmp_path, amap)
    assert AlignmentResolver(registry, tmp_path)(OTHER, dst) is None
    assert "is 4 -> 4 but registered as 4 -> 5" in _warnings(caplog)[-1]

    junk = b"NOPE" + b"\x00" * 18  # hashes to its id, the size of a 1 -> 1 map, is no map
    junk_id = hashlib.sha256(junk).digest()
    (tmp_path / map_file_name(junk_id)).write_bytes(junk)
    registry.pairs[(OTHER, dst)] = AlignmentInfo(junk_id, 1, 1, "0x" + "a" * 40)
    assert AlignmentResolver(registry, tmp_path)(OTHER, dst) is None
    assert "not a valid alignment map" in _warnings(caplog)[-1]

    registry.register(OTHER, dst, amap)
    assert AlignmentResolver(registry, None)(OTHER, dst) is None
    assert "no alignments directory" in _warnings(caplog)[-1]


def test_an_rpc_error_propagates_and_nothing_is_cached(tmp_path: Path) -> None:
    amap, registry = _map(), Registry()
    registry.register(OTHER, HEAD_IDS[Role.MARKET], amap)
    write_map(tmp_path, amap)
    fail = [True]

    def lookup(src: bytes, dst: bytes) -> AlignmentInfo:
        if fail[0]:
            raise ConnectionError("rpc down")
        return registry(src, dst)

    resolver = AlignmentResolver(lookup, tmp_path)
    with pytest.raises(ConnectionError):
        resolver(OTHER, HEAD_IDS[Role.MARKET])
    fail[0] = False
    assert resolver(OTHER, HEAD_IDS[Role.MARKET]) == amap


# -- the fusion agent ---------------------------------------------------------------------------------


class FakeHead:
    def __init__(self) -> None:
        self.inputs: list[dict[str, np.ndarray]] = []

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        self.inputs.append(inputs)
        return {"probs": np.array([[0.1, 0.2, 0.7]], np.float32)}


def _agent() -> tuple[FusionAgent, FakeHead]:
    model = FakeHead()
    spaces = tuple((HEAD_IDS[r], DIM, Encoding.F32) for r in (Role.MARKET, Role.SENTIMENT, Role.RISK))
    return FusionAgent(embeddings_head=TrainedHead("e-d4", model, spaces)), model


def _peer(role: Role, model_id: bytes, vec: np.ndarray, encoding: Encoding = Encoding.F32) -> PeerOutput:
    return PeerOutput(agent=f"0x{int(role)}", role=int(role), action=int(Action.BUY), confidence=8000,
                      model_id=model_id, encoding=int(encoding), vector=encode_vector(vec, encoding))


def _task(*peers: PeerOutput) -> TaskInput:
    return TaskInput(1, int(Arch.E_D), example_payload(1), peers)


def test_fusion_fuses_a_foreign_vector_only_through_the_resolvers_map(tmp_path: Path) -> None:
    agent, head = _agent()
    amap = _map()
    x = np.array([0.5, -0.5, 0.25, 1.0], np.float32)
    peers = (_peer(Role.MARKET, OTHER, x), _peer(Role.SENTIMENT, HEAD_IDS[Role.SENTIMENT], x),
             _peer(Role.RISK, HEAD_IDS[Role.RISK], x))
    assert agent.run(_task(*peers)).note == "e-d4 head over 2 embeddings"  # no resolver: as before
    assert head.inputs[-1]["mask"].tolist() == [[0.0, 1.0, 1.0]]

    registry, clock = Registry(), Clock()
    resolver = AlignmentResolver(registry, tmp_path, retry_s=5, clock=clock)
    agent.use_alignments(resolver)
    assert agent.run(_task(*peers)).note == "e-d4 head over 2 embeddings"  # nothing registered
    registry.register(OTHER, HEAD_IDS[Role.MARKET], amap)
    write_map(tmp_path, amap)
    assert agent.run(_task(*peers)).note == "e-d4 head over 2 embeddings"  # the refusal stands retry_s
    clock.now += 6
    out = agent.run(_task(*peers))
    assert out.note == "e-d4 head over 3 embeddings (1 aligned)"
    assert head.inputs[-1]["mask"].tolist() == [[1.0, 1.0, 1.0]]
    np.testing.assert_allclose(head.inputs[-1]["embeddings"][0, :DIM], amap.apply(x), rtol=1e-6)
    np.testing.assert_allclose(head.inputs[-1]["embeddings"][0, DIM:2 * DIM], x)
    agent.run(_task(*peers))
    assert registry.calls == 2  # one refusal, one registration found; none per task since


def test_an_aligned_vector_is_quantized_as_the_heads_space_publishes(tmp_path: Path) -> None:
    model = FakeHead()
    spaces = ((HEAD_IDS[Role.MARKET], DIM, Encoding.I8), (HEAD_IDS[Role.SENTIMENT], DIM, Encoding.I8),
              (HEAD_IDS[Role.RISK], DIM, Encoding.I8))
    agent = FusionAgent(embeddings_head=TrainedHead("e-d4", model, spaces))
    amap, registry = _map(), Registry()
    registry.register(OTHER, HEAD_IDS[Role.MARKET], amap)
    write_map(tmp_path, amap)
    agent.use_alignments(AlignmentResolver(registry, tmp_path))
    x = np.array([0.1, -0.2, 0.3, 0.05], np.float32)  # published as f32 in its own space
    assert agent.run(_task(_peer(Role.MARKET, OTHER, x))).note == "e-d4 head over 1 embeddings (1 aligned)"
    given = model.inputs[-1]["embeddings"][0, :DIM]
    np.testing.assert_array_equal(given, np.rint(np.clip(amap.apply(x), -1, 1) * 127).astype(np.float32) / 127)


def test_fusion_refuses_a_vector_that_does_not_fit_the_map(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent, _ = _agent()
    amap = _map()
    registry = Registry()
    registry.register(OTHER, HEAD_IDS[Role.MARKET], amap)
    write_map(tmp_path, amap)
    agent.use_alignments(AlignmentResolver(registry, tmp_path))
    short = _peer(Role.MARKET, OTHER, np.ones(DIM - 1, np.float32))  # 3-d under a 4-d map
    risk = _peer(Role.RISK, HEAD_IDS[Role.RISK], np.ones(DIM, np.float32))
    for _ in range(2):
        assert agent.run(_task(short, risk)).note == "e-d4 head over 1 embeddings"
    assert [m for m in _warnings(caplog) if "not 4-d" in m] == [
        f"embedding of model 0x{OTHER.hex()[:12]} not fused into the space of 0x{HEAD_IDS[Role.MARKET].hex()[:12]}: "
        "the vector is not 4-d in its encoding"]


def test_the_alignments_dir_setting_must_name_a_directory(tmp_path: Path) -> None:
    settings = NodeSettings(role="fusion", alignments_dir=tmp_path, alignment_retry_s=1, chain_id=31337)
    assert settings.alignments_dir == tmp_path and settings.alignment_retry_s == 1
    assert NodeSettings(role="fusion", chain_id=31337).alignments_dir is None
    with pytest.raises(ValueError, match="no alignments directory"):
        NodeSettings(role="fusion", alignments_dir=tmp_path / "missing", chain_id=31337)
