"""The fusion (strategy) agent: decides from the other agents' published outputs for a task.

It reads the DecisionPublished and EmbeddingPublished events the node's watcher stored and
publishes one decision:
- arch 3 (M-learned), with the trained `m-learned-dec` head in the manifest: the learned late
  fusion over the peers' decisions (`models.fusion.decision_scores`, exactly what the chain shows);
- arch 8 (M-learned-p), with the trained `m-learned` head: the learned late fusion over the peers'
  published class probabilities (ProbabilitiesPublished, basis points; `models.fusion.stack_probs`);
  a peer that abstained (all zeros) or published none is absent, as a missing modality is in training;
- arch 5 (E-d), with a trained `e-d<d>` head: the head on the concatenated peer embeddings, each
  used if it is in the embedding space the head was trained on (same model id, dim, dtype), or if
  the node handed the agent an alignment resolver (`use_alignments`, `node.runtime.alignments`)
  that finds a registered, checked map from the peer's model into that space: the mapped vector is
  fused. Vectors from other spaces are treated as absent, never fused raw;
- otherwise (or without heads): a confidence-weighted vote with the protocol's role weights
  (market 0.5, sentiment 0.3, risk 0.2).
In the architectures where the chain fuses (M-fixed and friends) TaskBoard gives this decision
weight 0; in M-learned, M-regret and E-d it is the decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.base import Agent, AgentIdentity, AgentOutput, Decision, Modality, Role, TaskInput, decode_vector, encode_vector
from node.protocol.enums import AGENT_ROLES, MAX_CONFIDENCE, Action, Arch, Encoding

if TYPE_CHECKING:
    from models.align import AlignmentMap

log = logging.getLogger(__name__)

AlignmentResolver = Callable[[bytes, bytes], "AlignmentMap | None"]
"""`(peer_model, head_model) -> map or None`: the registered map between two spaces, checked."""

ROLE_WEIGHTS = {Role.MARKET: 0.5, Role.SENTIMENT: 0.3, Role.RISK: 0.2}


@dataclass
class TrainedHead:
    """A fusion head from the manifest: `run(**inputs) -> {'probs': (1, 3)}` (models.runtime.OnnxModel)."""

    name: str
    model: Any = field(repr=False)
    # E-d only: the embedding space each input slot must come from, in AGENT_ROLES order.
    spaces: tuple[tuple[bytes, int, Encoding], ...] = ()

    def probs(self, **inputs: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.run(**inputs)["probs"])[0]  # (3,)


@dataclass(frozen=True)
class FusionHeads:
    """The trained heads a manifest holds (`agents.factory.load_fusion_heads`); None where absent."""

    decisions: TrainedHead | None = None
    """`m-learned-dec`: M-learned over the peers' decisions."""
    probabilities: TrainedHead | None = None
    """`m-learned`: M-learned-p over the peers' class probabilities."""
    embeddings: TrainedHead | None = None
    """`e-d<d>`: E-d over the peers' embeddings."""


class FusionAgent(Agent):
    waits_for_peers = True

    def __init__(self, decisions_head: TrainedHead | None = None, embeddings_head: TrainedHead | None = None,
                 probabilities_head: TrainedHead | None = None) -> None:
        self.decisions_head = decisions_head
        self.embeddings_head = embeddings_head
        self.probabilities_head = probabilities_head
        self.alignments: AlignmentResolver | None = None
        self._warned: set[tuple[bytes, bytes, str]] = set()
        heads = [h.name for h in (decisions_head, probabilities_head, embeddings_head) if h is not None]
        decider = "weighted-vote" + (f" + trained heads {', '.join(heads)}" if heads else "")
        self.identity = AgentIdentity(Role.FUSION, Modality.MULTIMODAL, decider=decider,
                                      backend="onnx" if heads else "numpy")

    def use_alignments(self, resolver: AlignmentResolver | None) -> None:
        """E-d: fuse a peer's vector from another model through `resolver(peer_model, head_model)`
        (None, the default: such vectors are absent)."""
        self.alignments = resolver

    def run(self, task: TaskInput) -> AgentOutput:
        peers = {p.role: p for p in task.peers if p.role in ROLE_WEIGHTS}
        if task.arch == Arch.M_LEARNED and self.decisions_head is not None and peers:
            return self._learned(peers)
        if task.arch == Arch.M_LEARNED_P and self.probabilities_head is not None and peers:
            return self._learned_probs(peers)
        if task.arch == Arch.E_D and self.embeddings_head is not None:
            out = self._embeddings(peers)
            if out is not None:
                return out
        return self._vote(task)

    def _vote(self, task: TaskInput) -> AgentOutput:
        scores = np.zeros(len(Action))  # (sell, hold, buy)
        used = 0
        for peer in task.peers:
            if peer.role not in ROLE_WEIGHTS or peer.action is None or peer.confidence is None:
                continue
            scores[int(peer.action)] += ROLE_WEIGHTS[peer.role] * peer.confidence / MAX_CONFIDENCE
            used += 1
        total = scores.sum()
        if used == 0 or total <= 0:
            return AgentOutput(Decision.abstain(), note="no usable peer decision")
        best = int(np.argmax(scores))
        if np.sum(scores == scores[best]) > 1:
            best = int(Action.HOLD)  # a tie is no signal, as on chain
        confidence = int(round(MAX_CONFIDENCE * scores[best] / total))
        return AgentOutput(Decision(Action(best), confidence), note=f"vote over {used} peer decisions")

    def _learned(self, peers: dict[int, Any]) -> AgentOutput:
        from models.fusion import decision_scores

        actions = np.array([[peers[r].action if r in peers and peers[r].action is not None else 0
                             for r in AGENT_ROLES]])  # (1, A)
        confs = np.array([[peers[r].confidence if r in peers and peers[r].confidence is not None else 0
                           for r in AGENT_ROLES]])
        # A peer that abstained (hold at confidence 0: its modality is missing) is absent, as in training.
        present = np.array([[1.0 if r in peers and peers[r].action is not None and peers[r].confidence else 0.0
                             for r in AGENT_ROLES]], np.float32)
        scores = decision_scores(actions, confs, present)  # (1, A*3)
        probs = self.decisions_head.probs(scores=scores, mask=present)  # type: ignore[union-attr]
        return AgentOutput(Decision.from_probs(probs), note=f"{self.decisions_head.name} head")  # type: ignore[union-attr]

    def _learned_probs(self, peers: dict[int, Any]) -> AgentOutput:
        head = self.probabilities_head
        assert head is not None
        scores, present = probability_scores([peers[r].probs if r in peers else None for r in AGENT_ROLES])
        probs = head.probs(scores=scores, mask=present)
        used = int(present.sum())
        return AgentOutput(Decision.from_probs(probs), note=f"{head.name} head over {used} peers' probabilities")

    def _embeddings(self, peers: dict[int, Any]) -> AgentOutput | None:
        from models.fusion import concat_embeddings

        head = self.embeddings_head
        assert head is not None
        vectors: list[np.ndarray | None] = []
        aligned = 0
        for role, (model_id, dim, encoding) in zip(AGENT_ROLES, head.spaces, strict=True):
            peer = peers.get(role)
            same_space = (peer is not None and peer.vector is not None and peer.model_id == model_id
                          and peer.encoding == int(encoding) and len(peer.vector) == encoding.byte_length(dim))
            if same_space:
                vectors.append(decode_vector(peer.vector, encoding, dim))  # type: ignore[union-attr]
                continue
            vector = self._aligned(peer, model_id, dim, encoding)
            aligned += vector is not None
            vectors.append(vector)
        if all(v is None for v in vectors):
            return None  # no embedding in the head's spaces: fall back to the vote
        dim = head.spaces[0][1]
        x, mask = concat_embeddings(vectors, dim)  # (1, A*d), (1, A)
        probs = head.probs(embeddings=x, mask=mask)
        used = sum(v is not None for v in vectors)
        note = f"{head.name} head over {used} embeddings" + (f" ({aligned} aligned)" if aligned else "")
        return AgentOutput(Decision.from_probs(probs), note=note)

    def _aligned(self, peer: Any, model_id: bytes, dim: int, head_encoding: Encoding) -> np.ndarray | None:
        """The peer's vector mapped into the head's space `model_id` through a registered alignment,
        then quantized as that space publishes (`head_encoding`: what the head saw in training);
        None (absent) when there is none or the vector does not fit the map."""
        if (self.alignments is None or peer is None or peer.vector is None or peer.model_id is None
                or peer.model_id == model_id):
            return None
        amap = self.alignments(bytes(peer.model_id), bytes(model_id))
        if amap is None:
            return None  # the resolver said why
        try:
            encoding = Encoding(peer.encoding)
        except ValueError:
            encoding = None
        if amap.out_dim != dim:
            reason = f"the map gives {amap.out_dim}-d vectors, the head takes {dim}"
        elif encoding is None or len(peer.vector) != encoding.byte_length(amap.in_dim):
            reason = f"the vector is not {amap.in_dim}-d in its encoding"
        else:
            x = decode_vector(peer.vector, encoding, amap.in_dim)
            y = amap.apply(x)
            if np.all(np.isfinite(y)):
                return decode_vector(encode_vector(y.astype(np.float32), head_encoding), head_encoding, dim)
            reason = "the mapped vector is not finite"
        key = (bytes(peer.model_id), bytes(model_id), reason)
        if key not in self._warned:
            self._warned.add(key)
            log.warning("embedding of model 0x%s not fused into the space of 0x%s: %s",
                        bytes(peer.model_id).hex()[:12], bytes(model_id).hex()[:12], reason)
        return None


def probability_scores(probs: Sequence[Sequence[int] | None]) -> tuple[np.ndarray, np.ndarray]:
    """The M-learned-p head's inputs from the peers' published probabilities in AGENT_ROLES order
    (basis points; None or all zeros: absent): ((1, A*3) float32, (1, A) mask), as
    `models.fusion.stack_probs` builds them in training."""
    from models.fusion import stack_probs

    rows = np.zeros((1, len(probs), len(Action)), np.float32)
    present = np.zeros((1, len(probs)), np.float32)
    for k, bps in enumerate(probs):
        if bps is not None and any(bps):
            rows[0, k] = np.asarray(bps, np.float32) / np.float32(MAX_CONFIDENCE)
            present[0, k] = 1.0
    return stack_probs(rows, present), present
