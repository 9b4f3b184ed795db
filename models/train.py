"""Training and evaluation of every architecture on the same splits, with the same tuning budget.

`evaluate_split` trains the per-modality agents once and builds every architecture from them:

| id        | trained on                                  | decision |
| Uni-best  | each agent alone                            | the agent with the best validation accuracy |
| M-fixed   | nothing beyond the agents                   | the chain's weighted vote (`models.fusion.m_fixed`) |
| M-rules   | rule thresholds picked on validation        | if/else on the agents' decisions |
| M-learned | a stacker on out-of-fold agent probabilities | stacker argmax |
| M-learned/dec | the same, on the published decisions only (action, confidence) | stacker argmax |
| M-regret  | Hedge learning rate picked on validation    | online Hedge-weighted vote over the stream |
| E-d       | a head on d-dim agent embeddings (dtype)    | frozen agents, or trained through the bottleneck |
| U         | cross-modal attention over modality tokens (one per headline), end to end | U argmax |

The tuning budget (`Budget`): every trainable architecture tries the first `trials` settings of
the same search list (`SEARCH`), each for at most `epochs` epochs with the same early stopping,
and keeps the best on validation; rule- and Hedge-based methods try as many settings of theirs.

`evaluate_all(dataset_cfg, seeds, budget)` repeats that over seeds and aggregates accuracy and
macro-F1 (mean and 95% interval) per architecture, with the oracle.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models import fusion
from node.protocol import codec
from node.protocol.enums import ARCH_NAMES, Action, Arch
from models.data.features import FEATURES_VERSION, FeatureSet, token_slots
from models.data.splits import DatasetConfig, Splits, config_to_dict, make_splits
from models.nets import (AgentNetConfig, AgentNet, EdHead, EdHeadConfig, EdJoint, EdJointConfig, Stacker,
                         StackerConfig, UConfig, UNet, build, kind_of)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Budget:
    """The tuning budget every architecture gets."""

    epochs: int = 30
    trials: int = 1
    """Hyperparameter settings tried per architecture (the first `trials` of SEARCH)."""
    batch_size: int = 128
    patience: int = 6
    folds: int = 3
    """Out-of-fold splits for stacking."""


QUICK = Budget()
FULL = Budget(epochs=80, trials=3, patience=12, folds=5)

SEARCH: tuple[dict, ...] = (
    dict(hidden=64, lr=3e-3, weight_decay=1e-4, dropout=0.1),
    dict(hidden=128, lr=1e-3, weight_decay=1e-3, dropout=0.2),
    dict(hidden=32, lr=5e-3, weight_decay=1e-4, dropout=0.0),
    dict(hidden=96, lr=2e-3, weight_decay=1e-2, dropout=0.1),
)
"""The shared search list: `hidden` is each model's width (MLP width, U's d_model)."""

DEFAULT_ED = ((16, "f32", "frozen"), (16, "f32", "through"))
"""E-d variants (d, dtype, mode) evaluated by default."""
AGENT_DIM = 16
"""Embedding width of the agents the M-* architectures use (and that are deployed)."""
AGENT_POOL = "mean"
"""How a slotted agent (the sentiment agent: one slot per headline) pools its present slots
(`AgentNetConfig.pool`), for every architecture that trains an agent encoder."""


@contextlib.contextmanager
def _torch_threads(threads: int = 1):
    # These models are tiny: a second intra-op thread buys nothing (measured equal on 2 cores) and
    # stalls in spin-waits whenever the other core is busy; one thread also fixes the numerics.
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# the training loop


@dataclass
class FitResult:
    model: nn.Module
    val_loss: float
    val_acc: float
    epochs: int
    hp: dict = field(default_factory=dict)


def _tensors(arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays]


def predict_logits(model: nn.Module, inputs: Sequence[np.ndarray], logits_fn: Callable, batch: int = 4096) -> np.ndarray:
    model.eval()
    xs = _tensors(inputs)
    out = []
    with torch.no_grad():
        for i in range(0, len(xs[0]), batch):
            out.append(logits_fn(model, *[x[i:i + batch] for x in xs]))
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def fit(model: nn.Module, train: Sequence[np.ndarray], y: np.ndarray, val: Sequence[np.ndarray], y_val: np.ndarray,
        hp: dict, budget: Budget, seed: int, logits_fn: Callable) -> FitResult:
    """AdamW on cross-entropy; keeps the weights of the epoch with the lowest validation loss."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xs, yt = _tensors(train), torch.from_numpy(np.asarray(y, dtype=np.int64))
    xv, yv = _tensors(val), torch.from_numpy(np.asarray(y_val, dtype=np.int64))
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    best_loss, best_acc, best_state, bad, epoch = math.inf, 0.0, copy.deepcopy(model.state_dict()), 0, 0
    for epoch in range(1, budget.epochs + 1):
        model.train()
        perm = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(perm), budget.batch_size):
            idx = perm[i:i + budget.batch_size]
            loss = F.cross_entropy(logits_fn(model, *[x[idx] for x in xs]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = logits_fn(model, *xv)
            vloss = float(F.cross_entropy(logits, yv))
            vacc = float((logits.argmax(1) == yv).float().mean())
        if vloss < best_loss - 1e-4:
            best_loss, best_acc, best_state, bad = vloss, vacc, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= budget.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, best_loss, best_acc, epoch, hp)


def tuning_of(result: FitResult, budget: Budget) -> dict:
    """What the report lists for a trained model: the setting validation chose among the
    `budget.trials` tried, the epochs it trained for before early stopping ended it (its weights are
    those of its best validation loss), and its validation accuracy."""
    return {"hp": dict(result.hp), "epochs": int(result.epochs), "val_acc": float(result.val_acc),
            "settings_tried": int(budget.trials), "max_epochs": int(budget.epochs)}


def _best_of(trials: list[FitResult]) -> FitResult:
    return max(trials, key=lambda r: (r.val_acc, -r.val_loss))


def _agent_logits(m: AgentNet, x: torch.Tensor) -> torch.Tensor:
    return m(x)[1]


def _call_logits(m: nn.Module, *xs: torch.Tensor) -> torch.Tensor:
    out = m(*xs)
    return out[1] if isinstance(out, tuple) else out


# --------------------------------------------------------------------------------------------
# per-architecture trainers


def train_agent(train: FeatureSet, val: FeatureSet, k: int, budget: Budget, seed: int, embed_dim: int = AGENT_DIM,
                hps: Sequence[dict] | None = None) -> FitResult:
    """One modality's agent, on the rows where that modality is present."""
    tr, va = train.mask[:, k] > 0, val.mask[:, k] > 0
    x, xv = train.x[train.names[k]][tr], val.x[val.names[k]][va]
    results = []
    for t, hp in enumerate(hps or SEARCH[:budget.trials]):
        cfg = AgentNetConfig(in_dim=x.shape[1], embed_dim=embed_dim, hidden=hp["hidden"], dropout=hp["dropout"],
                             n_classes=train.n_classes, slots=token_slots(train.names)[k], pool=AGENT_POOL)
        torch.manual_seed(seed + 101 * t)  # initial weights, too, follow the seed
        model = AgentNet(cfg)
        model.fit_norm(torch.from_numpy(x))
        results.append(fit(model, [x], train.y[tr], [xv], val.y[va], hp, budget, seed + 101 * t, _agent_logits))
    return _best_of(results)


@dataclass
class AgentOutputs:
    probs: np.ndarray  # (N, A, C), zeros where absent
    emb: np.ndarray  # (N, A, d), zeros where absent
    mask: np.ndarray  # (N, A)

    @property
    def decisions(self) -> tuple[np.ndarray, np.ndarray]:
        return fusion.decision(self.probs)  # (N, A) actions, (N, A) confidences in bps


def agent_outputs(agents: Sequence[AgentNet], fs: FeatureSet) -> AgentOutputs:
    n, a = len(fs), len(agents)
    probs = np.zeros((n, a, fs.n_classes), np.float32)
    emb = np.zeros((n, a, agents[0].cfg.embed_dim), np.float32)
    for k, agent in enumerate(agents):
        rows = fs.mask[:, k] > 0
        if rows.any():
            e = predict_logits(agent, [fs.x[fs.names[k]][rows]], lambda m, x: m.embed(x))
            logits = predict_logits(agent, [fs.x[fs.names[k]][rows]], _agent_logits)
            probs[rows, k] = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
            emb[rows, k] = e
    return AgentOutputs(probs, emb, fs.mask.copy())


def oof_outputs(train: FeatureSet, val: FeatureSet, agent_hps: Sequence[dict], budget: Budget, seed: int,
                progress: Progress | None = None) -> AgentOutputs:
    """Out-of-fold agent outputs on the training rows: each row scored by agents that never saw it."""
    rng = np.random.default_rng(seed + 7)
    fold = rng.permutation(len(train)) % budget.folds
    out = AgentOutputs(np.zeros((len(train), len(train.names), train.n_classes), np.float32),
                       np.zeros((len(train), len(train.names), AGENT_DIM), np.float32), train.mask.copy())
    for f in range(budget.folds):
        fit_rows, held = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        sub = train.subset(fit_rows)
        agents = []
        for k in range(len(train.names)):
            agents.append(train_agent(sub, val, k, budget, seed + 1000 * (f + 1), hps=[agent_hps[k]]).model)
            if progress:
                progress(f"out-of-fold agent {train.names[k]} fold {f + 1}/{budget.folds}")
        part = agent_outputs(agents, train.subset(held))
        out.probs[held], out.emb[held] = part.probs, part.emb
    return out


def stack_scores(outs: AgentOutputs, kind: str = "probs") -> np.ndarray:
    """The M-learned input (N, A*C): the agents' probabilities, or their published decisions only."""
    if kind == "probs":
        return fusion.stack_probs(outs.probs, outs.mask)
    actions, confs = outs.decisions
    return fusion.decision_scores(actions, confs, outs.mask, outs.probs.shape[2])


def train_stacker(oof: AgentOutputs, y: np.ndarray, val_out: AgentOutputs, y_val: np.ndarray, budget: Budget,
                  seed: int, kind: str = "probs") -> FitResult:
    a, c = oof.probs.shape[1], oof.probs.shape[2]
    x, xv = [stack_scores(oof, kind), oof.mask], [stack_scores(val_out, kind), val_out.mask]
    results = []
    for t, hp in enumerate(SEARCH[:budget.trials]):
        torch.manual_seed(seed + 101 * t)
        model = Stacker(StackerConfig(n_agents=a, n_classes=c, hidden=hp["hidden"], dropout=hp["dropout"],
                                      scores=kind))
        results.append(fit(model, x, y, xv, y_val, hp, budget, seed + 101 * t, _call_logits))
    return _best_of(results)


def ed_inputs(outs: AgentOutputs, dtype: str) -> list[np.ndarray]:
    """The E-d head's inputs: dequantised embeddings as published (zeros for absent) and the mask."""
    e = codec.dequantize(codec.quantize(outs.emb, dtype), dtype) * outs.mask[:, :, None]
    return [e.reshape(len(e), -1).astype(np.float32), outs.mask]


def train_ed_head(train_out: AgentOutputs, y: np.ndarray, val_out: AgentOutputs, y_val: np.ndarray, dtype: str,
                  budget: Budget, seed: int) -> FitResult:
    a, d, c = train_out.emb.shape[1], train_out.emb.shape[2], train_out.probs.shape[2]
    results = []
    for t, hp in enumerate(SEARCH[:budget.trials]):
        torch.manual_seed(seed + 101 * t)
        model = EdHead(EdHeadConfig(n_agents=a, embed_dim=d, dtype=dtype, hidden=hp["hidden"],
                                    dropout=hp["dropout"], n_classes=c))
        results.append(fit(model, ed_inputs(train_out, dtype), y, ed_inputs(val_out, dtype), y_val, hp, budget,
                           seed + 101 * t, _call_logits))
    return _best_of(results)


def _inputs(fs: FeatureSet) -> list[np.ndarray]:
    return [fs.x[k] for k in fs.names] + [fs.mask]


def _present_rows(fs: FeatureSet) -> list[torch.Tensor]:
    """Each modality's feature rows where it is present, in `fs.names` order (what its norm is fitted on)."""
    return [torch.from_numpy(fs.x[name][fs.mask[:, k] > 0]) for k, name in enumerate(fs.names)]


def _fit_agent_norms(agents: Sequence[AgentNet], fs: FeatureSet) -> None:
    for agent, rows in zip(agents, _present_rows(fs)):
        agent.fit_norm(rows)


def train_ed_joint(train: FeatureSet, val: FeatureSet, d: int, dtype: str, budget: Budget, seed: int) -> FitResult:
    results = []
    for t, hp in enumerate(SEARCH[:budget.trials]):
        agents = [AgentNetConfig(in_dim=dim, embed_dim=d, hidden=hp["hidden"], dropout=hp["dropout"],
                                 n_classes=train.n_classes, slots=slots, pool=AGENT_POOL)
                  for dim, slots in zip(train.dims, token_slots(train.names))]
        head = EdHeadConfig(n_agents=len(agents), embed_dim=d, dtype=dtype, hidden=hp["hidden"],
                            dropout=hp["dropout"], n_classes=train.n_classes)
        torch.manual_seed(seed + 101 * t)
        model = EdJoint(EdJointConfig(agents, head))
        _fit_agent_norms(model.agents, train)
        results.append(fit(model, _inputs(train), train.y, _inputs(val), val.y, hp, budget, seed + 101 * t,
                           _call_logits))
    return _best_of(results)


def through_agents(joint: EdJoint, train: FeatureSet, val: FeatureSet, hp: dict, budget: Budget,
                   seed: int) -> list[AgentNet]:
    """E-through's deployable agents: copies of the encoders of an E-d trained through the
    bottleneck (`train_ed_joint`, `hp` its chosen setting), each given a decision head of its own. Joint training never
    trains an agent's own head (only its embedding reaches the E-d head), so the encoder is frozen
    and the head alone is fitted on the agent's modality, with the joint model's setting: its
    published embedding stays exactly the one the E-d head was trained on."""
    agents = []
    for k, enc in enumerate(joint.agents):
        agent = copy.deepcopy(enc)
        for p in agent.parameters():
            p.requires_grad_(False)
        for p in agent.head.parameters():
            p.requires_grad_(True)
        tr, va = train.mask[:, k] > 0, val.mask[:, k] > 0
        x, xv = train.x[train.names[k]][tr], val.x[val.names[k]][va]
        fitted = fit(agent, [x], train.y[tr], [xv], val.y[va], hp, budget, seed + 11 * k, _agent_logits).model
        for p in fitted.parameters():
            p.requires_grad_(True)
        agents.append(fitted)
    return agents


def heads_for(width: int, default: int = UConfig.n_heads) -> int:
    """The largest attention head count <= `default` that divides `width` (heads split d_model)."""
    return max(h for h in range(1, max(1, min(default, width)) + 1) if width % h == 0)


def train_u(train: FeatureSet, val: FeatureSet, budget: Budget, seed: int, mixer: str = "attention",
            width: int | None = None) -> FitResult:
    """U (`mixer="attention"`), or U-concat (`"concat"`: the same tokens, no attention).

    `width` fixes U's shared width (d_model, the tokens' and the residual stream's width) for every
    setting tried, with `heads_for(width)` heads; the settings then differ in lr, weight decay and
    dropout only. None (the default): d_model is each setting's `hidden`, as for every other model."""
    results = []
    for t, hp in enumerate(SEARCH[:budget.trials]):
        torch.manual_seed(seed + 101 * t)
        d_model = hp["hidden"] if width is None else int(width)
        model = UNet(UConfig(in_dims=train.dims, d_model=d_model, n_heads=heads_for(d_model), dropout=hp["dropout"],
                             n_classes=train.n_classes, mixer=mixer, token_slots=token_slots(train.names)))
        model.fit_norms(_present_rows(train))
        results.append(fit(model, _inputs(train), train.y, _inputs(val), val.y, hp, budget, seed + 101 * t,
                           _call_logits))
    return _best_of(results)


# --------------------------------------------------------------------------------------------
# evaluation


ARCH_ORDER = (*(ARCH_NAMES[a] for a in (Arch.UNI_BEST, Arch.M_RULES, Arch.M_FIXED, Arch.M_LEARNED)), "M-learned/dec",
              *(ARCH_NAMES[a] for a in (Arch.M_REGRET, Arch.E_D, Arch.U)))
"""Row order of reports; E-d rows are named `E-<d>/<dtype>/<mode>`."""


def metrics(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    from sklearn.metrics import f1_score

    return {"accuracy": float(np.mean(pred == y)),
            "macro_f1": float(f1_score(y, pred, average="macro", labels=list(range(n_classes)), zero_division=0))}


def ed_name(d: int, dtype: str, mode: str) -> str:
    return f"E-{d}/{dtype}/{mode}"


def steps_per_split(n_agents: int, budget: Budget, ed_variants: Sequence[tuple[int, str, str]] = DEFAULT_ED) -> int:
    """How many progress steps one `evaluate_split` reports (for progress bars)."""
    extra_dims = {d for d, _, mode in ed_variants if mode == "frozen" and d != AGENT_DIM}
    return n_agents * (1 + budget.folds + len(extra_dims)) + 1 + len(ed_variants) + 1


@dataclass
class SplitResult:
    scores: dict[str, dict[str, float]]
    """Architecture -> {accuracy, macro_f1} on the test split (plus 'Oracle' when known)."""
    models: dict[str, nn.Module]
    """Trained modules by deployable name: market/sentiment/risk (or region names), m-learned, e-d<d>, u."""
    detail: dict = field(default_factory=dict)


def _m_regret(oof: AgentOutputs, out_va: AgentOutputs, out_te: AgentOutputs, ys: tuple[np.ndarray, ...],
              budget: Budget, n_classes: int) -> tuple[np.ndarray, list[float]]:
    """Hedge over the stream of published decisions; returns test predictions and final weights."""
    parts = [o.decisions for o in (oof, out_va, out_te)]
    acts = np.concatenate([a for a, _ in parts])
    confs = np.concatenate([c for _, c in parts])
    mask = np.concatenate([o.mask for o in (oof, out_va, out_te)])
    y = np.concatenate(ys)
    n_tr, n_tv = len(ys[0]), len(ys[0]) + len(ys[1])
    etas = fusion.HEDGE_ETAS[:budget.trials]
    val_acc = []
    for eta in etas:
        p = fusion.Hedge(acts.shape[1], eta).run(acts[:n_tv], confs[:n_tv], mask[:n_tv], y[:n_tv], n_classes)
        val_acc.append(np.mean(p[n_tr:] == ys[1]))
    hedge = fusion.Hedge(acts.shape[1], etas[int(np.argmax(val_acc))])
    pred = hedge.run(acts, confs, mask, y, n_classes)[n_tv:]
    return pred, hedge.weights.round(3).tolist()


def evaluate_split(splits: Splits, budget: Budget, seed: int, ed_variants: Sequence[tuple[int, str, str]] = DEFAULT_ED,
                   progress: Progress | None = None) -> SplitResult:
    """Train every architecture on one split and score it on the test set (one torch thread)."""
    with _torch_threads(1):
        return _evaluate_split(splits, budget, seed, ed_variants, progress)


def _evaluate_split(splits: Splits, budget: Budget, seed: int, ed_variants: Sequence[tuple[int, str, str]],
                    progress: Progress | None) -> SplitResult:
    tr, va, te = splits.train, splits.val, splits.test
    c = tr.n_classes
    step = progress or (lambda _msg: None)
    scores: dict[str, dict[str, float]] = {}
    detail: dict = {}

    fits = []
    for k, name in enumerate(tr.names):
        fits.append(train_agent(tr, va, k, budget, seed + 11 * k))
        step(f"agent {name}")
    agents = [f.model for f in fits]
    detail["tuning"] = {name: tuning_of(f, budget) for name, f in zip(tr.names, fits)}
    out_tr, out_va, out_te = (agent_outputs(agents, fs) for fs in (tr, va, te))
    (act_va, conf_va), (act_te, conf_te) = out_va.decisions, out_te.decisions

    # Uni-best: the single agent with the best validation accuracy (absent modality -> hold / class 0).
    fallback = int(Action.HOLD) if c == len(Action) else 0
    uni_val = [np.mean(np.where(va.mask[:, k] > 0, act_va[:, k], fallback) == va.y) for k in range(len(agents))]
    best = int(np.argmax(uni_val))
    scores["Uni-best"] = metrics(te.y, np.where(te.mask[:, best] > 0, act_te[:, best], fallback), c)
    detail["uni_best_agent"] = tr.names[best]
    for k, name in enumerate(tr.names):
        detail[f"agent_{name}_test_acc"] = metrics(te.y, np.where(te.mask[:, k] > 0, act_te[:, k], fallback), c)["accuracy"]

    # M-fixed: the chain's rule, bit for bit.
    scores["M-fixed"] = metrics(te.y, fusion.m_fixed(act_te, conf_te, te.mask, splits.weights_bps, c), c)

    # M-rules: if/else rules; thresholds from the first `trials` grid entries, picked on validation.
    if splits.roles:
        grid = fusion.RULE_GRID[:budget.trials]
        val_acc = [np.mean(fusion.m_rules(act_va, conf_va, va.mask, p) == va.y) for p in grid]
        params = grid[int(np.argmax(val_acc))]
        scores["M-rules"] = metrics(te.y, fusion.m_rules(act_te, conf_te, te.mask, params), c)
    else:
        scores["M-rules"] = metrics(te.y, fusion.majority_rule(act_te, conf_te, te.mask, c), c)

    # M-learned: a stacker on out-of-fold agent probabilities; M-learned/dec: on their decisions only.
    oof = oof_outputs(tr, va, [f.hp for f in fits], budget, seed, progress)
    models: dict[str, nn.Module] = {name: a for name, a in zip(tr.names, agents)}
    for kind, arch, name in (("probs", "M-learned", "m-learned"), ("decisions", "M-learned/dec", "m-learned-dec")):
        stacker = train_stacker(oof, tr.y, out_va, va.y, budget, seed + 17, kind)
        pred = predict_logits(stacker.model, [stack_scores(out_te, kind), out_te.mask], _call_logits).argmax(1)
        scores[arch] = metrics(te.y, pred, c)
        models[name] = stacker.model
        detail["tuning"][name] = tuning_of(stacker, budget)
    step("m-learned stackers")

    # M-regret: Hedge along the stream train (out-of-fold) -> val -> test; eta picked on the val part.
    pred, detail["hedge_weights"] = _m_regret(oof, out_va, out_te, (tr.y, va.y, te.y), budget, c)
    scores["M-regret"] = metrics(te.y, pred, c)

    # E-d: heads on published embeddings (frozen agents), or trained through the bottleneck.
    frozen_outs: dict[int, tuple[AgentOutputs, AgentOutputs, AgentOutputs]] = {AGENT_DIM: (out_tr, out_va, out_te)}
    for d, dtype, mode in ed_variants:
        if mode == "frozen":
            if d not in frozen_outs:
                ag = []
                for k, name in enumerate(tr.names):
                    ag.append(train_agent(tr, va, k, budget, seed + 11 * k, embed_dim=d).model)
                    step(f"agent {name} (d={d})")
                frozen_outs[d] = tuple(agent_outputs(ag, fs) for fs in (tr, va, te))
            o_tr, o_va, o_te = frozen_outs[d]
            head = train_ed_head(o_tr, tr.y, o_va, va.y, dtype, budget, seed + 19)
            pred = predict_logits(head.model, ed_inputs(o_te, dtype), _call_logits).argmax(1)
            if d == AGENT_DIM and f"e-d{d}" not in models:
                models[f"e-d{d}"] = head.model
                detail["tuning"][f"e-d{d}"] = tuning_of(head, budget)
                detail[f"e-d{d}"] = ed_name(d, dtype, mode)
        elif mode == "through":
            joint = train_ed_joint(tr, va, d, dtype, budget, seed + 23)
            pred = predict_logits(joint.model, _inputs(te), _call_logits).argmax(1)
        else:
            raise ValueError(f"E-d mode must be frozen or through, got {mode!r}")
        step(f"E-{d} {dtype} {mode}")
        scores[ed_name(d, dtype, mode)] = metrics(te.y, pred, c)

    # U: cross-modal attention, end to end.
    u = train_u(tr, va, budget, seed + 29)
    step("U")
    models["u"] = u.model
    detail["tuning"]["u"] = tuning_of(u, budget)
    scores["U"] = metrics(te.y, predict_logits(u.model, _inputs(te), _call_logits).argmax(1), c)

    if te.oracle is not None:
        scores["Oracle"] = metrics(te.y, te.oracle, c)
    return SplitResult(scores, models, detail)


def _interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for a single seed)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), 0.0
    from scipy.stats import t

    return float(v.mean()), float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def evaluate_all(dataset_cfg: DatasetConfig, seeds: Sequence[int], budget: Budget = QUICK,
                 ed_variants: Sequence[tuple[int, str, str]] = DEFAULT_ED, embedder=None,
                 progress: Progress | None = None) -> dict:
    """Accuracy and macro-F1 per architecture (+ oracle) over seeds on one dataset config.

    Returns {"dataset": cfg dict, "budget": ..., "seeds": [...], "per_seed": {arch: [{accuracy,
    macro_f1}, ...]}, "summary": {arch: {accuracy, accuracy_ci, macro_f1, macro_f1_ci}}, "detail": [...]}.
    """
    per_seed: dict[str, list[dict[str, float]]] = {}
    details = []
    for seed in seeds:
        splits = make_splits(dataset_cfg, seed, embedder)
        res = evaluate_split(splits, budget, seed, ed_variants, progress)
        for arch, s in res.scores.items():
            per_seed.setdefault(arch, []).append(s)
        details.append(res.detail)
    summary = {}
    for arch, rows in per_seed.items():
        acc, acc_ci = _interval([r["accuracy"] for r in rows])
        f1, f1_ci = _interval([r["macro_f1"] for r in rows])
        summary[arch] = {"accuracy": acc, "accuracy_ci": acc_ci, "macro_f1": f1, "macro_f1_ci": f1_ci}
    return {"dataset": config_to_dict(dataset_cfg), "budget": asdict(budget), "seeds": list(seeds),
            "per_seed": per_seed, "summary": summary, "detail": details}


TRAINING_STEPS = {"agents": ("agent ", "out-of-fold agent "), "stackers": ("m-learned",), "e-d": ("E-",), "u": ("U",)}
"""What `learning_curves` times, by the prefix of `evaluate_split`'s progress steps: the agents
(out-of-fold copies included), the M-learned stackers, the E-d heads, U."""


def learning_curves(sizes: Sequence[int], alphas: Sequence[float], seeds: Sequence[int], budget: Budget = QUICK,
                    n_test: int = 2000, ed_variants: Sequence[tuple[int, str, str]] = ((AGENT_DIM, "f32", "frozen"),),
                    progress: Progress | None = None, **data_knobs) -> dict:
    """Accuracy against training tasks for every architecture (off chain: the chain adds nothing
    to a curve), with the CPU seconds training took, per (alpha, size) over `seeds`.

    CPU seconds are the process's (`time.process_time`, one torch thread) between `evaluate_split`'s
    progress steps, summed into TRAINING_STEPS groups: a modular architecture's training cost is
    its agents' plus its head's, U's is U's alone. `data_knobs` go to `SyntheticConfig` (e.g.
    latent_dim) and are returned as "data". Returns {"points": [{alpha, n_train, summary: {arch:
    {accuracy, accuracy_ci, macro_f1, macro_f1_ci}}, cpu_s: {group: mean over seeds}}], ...}.
    """
    import time

    from models.data.splits import SyntheticConfig

    points = []
    for alpha in alphas:
        for n in sizes:
            cfg = SyntheticConfig(alpha=float(alpha), n_train=int(n), n_test=int(n_test), **data_knobs)
            per_seed: dict[str, list[dict[str, float]]] = {}
            cpu: dict[str, list[float]] = {g: [] for g in TRAINING_STEPS}
            for seed in seeds:
                splits = make_splits(cfg, seed)
                spent = dict.fromkeys(TRAINING_STEPS, 0.0)
                last = [time.process_time()]

                def step(name: str) -> None:
                    now = time.process_time()
                    group = next((g for g, prefixes in TRAINING_STEPS.items() if name.startswith(prefixes)), None)
                    if group is not None:
                        spent[group] += now - last[0]
                    last[0] = now
                    if progress is not None:
                        progress(f"alpha {alpha:g}, {n} tasks, seed {seed}: {name}")

                res = evaluate_split(splits, budget, seed, ed_variants, step)
                for arch, score in res.scores.items():
                    per_seed.setdefault(arch, []).append(score)
                for g in TRAINING_STEPS:
                    cpu[g].append(spent[g])
            summary = {}
            for arch, rows in per_seed.items():
                acc, acc_ci = _interval([r["accuracy"] for r in rows])
                f1, f1_ci = _interval([r["macro_f1"] for r in rows])
                summary[arch] = {"accuracy": acc, "accuracy_ci": acc_ci, "macro_f1": f1, "macro_f1_ci": f1_ci}
            points.append({"alpha": float(alpha), "n_train": int(n), "summary": summary,
                           "cpu_s": {g: float(np.mean(v)) for g, v in cpu.items()}})
    return {"sizes": [int(n) for n in sizes], "alphas": [float(a) for a in alphas], "seeds": list(seeds),
            "n_test": int(n_test), "budget": asdict(budget), "data": dict(data_knobs), "points": points}


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def honesty_checks(results: dict[float, dict], late_fusion_gap: float = 0.02, synergy_margin: float = 0.10) -> list[Check]:
    """The three checks on `evaluate_all` results keyed by alpha:

    1. at alpha 0, M-learned and U are within `late_fusion_gap` accuracy (means over seeds);
    2. at alpha 1, U beats M-fixed by at least `synergy_margin`;
    3. no architecture beats the oracle on any seed's test set.
    """
    checks = []
    if 0.0 in results:
        s = results[0.0]["summary"]
        gap = s["U"]["accuracy"] - s["M-learned"]["accuracy"]
        checks.append(Check("alpha=0: |U - M-learned| <= %.0f pts" % (100 * late_fusion_gap), abs(gap) <= late_fusion_gap,
                            f"U {100 * s['U']['accuracy']:.1f}, M-learned {100 * s['M-learned']['accuracy']:.1f}, "
                            f"gap {100 * gap:+.1f} pts"))
    if 1.0 in results:
        s = results[1.0]["summary"]
        gap = s["U"]["accuracy"] - s["M-fixed"]["accuracy"]
        checks.append(Check("alpha=1: U - M-fixed >= %.0f pts" % (100 * synergy_margin), gap >= synergy_margin,
                            f"U {100 * s['U']['accuracy']:.1f}, M-fixed {100 * s['M-fixed']['accuracy']:.1f}, "
                            f"margin {100 * gap:+.1f} pts"))
    worst, where = -math.inf, ""
    for alpha, res in results.items():
        oracle = res["per_seed"].get("Oracle")
        if oracle is None:
            continue
        for arch, rows in res["per_seed"].items():
            if arch == "Oracle":
                continue
            for i, (r, o) in enumerate(zip(rows, oracle)):
                if r["accuracy"] - o["accuracy"] > worst:
                    worst, where = r["accuracy"] - o["accuracy"], f"{arch} at alpha={alpha:g} seed #{i}"
    if where:
        checks.append(Check("no model exceeds the oracle", worst <= 0,
                            f"closest: {where}, {100 * worst:+.1f} pts vs oracle"))
    return checks


# --------------------------------------------------------------------------------------------
# checkpoints


CHECKPOINT_DIR = Path(__file__).resolve().parent / "artifacts" / "checkpoints"


def save_checkpoint(path: Path, model: nn.Module, meta: dict | None = None) -> None:
    """Weights with the config that rebuilds the module (`load_checkpoint`) and free-form meta."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"kind": kind_of(model), "config": asdict(model.cfg), "state_dict": model.state_dict(),
                "meta": meta or {}}, path)


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    """Rebuild a module exactly from a checkpoint; returns (model in eval mode, meta)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build(ckpt["kind"], ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt["meta"]


def train_deployables(dataset_cfg: DatasetConfig, seed: int, budget: Budget = QUICK, out_dir: Path = CHECKPOINT_DIR,
                      ed_dtype: str = "f32", embedder=None, progress: Progress | None = None) -> SplitResult:
    """Train the models the agents and the coordinator run, save checkpoints and an eval batch.

    Writes `<name>.pt` for every modality agent, `m-learned`, `e-d16` and `u`, plus `eval.npz`
    (test-split inputs and labels, for export's parity and int8 accuracy checks).
    """
    splits = make_splits(dataset_cfg, seed, embedder)
    res = evaluate_split(splits, budget, seed, ((AGENT_DIM, ed_dtype, "frozen"),), progress)
    meta = {"dataset": config_to_dict(dataset_cfg), "seed": seed, "budget": asdict(budget),
            "names": list(splits.train.names), "test_scores": res.scores, "publish_dtype": ed_dtype,
            "features_version": FEATURES_VERSION}
    arch_of = {"m-learned": "M-learned", "m-learned-dec": "M-learned/dec", "u": "U",
               f"e-d{AGENT_DIM}": res.detail.get(f"e-d{AGENT_DIM}", "")}
    for name, model in res.models.items():
        acc = res.scores.get(arch_of.get(name, ""), {}).get("accuracy", res.detail.get(f"agent_{name}_test_acc"))
        save_checkpoint(out_dir / f"{name}.pt", model, {**meta, "name": name, "test_accuracy": acc})
    te = splits.test
    np.savez(out_dir / "eval.npz", names=np.array(te.names), mask=te.mask, y=te.y, n_classes=te.n_classes,
             **{f"x_{k}": te.x[k] for k in te.names})
    return res


def load_eval_batch(path: Path) -> FeatureSet:
    with np.load(path, allow_pickle=False) as z:
        names = tuple(str(n) for n in z["names"])
        return FeatureSet(names, {k: z[f"x_{k}"] for k in names}, z["mask"], z["y"], int(z["n_classes"]))


__all__ = ["Budget", "QUICK", "FULL", "SEARCH", "evaluate_all", "evaluate_split", "honesty_checks", "fit",
           "save_checkpoint", "load_checkpoint", "train_deployables"]
