"""Torch definitions of every architecture Chorus compares. Training-time only (imports torch).

One config dataclass per model; checkpoints store `asdict(config)` beside the weights, and
`build(kind, config_dict)` rebuilds the exact module.

- `AgentNet`: one modality's encoder. features -> (embedding (B, d) in [-1, 1], logits (B, C)).
  The tanh bottleneck is what an agent publishes (quantised to f32/f16/i8/binary, `fake_quant`).
  A slotted input (the sentiment agent: one slot per headline) is read per slot as U reads it.
- `Stacker`: M-learned, late fusion of the agents' scores (+ presence mask).
- `EdHead`: E-d, a head on the concatenated (dequantised) agent embeddings (+ mask).
- `EdJoint`: E-d trained through the bottleneck: agent encoders + quantiser + head, end to end.
- `UNet`: U, one token per modality (or per slot: one per headline), cross-modal self-attention
  with a CLS token, end to end.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from node.protocol.codec import VECTOR_DTYPES


class Standardize(nn.Module):
    """(x - mean) / scale with buffers fitted on training data, so ONNX carries the normalisation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Fit on the rows of x (B, dim) where the modality is present."""
        if len(x) == 0:
            return
        self.mean.copy_(x.mean(dim=0))
        self.scale.copy_(x.std(dim=0).clamp_min(1e-3) if len(x) > 1 else torch.ones_like(self.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


def mlp(in_dim: int, hidden: int, out_dim: int, depth: int, dropout: float) -> nn.Sequential:
    """`depth` hidden layers of width `hidden` (GELU, dropout), then a linear map to `out_dim`."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout)]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def fake_quant(e: torch.Tensor, dtype: str) -> torch.Tensor:
    """Quantise-dequantise an embedding in [-1, 1] as it travels on chain; straight-through gradient.

    Matches `node.protocol.codec.quantize` + `dequantize` exactly (round half to even, scale 127, sign bit).
    """
    if dtype == "f32":
        return e
    if dtype == "f16":
        q = e.half().float()
    elif dtype == "i8":
        q = torch.round(e.clamp(-1, 1) * 127) / 127
    elif dtype == "binary":
        q = torch.where(e >= 0, torch.ones_like(e), -torch.ones_like(e))
    else:
        raise ValueError(f"dtype {dtype!r} not in {VECTOR_DTYPES}")
    return e + (q - e).detach()


def slot_rows(x: torch.Tensor, slots: int) -> torch.Tensor:
    """The rows a slotted input's Standardize is fitted on, from its present rows x (N, F): x
    itself for one slot, else every slot that is not all zeros (an absent headline), (n, F / slots).
    One Standardize over a slot's width, its statistics shared by the slots (the encoder reading
    them is shared, so a headline reaches it normalised the same way whichever slot it is in), and
    absent (zero) slots, frequent in the later slots, do not pull the statistics towards zero."""
    if slots == 1:
        return x
    rows = x.reshape(-1, x.shape[1] // slots)
    return rows[rows.abs().sum(dim=1) > 0]


def slot_presence(x: torch.Tensor) -> torch.Tensor:
    """x (B, S, w) -> (B, S): 1 where a slot is not all zeros, computed in the graph."""
    return (x.abs().sum(dim=2) > 0).to(x.dtype)


AGENT_POOLS = ("mean", "attention")


@dataclass
class AgentNetConfig:
    in_dim: int
    embed_dim: int = 16
    """d: width of the published embedding."""
    hidden: int = 64
    depth: int = 2
    dropout: float = 0.1
    n_classes: int = 3
    slots: int = 1
    """Into how many equal slots the input splits (`models.data.features.token_slots`: the
    sentiment input is one slot per headline); 1: one flat input, the agent as before slots."""
    pool: str = "mean"
    """How a slotted agent pools its present slots: "mean" (masked mean) or "attention" (masked
    softmax against a learned query). Unused when slots == 1."""

    def __post_init__(self) -> None:
        if self.slots < 1 or self.in_dim % self.slots:
            raise ValueError(f"AgentNet slots: an input of width {self.in_dim} splits into {self.slots} equal "
                             f"slots (slots >= 1 divides in_dim)")
        if self.pool not in AGENT_POOLS:
            raise ValueError(f"AgentNet pool must be one of {', '.join(AGENT_POOLS)}, got {self.pool!r}")


class AgentNet(nn.Module):
    """One modality's encoder: features (B, in_dim) -> (embedding (B, d), logits (B, C)).

    With `slots` > 1 the input is `slots` equal slots (one per headline) read as U reads its
    headline tokens: one Standardize shared by the slots (fitted on present slots, `fit_norm`), one
    slot encoder shared by the slots whose first layer adds a learned slot-position embedding (so
    slot j can be read its own way), then the present slots pooled (masked mean or masked
    attention) into the trunk. A slot is present iff it is not all zeros, computed in the graph;
    an absent slot has no influence.
    """

    def __init__(self, cfg: AgentNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.in_dim // cfg.slots
        self.norm = Standardize(w)
        self.body = mlp(w, cfg.hidden, cfg.hidden, cfg.depth - 1, cfg.dropout)
        if cfg.slots > 1:  # only then, so a config without slots rebuilds as before
            self.slot = nn.Parameter(torch.randn(cfg.slots, cfg.hidden) * 0.02)
            if cfg.pool == "attention":
                self.query = nn.Parameter(torch.randn(cfg.hidden) * 0.02)
        self.to_embed = nn.Linear(cfg.hidden, cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, cfg.n_classes)

    @torch.no_grad()
    def fit_norm(self, x: torch.Tensor) -> None:
        """Fit the Standardize on the agent's present rows x (N, in_dim) (per slot where slotted)."""
        self.norm.fit(slot_rows(x, self.cfg.slots))

    def _slots(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_dim) -> pooled hidden state (B, hidden) over the present slots."""
        s = self.cfg.slots
        x = x.reshape(x.shape[0], s, x.shape[1] // s)  # (B, S, w)
        p = slot_presence(x)  # (B, S)
        first, rest = self.body[0], self.body[1:]
        h = rest(first(self.norm(x)) + self.slot)  # (B, S, hidden); the position enters before the nonlinearity
        if self.cfg.pool == "attention":
            logits = (h * self.query).sum(dim=2) / math.sqrt(self.cfg.hidden) + (1.0 - p) * -1e4  # (B, S)
            weights = torch.softmax(logits, dim=1) * p  # exact zeros for absent slots
        else:
            weights = p
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-6)  # (B, S); no slot present: zeros
        return (h * weights[:, :, None]).sum(dim=1)  # (B, hidden)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self._slots(x) if self.cfg.slots > 1 else self.body(self.norm(x))  # (B, hidden); a static branch
        return torch.tanh(self.to_embed(F.gelu(h)))  # (B, d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.embed(x)  # (B, d)
        return e, self.head(e)  # (B, d), (B, C)


@dataclass
class StackerConfig:
    n_agents: int = 3
    n_classes: int = 3
    hidden: int = 32
    """0: multinomial logistic regression on the scores; >0: one hidden layer."""
    dropout: float = 0.0
    scores: str = "probs"
    """What each agent contributes: 'probs' (its class probabilities, `fusion.stack_probs`) or
    'decisions' (its published action and confidence only, `fusion.decision_scores`)."""


class Stacker(nn.Module):
    """scores (B, A*C) = each agent's class scores (zeros if absent), mask (B, A) -> logits (B, C)."""

    def __init__(self, cfg: StackerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        in_dim = 2 * cfg.n_agents * cfg.n_classes + cfg.n_agents
        self.net = mlp(in_dim, cfg.hidden, cfg.n_classes, 1 if cfg.hidden else 0, cfg.dropout)

    def forward(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        feats = torch.cat([scores, torch.log(scores.clamp_min(1e-4)), mask], dim=1)  # (B, 2AC + A)
        return self.net(feats)


@dataclass
class EdHeadConfig:
    n_agents: int = 3
    embed_dim: int = 16
    dtype: str = "f32"
    """Element type the embeddings travel in; the head is trained on dequantised inputs."""
    hidden: int = 64
    depth: int = 2
    dropout: float = 0.1
    n_classes: int = 3


class EdHead(nn.Module):
    """embeddings (B, A*d) (dequantised, zeros for absent agents), mask (B, A) -> logits (B, C)."""

    def __init__(self, cfg: EdHeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = mlp(cfg.n_agents * (cfg.embed_dim + 1), cfg.hidden, cfg.n_classes, cfg.depth, cfg.dropout)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([embeddings, mask], dim=1))


@dataclass
class EdJointConfig:
    agents: list[AgentNetConfig] = field(default_factory=list)
    head: EdHeadConfig = field(default_factory=EdHeadConfig)

    def __post_init__(self) -> None:  # rebuild nested configs from checkpoint dicts
        self.agents = [a if isinstance(a, AgentNetConfig) else AgentNetConfig(**a) for a in self.agents]
        if isinstance(self.head, dict):
            self.head = EdHeadConfig(**self.head)


class EdJoint(nn.Module):
    """E-d trained through the bottleneck: features of every modality + mask -> logits."""

    def __init__(self, cfg: EdJointConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.agents = nn.ModuleList(AgentNet(a) for a in cfg.agents)
        self.head = EdHead(cfg.head)

    def embeddings(self, *xs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        es = [fake_quant(a.embed(x), self.cfg.head.dtype) * mask[:, i:i + 1] for i, (a, x) in
              enumerate(zip(self.agents, xs))]
        return torch.cat(es, dim=1)  # (B, A*d)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *xs, mask = inputs
        return self.head(self.embeddings(*xs, mask=mask), mask)


MIXERS = ("attention", "concat")


@dataclass
class UConfig:
    in_dims: tuple[int, ...] = ()
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    ff_mult: int = 2
    dropout: float = 0.1
    embed_dim: int = 32
    """Width of U's published embedding (the pooled CLS state, projected)."""
    n_classes: int = 3
    mixer: str = "attention"
    """How the modality tokens meet: "attention" (U: cross-modal self-attention over the tokens and a
    CLS token) or "concat" (U-concat, the ablation without attention: the same tokens concatenated
    with the presence mask into an MLP, trained end to end the same way)."""
    token_slots: tuple[int, ...] = ()
    """Into how many equal tokens each input splits (`models.data.features.token_slots`: the
    sentiment input is one slot per headline); () or 1 for every input: one token per modality."""

    def __post_init__(self) -> None:
        self.in_dims = tuple(self.in_dims)
        self.token_slots = tuple(self.token_slots) or (1,) * len(self.in_dims)
        if self.mixer not in MIXERS:
            raise ValueError(f"U mixer must be one of {', '.join(MIXERS)}, got {self.mixer!r}")
        if len(self.token_slots) != len(self.in_dims):
            raise ValueError(f"U token_slots {self.token_slots} must give one count per input {self.in_dims}")
        bad = [(k, s) for k, s in zip(self.in_dims, self.token_slots) if s < 1 or k % s]
        if bad:
            raise ValueError(f"U token_slots: an input of width k splits into s equal tokens (s >= 1 divides k), "
                             f"got (k, s) = {bad}")

    @property
    def n_tokens(self) -> int:
        """Modality tokens (the CLS token not counted)."""
        return sum(self.token_slots)


class SelfAttention(nn.Module):
    """Multi-head self-attention over modality tokens; absent tokens are masked out as keys."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.scale = 1.0 / math.sqrt(d // n_heads)  # a Python float, so tracing keeps it a constant
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(x).split(d, dim=2)  # (B, L, d) each
        q = q.reshape(b, n, h, d // h).transpose(1, 2)  # (B, H, L, dh)
        k = k.reshape(b, n, h, d // h).transpose(1, 2)
        v = v.reshape(b, n, h, d // h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, L, L)
        att = att + key_bias[:, None, None, :]  # (B, 1, 1, L): 0 present, -1e4 absent
        att = self.drop(torch.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, n, d)  # (B, L, d)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, cfg: UConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.ff_mult * cfg.d_model), nn.GELU(),
                                nn.Linear(cfg.ff_mult * cfg.d_model, cfg.d_model), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), key_bias)
        return x + self.ff(self.ln2(x))


class UNet(nn.Module):
    """U: modality features + presence mask -> (embedding (B, e), logits (B, C)).

    Input k splits into `token_slots[k]` equal slots; each slot becomes a token through the
    modality's Standardize and tokenizer MLP (shared by its slots), plus the modality embedding and,
    where a modality has several slots, a learned slot-position embedding. A token is present iff
    its modality is present (mask) and, for a slotted modality, its slot is not all zeros (an absent
    headline), computed in the graph from the input; absent tokens are masked out as keys
    (attention) or zeroed with their presence beside them (concat).
    """

    def __init__(self, cfg: UConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        widths = [k // s for k, s in zip(cfg.in_dims, cfg.token_slots)]
        # One Standardize per modality over one slot's width, statistics shared by the slots and
        # fitted on the present slots (`fit_norms`, `slot_rows`).
        self.norms = nn.ModuleList(Standardize(w) for w in widths)
        self.tokenizers = nn.ModuleList(mlp(w, d, d, 1, cfg.dropout) for w in widths)
        self.modality = nn.Parameter(torch.randn(len(cfg.in_dims), d) * 0.02)
        if cfg.n_tokens > len(cfg.in_dims):  # only then, so a config of one token per modality rebuilds as before
            self.slot = nn.Parameter(torch.randn(cfg.n_tokens, d) * 0.02)
        if cfg.mixer == "attention":
            self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        else:  # concat: as many layers of the same width as the attention stack has blocks
            t = cfg.n_tokens
            self.mix = mlp(t * d + t, cfg.ff_mult * d, d, cfg.n_layers, cfg.dropout)
        self.ln_f = nn.LayerNorm(d)
        self.to_embed = nn.Linear(d, cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, cfg.n_classes)

    @torch.no_grad()
    def fit_norms(self, xs: list[torch.Tensor]) -> None:
        """Fit each modality's Standardize on its present rows xs[k] (N_k, F_k)."""
        for norm, slots, x in zip(self.norms, self.cfg.token_slots, xs):
            norm.fit(slot_rows(x, slots))

    def tokens(self, xs: list[torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (B, T, d), presence (B, T)); absent tokens are zeros plus their embeddings."""
        toks, present = [], []
        for i, (norm, tok, slots, x) in enumerate(zip(self.norms, self.tokenizers, self.cfg.token_slots, xs)):
            x = x.reshape(x.shape[0], slots, x.shape[1] // slots)  # (B, S, w)
            p = mask[:, i:i + 1]  # (B, 1)
            if slots > 1:  # a static branch (the config's), so tracing sees none
                p = p * slot_presence(x)  # (B, S): an all-zero slot is absent
            toks.append(tok(norm(x)) * p[:, :, None] + self.modality[i])  # (B, S, d)
            present.append(p)
        x = torch.cat(toks, dim=1)  # (B, T, d)
        if hasattr(self, "slot"):
            x = x + self.slot
        return x, torch.cat(present, dim=1)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        *xs, mask = inputs  # xs: (B, F_k) each; mask: (B, M)
        b = mask.shape[0]
        x, present = self.tokens(xs, mask)  # (B, T, d), (B, T)
        if self.cfg.mixer == "concat":
            h = self.mix(torch.cat([(x * present[:, :, None]).reshape(b, -1), present], dim=1))  # (B, d)
            e = torch.tanh(self.to_embed(self.ln_f(h)))
            return e, self.head(e)
        x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1)  # (B, 1+T, d)
        key_bias = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)
        key_bias = (1.0 - key_bias) * -1e4  # (B, 1+T)
        for blk in self.blocks:
            x = blk(x, key_bias)
        e = torch.tanh(self.to_embed(self.ln_f(x[:, 0])))  # (B, e)
        return e, self.head(e)


_KINDS = {
    "agent": (AgentNet, AgentNetConfig),
    "stacker": (Stacker, StackerConfig),
    "ed-head": (EdHead, EdHeadConfig),
    "ed-joint": (EdJoint, EdJointConfig),
    "u": (UNet, UConfig),
}


def build(kind: str, config: dict) -> nn.Module:
    """Rebuild a module from its kind and `asdict(config)`."""
    if kind not in _KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(_KINDS)}")
    cls, cfg_cls = _KINDS[kind]
    return cls(cfg_cls(**config))


def kind_of(model: nn.Module) -> str:
    for kind, (cls, _) in _KINDS.items():
        if type(model) is cls:
            return kind
    raise ValueError(f"not a Chorus model: {type(model).__name__}")


def config_of(model: nn.Module) -> dict:
    return asdict(model.cfg)
