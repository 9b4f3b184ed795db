"""Tier (a) of the evaluation: every architecture scored off chain, exactly as the nodes decide.

`score_offchain(models, stream, archs)` takes a model set (`modelsets.ModelSet`, or the path of a
manifest or of its folder), a task stream (`tasks.TaskStream`: payload bytes and labels) and the
architecture ids to score, and returns, per architecture, the action TaskBoard would finalize for
every task and whether it equals the task's label (`OffchainResult`; `-1` where no node could read
the payload, so nothing would ever be finalized). Nothing here touches a chain; the point is that
on every task its action equals the chain's when every node is honest and the fusion node waits
for its full quorum of peers (as it now does), so a large test set can be scored here and a
random sample of it run through the chain as a check.

What is scored. The very ONNX files the nodes load: the model set's manifest for the agents, the
fusion heads and U, the project's manifest for MiniLM (what `chorus node run --manifest` does).
Before anything runs, every file of the model set's manifest and MiniLM's file is hashed and
compared with its manifest entry and, for a `ModelSet`, with the model id recorded in its
`bench.json` (the id the nodes register on chain); any difference is a `ModelError` naming the
file. `OffchainResult.model_ids` lists the ids that were scored. The agents themselves are built
by `agents.factory.build_agent` from the same manifest, with the node's options (M-rules
thresholds on the fusion node), so their decision logic is the agents' own.

Who publishes what comes from the node specs (`plan.main_specs`, or `plan.ed_specs` for an E-d
set): for each architecture the roles that publish a decision, and those that also publish their
embedding. Each step between a model's output and the finalized action is reproduced:

- modality agents (market, risk): the agent's own `present`, `model_reads`, `features` and
  `rule_probs`; the trained model called through the agent's `AgentModel` one row at a time;
  `Decision.from_probs` (argmax, confidence rounded to integer basis points, as published).
  Sentiment: `SentimentAgent.features` on the task's headlines (one slot per headline), then its
  model; without a trained sentiment model, or for a task of more headlines than the model reads
  (`model_reads`), the prototype rule decides: its `run` is called per task.
- embeddings travel as the chain carries them: `Embedding.to_bytes` (f32 / f16 / i8 / binary, the
  agent's registered encoding), and the fusion node decodes them with `decode_vector` under the
  same-space check of `FusionAgent` (model id, encoding, byte length).
- the fusion node, on its peers as decoded from chain (action, integer confidence, vector bytes):
  M-rules with `models.fusion.m_rules` (the `RulesFusion` thresholds, full confidence); M-learned
  with `models.fusion.decision_scores` and the agent's own `decisions_head`; E-d with
  `concat_embeddings` and the agent's `embeddings_head`; anything else (the weighted vote: E-d
  with no embedding in the head's spaces, a set without heads) by the fusion agent's `run` on the
  same peers, in the specs' order.
- U and U-rep: `UAgent.features` on the task alone (what `run` does: a batch of one) and U's
  session; every coordinator decides the same, so U-rep's k decisions tally k times U's.
- TaskBoard: `tally[action] += weight(arch, role) * confidence` over the quorum's decisions, the
  strict argmax, hold on a tie or all zeros (`finalized_actions`). The weights are the
  constructor's defaults with what the bench sets (`Bench._weights`: Uni-best, M-rules) applied on
  top; M-regret's are its Hedge weights (`jobs.RegretWeights`), set before each round of
  `round_size` tasks and updated from the round's published decisions and labels afterwards, as
  `ArchJob` does (the per-task weights are returned: a chain sample must run under them). The N
  sweep's architectures (9 + i) tally their agents with the default weights, replicas included.

Batched, and where it is not. The expensive part is MiniLM. Its output for a headline is not a
function of the text alone: measured with this project's onnxruntime on this machine, a row's
float32 vector depends on the padded width of the run it is in and on whether that run has one
row or more (a headline embedded alone differed in the last bits from the node's row in 208 of
300 tasks), and on nothing else tried (other rows' content, their number beyond one, the row's
position). So `TextCache` keys each headline's vector by (text, padded width, alone) — the width
and the "alone" `TextEmbedder.embed` gives it inside the node's own call on that task's headlines
(sentiment's runs of 32 rows, U's of 16) — and fills all missing keys in runs of up to 32 rows
padded to each width (a filler row sets the width where needed). Any other text encoder (a
test's fake) is cached per call, by the tuple of texts, which is exact for any deterministic
encoder. The cache outlives a call: pass one `TextCache` to every model set of a run (they all
share MiniLM), and `save` / `load` keep it on disk under a fingerprint (MiniLM and tokenizer
files, onnxruntime version and options, CPU) outside which it is ignored.
The small ONNX graphs run one row per call, as the nodes run them: batching them would save about
a second per 5,000 tasks, but a batched run is not bit-identical to one-row runs for every graph
(the M-learned head differed in 205 of 5,000 rows; the agents, E-d and U did not). Decoding,
feature rows (the agents' own `features`), the codecs, the rules and the tallies are per-task or
vectorized numpy that does not depend on batching.

Measured (pinned to one core of a 2-core machine that other jobs kept at a load of about 4, so
roughly twice what an idle core takes; tiny-profile main set, 5,000 synthetic tasks, the ten
architectures of the quick profile: 0..7 and the N sweep's two points):
- cold text cache: 50 s, of which MiniLM 38 s (5,927 (text, width) rows in 1,151 runs), the
  agents and U 9 s, fusion 1.5 s, TaskBoard 0.1 s;
- warm (a second model set on the same tasks, or the cache loaded from disk): 6-10 s;
- another seed's 5,000 tasks after the first: about half the rows are new (3,030 of 5,965).

What it does not model. Faulty nodes (a spec in another mode than honest is refused), timing
(a fusion node deciding before all its peers are in, a deadline passing), and two places where the
chain's result depends on timing even with honest nodes: M-regret run together with other jobs
(`run_jobs` caps the tasks in flight, and a capped submission is a shorter round, so the Hedge
weights change at points that depend on the other jobs; here rounds are exactly `round_size`),
and the fusion node's weighted vote, whose float scores are summed in the order the peers'
events arrived (here the specs' order; it matters only on an exact tie).

The equality with the nodes is tested in tests/experiment/test_offchain.py (hand-made ONNX sets
and a fake encoder, fast; a trained tiny set and MiniLM, slow).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from node.protocol.enums import AGENT_ROLES, ARCH_NAMES, MAX_CONFIDENCE, Action, Arch, Role
from node.protocol.errors import ModelError, PayloadError

log = logging.getLogger(__name__)

__all__ = ["ArchScore", "OffchainResult", "Published", "TextCache", "chain_weights", "finalized_actions",
           "score_offchain", "verify_model_files"]

REGRET_ROUNDS = 3
"""M-regret's rounds over a stream when no round size is given: the main table's (`runner._job`)."""
TEXT_RUN_ROWS = 32
"""MiniLM rows per onnxruntime run when the cache is filled."""
NOT_FINALIZED = -1
"""The action of a task no node could read (its payload is invalid): it is never finalized."""


# -- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """One role's decisions over the stream, as published on chain (integer action and
    confidence in basis points); `vectors[i]` is the embedding it computed for task i (None: none)."""

    action: np.ndarray  # (N,) int64
    confidence: np.ndarray  # (N,) int64
    vectors: list[np.ndarray | None] | None = field(default=None, repr=False)
    probs: np.ndarray | None = field(default=None, repr=False)
    """(N, 3) int64: the class probabilities in basis points it would publish for M-learned-p
    (`agents.base.probs_bps`; zeros where it abstains or cannot read the payload)."""


@dataclass(frozen=True)
class ArchScore:
    arch: int
    name: str
    actions: np.ndarray  # (N,) int64: the finalized action, NOT_FINALIZED where none
    correct: np.ndarray  # (N,) bool: action == label

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.correct) else float("nan")

    @property
    def finalized(self) -> int:
        return int((self.actions != NOT_FINALIZED).sum())


@dataclass
class OffchainResult:
    model_set: str
    labels: np.ndarray  # (N,) int
    scores: dict[int, ArchScore]
    decisions: dict[str, Published]
    """What each publisher computed: `market`, `sentiment`, `risk`, `coordinator`, and
    `fusion/<arch id>` for each architecture the fusion node decides."""
    model_ids: dict[str, str]
    """Manifest name -> "0x" + sha256 of every file that was verified and scored."""
    regret_weights: np.ndarray | None = None
    """(N, 3) M-regret's weights (bps, market/sentiment/risk) in force when task i was decided."""
    regret_round_size: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    text: dict[str, int] = field(default_factory=dict)
    """The text cache's counters after the call (rows computed, hits)."""

    def __len__(self) -> int:
        return len(self.labels)

    def actions(self, arch: int) -> np.ndarray:
        return self.scores[int(arch)].actions

    def correct(self, arch: int) -> np.ndarray:
        return self.scores[int(arch)].correct

    def accuracy(self, arch: int) -> float:
        return self.scores[int(arch)].accuracy

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly digest: accuracy and finalized count per architecture, ids, timings."""
        return {"model_set": self.model_set, "n": len(self), "model_ids": dict(self.model_ids),
                "archs": {str(a): {"name": s.name, "accuracy": s.accuracy, "finalized": s.finalized}
                          for a, s in self.scores.items()},
                "regret_round_size": self.regret_round_size, "timings": dict(self.timings), "text": dict(self.text)}


# -- the chain's rule and weights --------------------------------------------------------------------


def finalized_actions(tallies: np.ndarray) -> np.ndarray:
    """TaskBoard.finalize on (N, 3) integer tallies (sell, hold, buy): sell or buy only when
    strictly above both others, hold otherwise (ties, all zeros)."""
    t = np.asarray(tallies, dtype=np.int64)
    sell, hold, buy = t[:, 0], t[:, 1], t[:, 2]
    out = np.full(len(t), int(Action.HOLD), dtype=np.int64)
    out[(sell > hold) & (sell > buy)] = int(Action.SELL)
    out[(buy > hold) & (buy > sell)] = int(Action.BUY)
    return out


def _constructor_weights(arch: int) -> dict[int, int]:
    """TaskBoard's constructor defaults for `arch` (contracts/src/TaskBoard.sol)."""
    if arch in (Arch.M_LEARNED, Arch.M_REGRET, Arch.E_D, Arch.M_LEARNED_P):
        return {Role.FUSION: 10_000}
    if arch in (Arch.U, Arch.U_REP):
        return {Role.COORDINATOR: 10_000}
    return {Role.MARKET: 5000, Role.SENTIMENT: 3000, Role.RISK: 2000}


class _WeightRecorder:
    """Stands in for a board: records what `Bench._weights` sets."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[int, int]] = {}

    def set_weights(self, arch: int, weights: Mapping[int, int]) -> list[str]:
        self.weights.setdefault(int(arch), {}).update({int(r): int(w) for r, w in weights.items()})
        return []


def chain_weights(arch: int, uni_best: str | None) -> dict[int, int]:
    """Role -> weight (bps) of `arch` on a bench session's board: the constructor's defaults and
    what the runner sets before the session's tasks (`Bench._weights`); roles absent weigh 0."""
    weights = {int(r): 0 for r in Role}
    weights.update({int(r): w for r, w in _constructor_weights(int(arch)).items()})
    if uni_best is not None:
        from node.experiment.runner import Bench

        recorder = _WeightRecorder()
        Bench._weights(recorder, uni_best)
        weights.update(recorder.weights.get(int(arch), {}))
    return weights


# -- model files --------------------------------------------------------------------------------------


def verify_model_files(manifest: Path, recorded: Mapping[str, Mapping[str, Any]] | None = None,
                       names: Iterable[str] | None = None) -> dict[str, str]:
    """Hash the ONNX files of `manifest` (all entries, or `names`) and check each against its
    entry's sha256 and, when given, the model id `recorded[name]["model_id"]` (a model set's
    bench.json). Returns name -> "0x" + sha256; ModelError on a missing file or any mismatch."""
    from models.manifest import load_manifest, sha256_file

    entries = load_manifest(manifest)
    if not entries:
        raise ModelError(f"no models in manifest {manifest}")
    wanted = list(entries) if names is None else list(names)
    out = {}
    for name in wanted:
        entry = entries.get(name)
        if entry is None:
            raise ModelError(f"manifest {manifest} has no model {name!r}")
        path = entry.file(manifest.parent)
        if not path.is_file():
            raise ModelError(f"model {name!r}: file {path} is missing")
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise ModelError(f"model {name!r}: {path} has sha256 {digest[:16]}..., its manifest entry records "
                             f"{entry.sha256[:16]}...: the file is not the one the nodes register")
        if recorded is not None and name in recorded:
            want = str(recorded[name]["model_id"]).removeprefix("0x")
            if digest != want:
                raise ModelError(f"model {name!r}: {path} has sha256 {digest[:16]}..., the model set recorded "
                                 f"model id 0x{want[:16]}...: the file changed after the set was built")
        out[name] = "0x" + digest
    return out


# -- the text encoder, cached ----------------------------------------------------------------------


class TextCache:
    """Headline embeddings exactly as the nodes' text encoder computes them, computed once.

    For MiniLM (`models.minilm.runtime.TextEmbedder`) a row is keyed by (text, padded width,
    alone), the facts its float32 value depends on (module docstring); `view(batch_size)` is a
    TextEncoder whose `embed(texts)` returns what the real encoder with that batch size returns
    for the same call, from the cache. Other encoders are cached per call (by the tuple of texts).
    It mirrors `TextEmbedder.embed` (sort by token count, runs of `batch_size`, `pad_batch`) and
    runs the encoder's own tokenizer and `_run`: if those change, the text cache test in
    tests/experiment/test_offchain.py (rows against `embed`, bit for bit) is what notices.
    """

    def __init__(self, encoder: Any) -> None:
        from models.minilm.runtime import TextEmbedder

        self.base = encoder
        self.by_row = isinstance(encoder, TextEmbedder)
        self._ids: dict[str, tuple[int, ...]] = {}
        self._rows: dict[tuple[str, int, bool], np.ndarray] = {}
        self._calls: dict[tuple[str, ...], np.ndarray] = {}
        self.stats = {"rows_computed": 0, "encoder_runs": 0, "hits": 0}

    @classmethod
    def minilm(cls, manifest: Path | None = None) -> TextCache:
        """The cache in front of the MiniLM the nodes load (f32, one thread) from `manifest`
        (default the project's)."""
        from models.manifest import MANIFEST_PATH
        from models.minilm.runtime import load_default

        return cls(load_default("f32", Path(manifest or MANIFEST_PATH), threads=1))

    def view(self, batch_size: int) -> _CachedEncoder:
        return _CachedEncoder(self, batch_size)

    def __len__(self) -> int:
        return len(self._rows) + len(self._calls)

    # -- on disk

    def fingerprint(self) -> str:
        """What the rows depend on besides their keys: the ONNX and tokenizer files, onnxruntime's
        version and session options, the machine's CPU (its kernels are chosen by instruction set)."""
        import hashlib
        import platform

        import onnxruntime as ort

        from models.manifest import sha256_file

        base = self.base
        flags = ""
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.is_file():
            flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith(("flags", "Features"))),
                         "")
        parts = [base.model_id, sha256_file(base.tokenizer_path), ort.__version__, str(base.threads),
                 str(base.max_length), platform.machine(), platform.processor(), flags]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def save(self, path: Path) -> None:
        """Write the MiniLM rows to `path` (.npz) with the fingerprint they are valid under."""
        import os
        import tempfile

        if not self.by_row:
            raise ValueError("only MiniLM rows are saved (a per-call cache of another encoder is not)")
        keys = list(self._rows)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".text-cache.", suffix=".npz")
        os.close(fd)
        np.savez(tmp, fingerprint=np.array(self.fingerprint()), texts=np.array([k[0] for k in keys], dtype=str),
                 widths=np.array([k[1] for k in keys], dtype=np.int64),
                 alone=np.array([k[2] for k in keys], dtype=bool),
                 rows=np.stack([self._rows[k] for k in keys]) if keys else np.zeros((0, self.base.dim), np.float32))
        os.replace(tmp, path)

    def load(self, path: Path) -> int:
        """Add the rows saved at `path` if they were computed under this cache's fingerprint
        (else nothing); returns how many were added."""
        path = Path(path)
        if not self.by_row or not path.is_file():
            return 0
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != self.fingerprint():
                log.info("text cache %s was computed elsewhere (another MiniLM, onnxruntime or CPU): ignored", path)
                return 0
            rows = z["rows"].astype(np.float32)
            keys = zip(z["texts"].tolist(), z["widths"].tolist(), z["alone"].tolist(), strict=True)
            added = 0
            for (t, w, a), v in zip(keys, rows, strict=True):
                key = (str(t), int(w), bool(a))
                if key not in self._rows:
                    self._rows[key] = v
                    added += 1
        return added

    # -- keys

    def _token_ids(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._ids]
        if missing:
            for t, enc in zip(missing, self.base._tokenizer.encode_batch(missing), strict=True):
                self._ids[t] = tuple(enc.ids)
        return [self._ids[t] for t in texts]

    def _keys(self, texts: Sequence[str], batch_size: int) -> list[tuple[str, int, bool]]:
        """What `TextEmbedder.embed(texts)` runs each text in: sorted by token count (stable),
        runs of `batch_size`, each padded to its longest row."""
        ids = self._token_ids(texts)
        order = np.argsort([len(i) for i in ids], kind="stable")
        keys: list[tuple[str, int, bool]] = [("", 0, False)] * len(texts)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(ids[i]) for i in rows)
            for i in rows:
                keys[i] = (texts[i], width, len(rows) == 1)
        return keys

    # -- filling

    def prefill(self, calls: Iterable[Sequence[str]], batch_size: int) -> None:
        """Compute, in as few runs as possible, every row the calls `embed(texts)` will need."""
        calls = [list(c) for c in calls if c]
        if not self.by_row:
            for c in calls:
                self._embed_call(c)
            return
        need = {k for c in calls for k in self._keys(c, batch_size) if k not in self._rows}
        self._compute(need)

    def _compute(self, keys: Iterable[tuple[str, int, bool]]) -> None:
        pad = self.base._pad_id
        alone, shared = [], {}
        for k in keys:
            (alone.append(k) if k[2] else shared.setdefault(k[1], []).append(k))
        for k in alone:  # a run of one row, padded to itself
            self._rows[k] = self.base._run([list(self._ids[k[0]])])[0]
            self.stats["encoder_runs"] += 1
        for width, group in shared.items():
            for start in range(0, len(group), TEXT_RUN_ROWS):
                chunk = group[start:start + TEXT_RUN_ROWS]
                rows = [list(self._ids[k[0]]) for k in chunk]
                if len(rows) < 2 or max(len(r) for r in rows) < width:
                    # a row whose output is dropped: the run has two rows or more, padded to `width`
                    rows.append(rows[0] + [pad] * (width - len(rows[0])))
                out = self.base._run(rows)
                self.stats["encoder_runs"] += 1
                for k, v in zip(chunk, out, strict=False):
                    self._rows[k] = v
        self.stats["rows_computed"] += len(alone) + sum(len(g) for g in shared.values())

    def _embed_call(self, texts: list[str]) -> np.ndarray:
        key = tuple(texts)
        hit = self._calls.get(key)
        if hit is None:
            hit = np.asarray(self.base.embed(list(texts)), dtype=np.float32)
            self._calls[key] = hit
            self.stats["encoder_runs"] += 1
            self.stats["rows_computed"] += len(texts)
        else:
            self.stats["hits"] += 1
        return hit.copy()

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        texts = list(texts)
        if not self.by_row:
            return self._embed_call(texts)
        out = np.empty((len(texts), self.base.dim), dtype=np.float32)
        if not texts:
            return out
        keys = self._keys(texts, batch_size)
        missing = {k for k in keys if k not in self._rows}
        if missing:
            self._compute(missing)
        else:
            self.stats["hits"] += 1
        for i, k in enumerate(keys):
            out[i] = self._rows[k]
        return out


class _CachedEncoder:
    """A TextEncoder that answers from a TextCache as the real encoder with `batch_size` would."""

    def __init__(self, cache: TextCache, batch_size: int) -> None:
        self.cache = cache
        self.batch_size = batch_size
        base = cache.base
        for attr in ("entry", "model_id", "name", "dim"):  # what encoder_identity and agents read
            if hasattr(base, attr):
                setattr(self, attr, getattr(base, attr))

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.cache.embed(texts, self.batch_size)


_DEFAULT_TEXT: dict[str, TextCache] = {}


def _default_text_cache(manifest: Path | None) -> TextCache:
    from models.manifest import MANIFEST_PATH

    key = str(Path(manifest or MANIFEST_PATH).resolve())
    if key not in _DEFAULT_TEXT:
        _DEFAULT_TEXT[key] = TextCache.minilm(manifest)
    return _DEFAULT_TEXT[key]


# -- scoring ------------------------------------------------------------------------------------------


def _resolve(models: Any) -> tuple[Path, dict[str, Any] | None, str]:
    """(manifest, bench meta or None, name) of a ModelSet, a manifest path or a set's folder."""
    from node.experiment.modelsets import META, ModelSet

    if isinstance(models, ModelSet):
        return models.manifest, models.meta, models.name
    path = Path(models)
    manifest = path / "manifest.json" if path.is_dir() else path
    if not manifest.is_file():
        raise ModelError(f"no model manifest at {manifest}")
    meta_path = manifest.parent / META
    meta = None
    if meta_path.is_file():
        import json

        meta = json.loads(meta_path.read_text())
    return manifest, meta, manifest.parent.name


def _default_specs(meta: dict[str, Any] | None, profile: Any, uni_best: str | None, rules: str | None) -> list:
    from node.experiment import plan

    if meta is not None and meta.get("kind") == "ed":
        return plan.ed_specs()
    if meta is not None and meta.get("kind") == "ablation":
        return plan.ablation_specs()
    if uni_best is None or rules is None:
        raise ValueError("the main architectures need the Uni-best agent and M-rules' thresholds: pass a ModelSet "
                         "(its bench.json has them) or uni_best= and rules=")
    # The N sweep's replicas (`nodes.add` starts them for the sweep) publish for its points only.
    return plan.main_specs(uni_best, rules, profile) + plan.replica_specs(profile)


def _decode_all(payloads: Sequence[bytes]) -> list[Any]:
    from node.protocol.payload import decode

    out = []
    for raw in payloads:
        try:
            out.append(decode(raw))
        except PayloadError:
            out.append(None)  # every node rejects it: never decided, never finalized
    return out


def _decisions(n: int) -> tuple[np.ndarray, np.ndarray]:
    # An unreadable payload gets no decision; (hold, 0) weighs nothing in a tally.
    return np.full(n, int(Action.HOLD), np.int64), np.zeros(n, np.int64)


def _feature_agent(agent: Any, payloads: list[Any]) -> Published:
    """A market or risk agent (`agents.feature.FeatureAgent.run`, step by step)."""
    from agents.base import Decision, probs_bps

    act, conf = _decisions(len(payloads))
    bps = np.zeros((len(payloads), len(Action)), np.int64)
    vectors: list[np.ndarray | None] = [None] * len(payloads)
    for i, p in enumerate(payloads):
        if p is None:
            continue
        if not agent.present(p):
            d = Decision.abstain()
        else:
            if agent.model is not None and agent.model_reads(p):
                out = agent.model(agent.features(p))  # one row, as the node runs it
                vectors[i] = out["embedding"][0].astype(np.float32)
                probs = out["probs"][0]
            else:
                probs = agent.rule_probs(p)
            d, bps[i] = Decision.from_probs(probs), probs_bps(probs)
        act[i], conf[i] = int(d.action), d.confidence
    return Published(act, conf, vectors, bps)


def _sentiment_agent(agent: Any, payloads: list[Any]) -> Published:
    """The sentiment agent (`SentimentAgent.run`): its features (headline slots), then its model."""
    from agents.base import NO_PROBS, Decision, TaskInput, probs_bps

    act, conf = _decisions(len(payloads))
    bps = np.zeros((len(payloads), len(Action)), np.int64)
    vectors: list[np.ndarray | None] = [None] * len(payloads)
    for i, p in enumerate(payloads):
        if p is None:
            continue
        if agent.model is None or (p.headlines and not agent.model_reads(p.headlines)):
            out = agent.run(TaskInput(i, int(Arch.E_D), p))  # the prototype rule: the agent itself
            d = out.decision
            vectors[i] = None if out.embedding is None else out.embedding.vector
            bps[i] = out.probs or NO_PROBS
        elif not p.headlines:
            d = Decision.abstain()
        else:
            res = agent.model(agent.features(p.headlines))
            vectors[i] = res["embedding"][0].astype(np.float32)
            d, bps[i] = Decision.from_probs(res["probs"][0]), probs_bps(res["probs"][0])
        act[i], conf[i] = int(d.action), d.confidence
    return Published(act, conf, vectors, bps)


def _u_agent(agent: Any, payloads: list[Any]) -> Published:
    """The coordinator (`UAgent.run` = `decide_batch` of one payload)."""
    from agents.base import Decision

    act, conf = _decisions(len(payloads))
    for i, p in enumerate(payloads):
        if p is None:
            continue
        feats, mask, _ = agent.features([p])
        if not mask.any():
            d = Decision.abstain()
        else:
            out = agent.model.run(**feats, mask=mask)
            d = Decision.from_probs(np.asarray(out["probs"], np.float32)[0])
        act[i], conf[i] = int(d.action), d.confidence
    return Published(act, conf)


@dataclass(frozen=True)
class _Publisher:
    spec: Any  # NodeSpec
    role: Role


class _Scorer:
    def __init__(self, manifest: Path, specs: list, text: TextCache) -> None:
        from agents.factory import build_agent, encoder_identity

        self.specs = specs
        self.text = text
        identity = encoder_identity(text.base)
        sentiment_batch, u_batch = node_text_batches()
        self.agents: dict[str, Any] = {}
        self.text_batches: dict[str, int] = {}
        for spec in specs:
            key = self._agent_key(spec)
            if key in self.agents:
                continue
            if spec.role == Role.SENTIMENT.label:
                enc = text.view(sentiment_batch)
                self.agents[key] = build_agent(spec.role, manifest_path=manifest,
                                               text_encoder=(enc, *identity))
                self.text_batches[key] = sentiment_batch
            elif spec.role == Role.COORDINATOR.label:
                enc = text.view(u_batch)
                self.agents[key] = build_agent(spec.role, manifest_path=manifest, text_encoder=(enc, *identity))
                self.text_batches[key] = u_batch
            else:
                rules = None if not spec.rules else tuple(float(x) for x in spec.rules.split(","))
                self.agents[key] = build_agent(spec.role, manifest_path=manifest, fusion_rules=rules)

    @staticmethod
    def _agent_key(spec: Any) -> str:
        return f"{spec.role}|{spec.rules or ''}"

    def agent(self, spec: Any) -> Any:
        return self.agents[self._agent_key(spec)]


def node_text_batches() -> tuple[int, int]:
    """MiniLM rows per run of the bench's sentiment node (`load_text_encoder`: the encoder's
    default) and of its U coordinators (`chorus coordinator run`'s `text_batch` default)."""
    import inspect

    from models.minilm.runtime import TextEmbedder
    from node.coordinator.service import CoordinatorSettings

    sentiment = inspect.signature(TextEmbedder).parameters["batch_size"].default
    return int(sentiment), int(CoordinatorSettings.model_fields["text_batch"].default)


def _loaded_files(agents: Iterable[Any]) -> set[Path]:
    """Paths of the ONNX files the built agents hold sessions of."""
    out: set[Path] = set()
    for agent in agents:
        inner = getattr(agent, "inner", agent)
        for attr in ("model",):
            m = getattr(inner, attr, None)
            path = getattr(m, "path", None)
            if path is not None:
                out.add(Path(path).resolve())
        for attr in ("decisions_head", "embeddings_head"):
            head = getattr(inner, attr, None)
            path = getattr(getattr(head, "model", None), "path", None)
            if path is not None:
                out.add(Path(path).resolve())
    return out


def score_offchain(models: Any, stream: Any, archs: Iterable[int] | None = None, *, profile: Any = None,
                   specs: list | None = None, uni_best: str | None = None, rules: str | None = None,
                   hedge: Any = None, regret_round_size: int | None = None, text: TextCache | None = None,
                   text_manifest: Path | None = None) -> OffchainResult:
    """The action TaskBoard would finalize for every task of `stream` under each of `archs`
    (default: every architecture the specs publish for), and its correctness (module docstring).

    models: a `ModelSet`, or a manifest path / model-set folder (with a bench.json, or with
      `uni_best`, `rules` and `hedge` given). stream: a `TaskStream` (`payloads`, `labels`).
    profile: the bench profile whose node specs are meant (`agents` for the N sweep, `u_replicas`);
      default none of the N sweep, Profile's U replicas. specs: the node specs themselves instead.
    hedge: M-regret's starting weights (`jobs.RegretWeights`; default the set's validation start).
    regret_round_size: M-regret's tasks per round (default the main table's: ceil(N / 3), >= 4).
    text: a `TextCache` shared across calls (default one per MiniLM manifest, kept for the process).
    """
    from node.experiment.config import Profile
    from node.experiment.jobs import RegretWeights

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    manifest, meta, name = _resolve(models)
    if meta is not None:
        uni_best = uni_best if uni_best is not None else meta.get("uni_best")
        if rules is None and meta.get("rules"):
            rules = f"{meta['rules']['risk_veto']},{meta['rules']['lead']}"
        if hedge is None and meta.get("hedge"):
            hedge = RegretWeights(meta["hedge"]["eta"], list(meta["hedge"]["log_w"]))
    profile = profile if profile is not None else Profile("offchain", agents=())
    specs = list(specs) if specs is not None else _default_specs(meta, profile, uni_best, rules)
    for spec in specs:
        if spec.mode != "honest":
            raise ValueError(f"node {spec.name} runs in mode {spec.mode}: off-chain scoring reproduces honest nodes")
    served = sorted({int(a) for s in specs for a in s.archs})
    archs = served if archs is None else sorted({int(a) for a in archs})
    unknown = [a for a in archs if a not in served]
    if unknown:
        raise ValueError(f"no node publishes for architectures {unknown} (served: {served})")

    # The files: hashed and checked before any session is built.
    t0 = time.perf_counter()
    model_ids = verify_model_files(manifest, (meta or {}).get("files"))
    if text is None:
        text = _default_text_cache(text_manifest)
    if text.by_row:  # MiniLM: the file the cache's rows came from is still its manifest entry's
        model_ids.update(_verify_text_encoder(text.base))
    scorer = _Scorer(manifest, specs, text)
    scored_files = {Path(manifest.parent / p).resolve() for p in _manifest_paths(manifest)}
    for path in _loaded_files(scorer.agents.values()):
        if path not in scored_files:
            raise ModelError(f"an agent loaded {path}, which is not in the verified manifest {manifest}")
    timings["load_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    payloads = _decode_all(stream.payloads)
    labels = np.asarray(stream.labels, dtype=np.int64)
    n = len(payloads)
    if len(labels) != n:
        raise ValueError(f"{n} payloads but {len(labels)} labels")
    timings["decode_s"] = time.perf_counter() - t0

    # Which node publishes for what.
    publishers: dict[int, list[_Publisher]] = {a: [] for a in served}
    embedders: dict[int, list[Any]] = {a: [] for a in served}
    for spec in specs:
        for a in spec.archs:
            publishers[int(a)].append(_Publisher(spec, Role.parse(spec.role)))
            if a in spec.embedding_archs:
                embedders[int(a)].append(spec)
    needed = {int(p.role) for a in archs for p in publishers[a]}  # a fusion node's peers publish for its arch

    # Text: every MiniLM row the sentiment agent and U will ask for, in a few runs.
    t0 = time.perf_counter()
    headlines = [p.headlines for p in payloads if p is not None and p.headlines]
    for key, batch in scorer.text_batches.items():
        if int(Role.parse(key.split("|")[0])) in needed:
            text.prefill(headlines, batch)
    timings["text_s"] = time.perf_counter() - t0

    # The modality agents and U, once each: their decisions do not depend on the architecture.
    t0 = time.perf_counter()
    decisions: dict[str, Published] = {}
    for spec in specs:
        role = Role.parse(spec.role)
        if spec.role in decisions or int(role) not in needed or role == Role.FUSION:
            continue
        agent = scorer.agent(spec)
        if role in (Role.MARKET, Role.RISK):
            decisions[spec.role] = _feature_agent(agent, payloads)
        elif role == Role.SENTIMENT:
            decisions[spec.role] = _sentiment_agent(agent, payloads)
        elif role == Role.COORDINATOR:
            decisions[spec.role] = _u_agent(agent, payloads)
    timings["agents_s"] = time.perf_counter() - t0

    # The fusion node, per architecture it decides, on its peers as decoded from chain.
    t0 = time.perf_counter()
    for a in archs:
        fusion = [p for p in publishers[a] if p.role == Role.FUSION]
        if not fusion:
            continue
        weights = chain_weights(a, uni_best)
        if weights[int(Role.FUSION)] == 0 and a not in (Arch.M_RULES, Arch.M_LEARNED, Arch.M_LEARNED_P, Arch.E_D):
            continue  # it publishes, but its decision weighs nothing (the N sweep)
        if len(fusion) > 1:
            raise ValueError(f"architecture {a}: {len(fusion)} fusion nodes; off-chain scoring reproduces one")
        peers = [p for p in publishers[a] if p.role != Role.FUSION]
        decisions[f"fusion/{a}"] = _fusion(scorer.agent(fusion[0].spec), a, peers, embedders[a], decisions,
                                           scorer, payloads)
    timings["fusion_s"] = time.perf_counter() - t0

    # TaskBoard.
    t0 = time.perf_counter()
    ok = np.array([p is not None for p in payloads], dtype=bool)
    scores: dict[int, ArchScore] = {}
    regret_w = None
    round_size = None
    for a in archs:
        pubs = [(p.role, _published(p, a, decisions)) for p in publishers[a]]
        if a == Arch.M_REGRET:
            if hedge is None:
                raise ValueError("M-regret needs its starting weights: pass a ModelSet or hedge=RegretWeights(...)")
            round_size = regret_round_size or max(4, -(-n // REGRET_ROUNDS))
            actions, regret_w = _regret(a, pubs, uni_best, replace(hedge, log_w=list(hedge.log_w)), round_size,
                                        labels, ok)
        else:
            actions = finalized_actions(_tallies(pubs, chain_weights(a, uni_best), n))
        actions = np.where(ok, actions, NOT_FINALIZED)
        scores[a] = ArchScore(a, _arch_name(a), actions, actions == labels)
    timings["chain_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    return OffchainResult(name, labels, scores, decisions, model_ids, regret_w, round_size, timings,
                          dict(text.stats))


def _verify_text_encoder(encoder: Any) -> dict[str, str]:
    from models.manifest import sha256_file

    entry, path = encoder.entry, Path(encoder.model_path)
    name = entry.name if entry is not None else path.stem
    digest = sha256_file(path) if path.is_file() else "missing"
    if entry is not None and digest != entry.sha256:
        raise ModelError(f"model {name!r}: {path} has sha256 {digest[:16]}..., its manifest entry records "
                         f"{entry.sha256[:16]}...: the file is not the one the nodes register")
    if digest != encoder.model_id:
        raise ModelError(f"model {name!r}: {path} changed since the text cache was filled; build a new TextCache")
    return {name: "0x" + digest}


def _manifest_paths(manifest: Path) -> list[str]:
    from models.manifest import load_manifest

    return [e.path for e in load_manifest(manifest).values()]


def _arch_name(arch: int) -> str:
    from node.experiment.config import ARCH_N_SWEEP

    if arch in ARCH_NAMES:
        return ARCH_NAMES[Arch(arch)]
    return f"N-sweep/{arch - ARCH_N_SWEEP}"


def _published(pub: _Publisher, arch: int, decisions: dict[str, Published]) -> Published:
    if pub.role == Role.FUSION:
        return decisions.get(f"fusion/{arch}") or Published(*_decisions(0))
    return decisions[pub.spec.role]


def _tallies(pubs: list[tuple[Role, Published]], weights: Mapping[int, int], n: int) -> np.ndarray:
    """TaskBoard's tallies: `weight(role) * confidence` added to the published action's."""
    tally = np.zeros((n, len(Action)), dtype=np.int64)
    rows = np.arange(n)
    for role, pub in pubs:
        w = int(weights.get(int(role), 0))
        if w == 0:
            continue
        np.add.at(tally, (rows, pub.action), w * pub.confidence)
    return tally


def _regret(arch: int, pubs: list[tuple[Role, Published]], uni_best: str | None, hedge: Any, round_size: int,
            labels: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M-regret as `ArchJob` runs it: weights set per round, Hedge updated from the round's
    published decisions and labels after it."""
    n = len(labels)
    base = chain_weights(arch, uni_best)
    actions = np.empty(n, dtype=np.int64)
    per_task = np.zeros((n, len(AGENT_ROLES)), dtype=np.int64)
    by_role = {int(role): pub for role, pub in pubs if role in AGENT_ROLES}
    for lo in range(0, n, round_size):
        hi = min(n, lo + round_size)
        bps = {int(r): int(w) for r, w in hedge.weights_bps().items()}
        weights = {**base, **bps, int(Role.FUSION): 0}
        sub = [(role, Published(pub.action[lo:hi], pub.confidence[lo:hi])) for role, pub in pubs]
        actions[lo:hi] = finalized_actions(_tallies(sub, weights, hi - lo))
        per_task[lo:hi] = [bps[int(r)] for r in AGENT_ROLES]
        for i in range(lo, hi):
            acts = [int(by_role[int(r)].action[i]) if int(r) in by_role and ok[i] else int(Action.HOLD)
                    for r in AGENT_ROLES]
            present = [bool(int(r) in by_role and ok[i] and by_role[int(r)].confidence[i] > 0) for r in AGENT_ROLES]
            hedge.update(acts, present, int(labels[i]))
    return actions, per_task


def _fusion(agent: Any, arch: int, peers: list[_Publisher], embedders: list[Any], decisions: dict[str, Published],
            scorer: _Scorer, payloads: list[Any]) -> Published:
    """The fusion node's decision for `arch` on every task (module docstring)."""
    from agents.faults import RulesFusion

    n = len(payloads)
    roles = [p.role for p in peers]
    one_per_role = len(set(roles)) == len(roles) and all(r in AGENT_ROLES for r in roles)
    if arch == Arch.M_RULES and isinstance(agent, RulesFusion) and one_per_role:
        return _m_rules(agent, peers, decisions, payloads)
    if arch == Arch.M_LEARNED and getattr(agent, "decisions_head", None) is not None and one_per_role and peers:
        return _m_learned(agent, peers, decisions, payloads)
    if arch == Arch.M_LEARNED_P and getattr(agent, "probabilities_head", None) is not None and one_per_role and peers:
        return _m_learned_p(agent, peers, decisions, payloads)
    if arch == Arch.E_D and getattr(agent, "embeddings_head", None) is not None and one_per_role:
        return _e_d(agent, peers, embedders, decisions, scorer, payloads)
    act, conf = _decisions(n)
    for i, p in enumerate(payloads):
        if p is None:
            continue
        out = agent.run(_task_input(i, arch, p, peers, embedders, decisions, scorer))
        act[i], conf[i] = int(out.decision.action), out.decision.confidence
    return Published(act, conf)


def _peer_arrays(peers: list[_Publisher], decisions: dict[str, Published], n: int, hold_absent: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) actions, confidences, presence of the peers' decisions in AGENT_ROLES order."""
    absent = int(Action.HOLD) if hold_absent else 0
    actions = np.full((n, len(AGENT_ROLES)), absent, dtype=np.int64)
    confs = np.zeros((n, len(AGENT_ROLES)), dtype=np.int64)
    present = np.zeros((n, len(AGENT_ROLES)), dtype=bool)
    for p in peers:
        j = AGENT_ROLES.index(p.role)
        pub = decisions[p.spec.role]
        actions[:, j], confs[:, j], present[:, j] = pub.action, pub.confidence, True
    return actions, confs, present


def _m_rules(agent: Any, peers: list[_Publisher], decisions: dict[str, Published], payloads: list[Any]) -> Published:
    """`RulesFusion.run` for M-rules: `m_rules` on the published decisions, full confidence."""
    from models.fusion import m_rules

    n = len(payloads)
    actions, confs, present = _peer_arrays(peers, decisions, n, hold_absent=True)
    act = m_rules(actions, confs, present, agent.params).astype(np.int64)
    return Published(act, np.full(n, MAX_CONFIDENCE, dtype=np.int64))


def _m_learned(agent: Any, peers: list[_Publisher], decisions: dict[str, Published], payloads: list[Any]
               ) -> Published:
    """`FusionAgent._learned`: the decision scores, then the M-learned head one task at a time."""
    from agents.base import Decision
    from models.fusion import decision_scores

    n = len(payloads)
    actions, confs, present = _peer_arrays(peers, decisions, n, hold_absent=False)
    mask = (present & (confs > 0)).astype(np.float32)  # an abstention (confidence 0) is absent
    scores = decision_scores(actions, confs, mask)  # (N, 9), elementwise: the same rows as one at a time
    head = agent.decisions_head
    act, conf = _decisions(n)
    for i, p in enumerate(payloads):
        if p is None:
            continue
        d = Decision.from_probs(head.probs(scores=scores[i:i + 1], mask=mask[i:i + 1]))
        act[i], conf[i] = int(d.action), d.confidence
    return Published(act, conf)


def _m_learned_p(agent: Any, peers: list[_Publisher], decisions: dict[str, Published], payloads: list[Any]
                 ) -> Published:
    """`FusionAgent._learned_probs`: the peers' published probabilities (basis points), then the
    M-learned-p head one task at a time."""
    from agents.base import Decision
    from agents.fusion import probability_scores

    n = len(payloads)
    by_role = {p.role: decisions[p.spec.role] for p in peers}
    head = agent.probabilities_head
    act, conf = _decisions(n)
    for i, p in enumerate(payloads):
        if p is None:
            continue
        probs = [None if r not in by_role or by_role[r].probs is None else by_role[r].probs[i] for r in AGENT_ROLES]
        scores, mask = probability_scores(probs)
        d = Decision.from_probs(head.probs(scores=scores, mask=mask))
        act[i], conf[i] = int(d.action), d.confidence
    return Published(act, conf)


def _wire_vector(spec: Any, scorer: _Scorer, pub: Published, i: int) -> tuple[bytes, int, bytes] | None:
    """(model id, encoding, vector bytes) of the EmbeddingPublished event spec's node emits for
    task i, or None when it publishes none."""
    from agents.base import Embedding

    agent = scorer.agent(spec)
    if not agent.identity.publishes_embeddings or pub.vectors is None or pub.vectors[i] is None:
        return None
    ident = agent.identity
    emb = Embedding(pub.vectors[i], agent.model.model_id if agent.model is not None else ident.model_id,
                    agent.model.encoding if agent.model is not None else ident.encoding)
    return bytes(emb.model_id), int(emb.encoding), emb.to_bytes()


def _e_d(agent: Any, peers: list[_Publisher], embedders: list[Any], decisions: dict[str, Published],
         scorer: _Scorer, payloads: list[Any]) -> Published:
    """`FusionAgent._embeddings`: the peers' vectors decoded from their bytes where they are in the
    head's spaces (or mapped into them through the agent's alignment resolver, where it has one:
    `FusionAgent.use_alignments`), the E-d head one task at a time; the vote (the agent itself)
    where none is."""
    from agents.base import Decision, decode_vector
    from models.fusion import concat_embeddings

    head = agent.embeddings_head
    n = len(payloads)
    by_role = {p.role: p for p in peers}
    embedding_specs = {s.name for s in embedders}
    act, conf = _decisions(n)
    dim = head.spaces[0][1]
    for i, p in enumerate(payloads):
        if p is None:
            continue
        vectors: list[np.ndarray | None] = []
        for role, (model_id, d, encoding) in zip(AGENT_ROLES, head.spaces, strict=True):
            peer = by_role.get(role)
            wire = None
            if peer is not None and peer.spec.name in embedding_specs:
                wire = _wire_vector(peer.spec, scorer, decisions[peer.spec.role], i)
            same = (wire is not None and wire[0] == model_id and wire[1] == int(encoding)
                    and len(wire[2]) == encoding.byte_length(d))
            if same:
                vectors.append(decode_vector(wire[2], encoding, d))  # type: ignore[index]
            elif wire is not None and getattr(agent, "alignments", None) is not None:
                # Another space: through the map the agent's resolver hands it (`FusionAgent._aligned`).
                peer_out = SimpleNamespace(model_id=wire[0], encoding=wire[1], vector=wire[2])
                vectors.append(agent._aligned(peer_out, model_id, d, encoding))
            else:
                vectors.append(None)
        if all(v is None for v in vectors):
            out = agent.run(_task_input(i, int(Arch.E_D), p, peers, embedders, decisions, scorer))
            act[i], conf[i] = int(out.decision.action), out.decision.confidence
            continue
        x, mask = concat_embeddings(vectors, dim)
        dec = Decision.from_probs(head.probs(embeddings=x, mask=mask))
        act[i], conf[i] = int(dec.action), dec.confidence
    return Published(act, conf)


def _task_input(i: int, arch: int, payload: Any, peers: list[_Publisher], embedders: list[Any],
                decisions: dict[str, Published], scorer: _Scorer) -> Any:
    """The TaskInput the fusion node builds for task i: one PeerOutput per peer node, its
    decision (for M-learned-p: the one TaskBoard reads from its probabilities, which it carries
    too) and (where published) its embedding as the events carry them."""
    from agents.base import Decision, PeerOutput, TaskInput
    from node.protocol.enums import PROBABILITY_ARCHS

    embedding_specs = {s.name for s in embedders}
    out = []
    for k, peer in enumerate(peers):
        pub = decisions[peer.spec.role]
        wire = _wire_vector(peer.spec, scorer, pub, i) if peer.spec.name in embedding_specs else None
        extra: dict[str, Any] = {} if wire is None else {"model_id": wire[0], "encoding": wire[1], "vector": wire[2]}
        decision = Decision(Action(int(pub.action[i])), int(pub.confidence[i]))
        if arch in PROBABILITY_ARCHS and pub.probs is not None:
            extra["probs"] = tuple(int(x) for x in pub.probs[i])
            decision = Decision.from_bps(extra["probs"])
        out.append(PeerOutput(agent=f"0x{k:040x}", role=int(peer.role), action=int(decision.action),
                              confidence=decision.confidence, **extra))
    return TaskInput(i, arch, payload, tuple(out))
