"""Alignments on the fusion node: registered maps between embedding spaces, found, checked, applied.

An E-d head is trained on given embedding spaces (one model id per role). A peer that publishes
under another model id is fused only through a map registered on chain,
`ModelRegistry.alignment(peerModel, headModel)`, whose bytes this node holds locally:

- `AlignmentResolver(lookup, directory)` is the callable the fusion agent is handed
  (`agents.fusion.FusionAgent.use_alignments`): `resolver(from_model, to_model)` gives the checked
  `models.align.AlignmentMap` or None. It asks the registry once per pair (a registration is
  immutable, so a found one is kept for good; "none registered" is asked again after `retry_s`),
  reads the file named by the map id's hex (64 lowercase hex digits, no prefix) in `directory`,
  and uses the map only if sha256(bytes) is the registered map id, the bytes parse and their dims
  are the registered ones. Every refusal is logged once per (pair, reason) as a WARNING that names
  the models and the map id (public on chain), never a local path.
- `fit_and_register(contracts, ...)` is the aligner: it reads the EmbeddingPublished events of K
  anchor tasks by a reference agent and by a second agent, fits the Procrustes map second ->
  reference (`models.align.fit_procrustes`), writes its bytes to the directory under its id and
  registers it (`ModelRegistry.registerAlignment`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.align import AlignmentMap, fit_procrustes, linear_cka
from node.chain.events import AlignmentInfo, EmbeddingPublished
from node.protocol.codec import decode_vector
from node.protocol.enums import Encoding
from node.protocol.errors import ConfigError

log = logging.getLogger(__name__)

ZERO_MAP_ID = bytes(32)

Pair = tuple[bytes, bytes]


def map_file_name(map_id: bytes) -> str:
    """The file a map's bytes are kept in, in an alignments directory: its id as 64 hex digits."""
    return bytes(map_id).hex()


def _short(model_id: bytes) -> str:
    return "0x" + bytes(model_id).hex()[:12]


def map_size(in_dim: int, out_dim: int) -> int:
    """Bytes of a version-1 map of these dims (`models.align` wire format)."""
    return 10 + 4 * (in_dim * out_dim + in_dim + out_dim)


@dataclass
class _Refusal:
    reason: str
    retry_at: float


class AlignmentResolver:
    """`resolver(from_model, to_model) -> AlignmentMap | None`: the registered, locally held and checked
    map from one space into another, or None (the vector is then treated as absent).

    `lookup(from_model, to_model)` is the registry view (`ChorusContracts.alignment`); an RPC error
    it raises propagates (the node retries the task later), nothing is cached then. `directory` is
    the node's `alignments_dir` (None: no map can be loaded). A refusal is remembered for `retry_s`
    seconds of `clock` (the registry may gain the pair, an operator may add the file), a loaded map
    for good."""

    def __init__(self, lookup: Callable[[bytes, bytes], AlignmentInfo], directory: Path | None, *,
                 retry_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.lookup = lookup
        self.directory = None if directory is None else Path(directory)
        self.retry_s = retry_s
        self.clock = clock
        self.lookups = 0
        """Registry calls made so far (tests check that a known pair costs none)."""
        self._registered: dict[Pair, AlignmentInfo] = {}
        self._maps: dict[Pair, AlignmentMap] = {}
        self._refused: dict[Pair, _Refusal] = {}
        self._warned: set[tuple[Pair, str]] = set()

    def __call__(self, from_model: bytes, to_model: bytes) -> AlignmentMap | None:
        pair = (bytes(from_model), bytes(to_model))
        found = self._maps.get(pair)
        if found is not None:
            return found
        refusal = self._refused.get(pair)
        if refusal is not None and self.clock() < refusal.retry_at:
            return None
        amap, reason = self._resolve(pair)
        if amap is None:
            self._refuse(pair, reason)
            return None
        self._refused.pop(pair, None)
        self._maps[pair] = amap
        log.info("alignment %s -> %s: map 0x%s (%s, %d -> %d) loaded and checked; embeddings of %s are fused through it",
                 _short(pair[0]), _short(pair[1]), amap.map_id.hex(), amap.method, amap.in_dim, amap.out_dim,
                 _short(pair[0]))
        return amap

    def _info(self, pair: Pair) -> AlignmentInfo:
        info = self._registered.get(pair)
        if info is None:
            self.lookups += 1
            info = self.lookup(*pair)
            if bytes(info.map_id) != ZERO_MAP_ID:
                self._registered[pair] = info  # immutable on chain: never asked again
        return info

    def _resolve(self, pair: Pair) -> tuple[AlignmentMap | None, str]:
        info = self._info(pair)
        map_id = bytes(info.map_id)
        if map_id == ZERO_MAP_ID:
            return None, "no alignment is registered for the pair"
        name = f"map 0x{map_id.hex()}"
        if self.directory is None:
            return None, f"{name} is registered but the node has no alignments directory (alignments_dir)"
        path = self.directory / map_file_name(map_id)
        expected = map_size(int(info.in_dim), int(info.out_dim))
        try:
            with open(path, "rb") as fh:
                data = fh.read(expected + 1)  # never more than the registered dims allow, plus one
        except FileNotFoundError:
            return None, f"{name} is registered but not in the alignments directory"
        except OSError as exc:
            return None, f"{name} cannot be read from the alignments directory ({type(exc).__name__})"
        if hashlib.sha256(data).digest() != map_id:
            return None, f"the bytes held for {name} do not hash to it"
        try:
            amap = AlignmentMap.from_bytes(data)
        except ValueError:
            return None, f"{name} hashes right but is not a valid alignment map"
        if (amap.in_dim, amap.out_dim) != (int(info.in_dim), int(info.out_dim)):
            return None, (f"{name} is {amap.in_dim} -> {amap.out_dim} but registered as "
                          f"{info.in_dim} -> {info.out_dim}")
        return amap, ""

    def _refuse(self, pair: Pair, reason: str) -> None:
        self._refused[pair] = _Refusal(reason, self.clock() + self.retry_s)
        if (pair, reason) not in self._warned:
            self._warned.add((pair, reason))
            log.warning("embeddings of model %s are not fused into the space of %s: %s",
                        _short(pair[0]), _short(pair[1]), reason)


# -- the aligner ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FittedAlignment:
    """What `fit_and_register` did: the map, the pair, the anchors and how alike the spaces are."""

    map: AlignmentMap = field(repr=False)
    from_model: bytes
    to_model: bytes
    anchors: int
    cka: float
    """Linear CKA of the two agents' anchor embeddings (1: one rotation apart)."""
    residual: float
    """Mean squared error of the mapped anchors against the reference's, over the reference's variance."""
    path: Path
    tx_hash: str | None
    """The registerAlignment transaction; None with `register=False`."""

    @property
    def map_id(self) -> bytes:
        return self.map.map_id


def anchor_embeddings(contracts: Any, agent: str, task_ids: Sequence[int], *,
                      from_block: int = 0) -> tuple[bytes, np.ndarray]:
    """(model id, (K, d) float32) of `agent`'s EmbeddingPublished events for `task_ids`, in that order.
    ConfigError when one is missing or the agent published under several model ids or encodings."""
    wanted = {int(t) for t in task_ids}
    if len(wanted) != len(task_ids):
        raise ConfigError("anchor task ids repeat")
    found: dict[int, EmbeddingPublished] = {}
    for ev in contracts.events(from_block=from_block, names=["EmbeddingPublished"]):
        if isinstance(ev, EmbeddingPublished) and ev.agent.lower() == agent.lower() and ev.task_id in wanted:
            found.setdefault(ev.task_id, ev)
    missing = sorted(wanted - found.keys())
    if missing:
        raise ConfigError(f"agent {agent} published no embedding for anchor tasks {missing}")
    spaces = {(bytes(ev.model_id), int(ev.encoding)) for ev in found.values()}
    if len(spaces) != 1:
        raise ConfigError(f"agent {agent} published the anchors under {len(spaces)} model ids / encodings")
    model_id, encoding = spaces.pop()
    dim = int(contracts.model(model_id).dim)
    if dim == 0:
        raise ConfigError(f"model 0x{model_id.hex()} of agent {agent} is not registered")
    rows = []
    for task_id in task_ids:
        vector = bytes(found[int(task_id)].vector)
        if len(vector) != Encoding(encoding).byte_length(dim):
            raise ConfigError(f"agent {agent}'s embedding of task {task_id} is not {dim}-d {Encoding(encoding).label}")
        rows.append(decode_vector(vector, Encoding(encoding), dim))
    return model_id, np.stack(rows).astype(np.float32)


def write_map(directory: Path, amap: AlignmentMap) -> Path:
    """Write the map's bytes to `directory` under its id (atomically; an identical file is kept)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = amap.to_bytes()
    path = directory / map_file_name(amap.map_id)
    if path.is_file() and path.read_bytes() == data:
        return path
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".map-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def fit_and_register(contracts: Any, *, reference: str, agent: str, task_ids: Sequence[int], directory: Path,
                     from_block: int = 0, scale: bool = False, register: bool = True) -> FittedAlignment:
    """Fit the Procrustes map from `agent`'s embedding space into `reference`'s on the anchor tasks
    `task_ids` (both published embeddings for each; read from the chain's EmbeddingPublished
    events), write it to `directory` and, with `register`, record it with registerAlignment (signed
    by `contracts`' key). ConfigError for unusable anchors; ContractRevert from the registry (e.g.
    AlignmentAlreadyRegistered)."""
    if len(task_ids) < 2:
        raise ConfigError(f"at least 2 anchor tasks are needed, got {len(task_ids)}")
    to_model, target = anchor_embeddings(contracts, reference, task_ids, from_block=from_block)
    from_model, source = anchor_embeddings(contracts, agent, task_ids, from_block=from_block)
    if from_model == to_model:
        raise ConfigError(f"both agents publish in model 0x{to_model.hex()}: there is nothing to align")
    amap = fit_procrustes(source, target, scale=scale)
    mapped = amap.apply(source)
    variance = float(np.mean((target - target.mean(axis=0)) ** 2)) or 1.0
    residual = float(np.mean((mapped - target) ** 2)) / variance
    cka = linear_cka(source, target)
    path = write_map(directory, amap)
    tx_hash = None
    if register:
        result = contracts.register_alignment(from_model, to_model, amap.map_id, amap.in_dim, amap.out_dim,
                                              amap.method)
        tx_hash = result.tx_hash
    log.info("alignment %s -> %s fitted on %d anchors (CKA %.3f, residual %.3f): map 0x%s%s",
             _short(from_model), _short(to_model), len(task_ids), cka, residual, amap.map_id.hex(),
             " registered" if register else "")
    return FittedAlignment(amap, from_model, to_model, len(task_ids), cka, residual, path, tx_hash)
