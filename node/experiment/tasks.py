"""The task streams the experiment submits, with what stays off chain: labels, oracle, returns.

A stream is `n` tasks of one seed. For the synthetic market it is exactly the test split the
models of that seed are scored on off chain (`generate(n, seed, regime="test", ...)`, the call
`models.data.splits.make_splits` makes), so on-chain and off-chain figures are about the same
tasks. Perturbed streams (noise on one modality) keep the latent state, labels and oracle of the
clean stream: the generator draws observations and labels from separate seed streams.

Forward return. The generator labels a task by the tertile of a noisy latent score
`s + e` (sell below t_lo, buy above t_hi). We read that noisy score as the asset's next-period
return: `r = 0.01 * (s + e - (t_lo + t_hi) / 2) / sd(s + e)`, i.e. one standard deviation is a 1%
move and the hold band is centred on 0. It is rebuilt from the generator's seed streams and
checked against the labels; when the check fails (the generator changed), returns are None and
PnL is reported as unavailable rather than guessed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from node.protocol.enums import AGENT_ROLES

log = logging.getLogger(__name__)


@dataclass
class TaskStream:
    """`n` tasks: payload bytes for the chain, and labels / oracle / returns kept off chain."""

    payloads: list[bytes]
    labels: np.ndarray  # (n,) int: 0 sell, 1 hold, 2 buy
    oracle: np.ndarray | None  # (n,) int, the Bayes decision given the latent state
    returns: np.ndarray | None  # (n,) float, the next-period return (see module docstring)
    description: str = ""
    indices: np.ndarray | None = None
    """(n,) int: each task's position in the stream this one was drawn from (`subset`); None: its own."""
    dataset: Any = None
    """The generated `Dataset` a whole synthetic stream was encoded from (the ceilings read it);
    None for files and for a stream's head or subset."""

    def __len__(self) -> int:
        return len(self.payloads)

    def eval_index(self, i: int) -> int:
        """Task i's position in the stream it was drawn from (its own position for a whole stream)."""
        return int(self.indices[i]) if self.indices is not None else int(i)

    def head(self, n: int) -> TaskStream:
        """The first `n` tasks (sweeps reuse the start of the main stream: paired comparisons)."""
        cut = lambda a: None if a is None else a[:n]
        return TaskStream(self.payloads[:n], self.labels[:n], cut(self.oracle), cut(self.returns), self.description,
                          cut(self.indices))

    def subset(self, indices) -> TaskStream:
        """The tasks at `indices` of this stream, in that order, remembering where each came from
        (the chain sample of a large off-chain evaluation set)."""
        idx = np.asarray(indices, dtype=np.int64)
        pick = lambda a: None if a is None else a[idx]
        parent = idx if self.indices is None else self.indices[idx]
        return TaskStream([self.payloads[i] for i in idx], self.labels[idx], pick(self.oracle), pick(self.returns),
                          f"{self.description} sample={len(idx)}", parent)


def chain_sample(block_hash: str, n_eval: int, k: int) -> np.ndarray:
    """`k` distinct positions of an evaluation set of `n_eval` tasks, drawn by a generator seeded
    from `block_hash` (0x-hex), sorted: a block mined after the models were registered decides
    which tasks go through the chain, so no one could pick them knowing the models."""
    seed = int.from_bytes(bytes.fromhex(block_hash.removeprefix("0x"))[:16], "big")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_eval, size=min(k, n_eval), replace=False)).astype(np.int64)


def encode_sample(sample) -> bytes:
    """The canonical `chorus.task/1` bytes of a generated or loaded sample."""
    from models.data.synthetic import to_payload
    from node.protocol import payload as pl

    return pl.encode(pl.TaskPayload.model_validate(to_payload(sample)))


def forward_returns(ds, seed: int) -> np.ndarray | None:
    """The next-period return of every task of a generated test-regime dataset (module docstring)."""
    from models.data import synthetic as syn

    p = ds.params
    if ds.score is None or not p:
        return None
    n, alpha, label_noise = int(p["n"]), float(p["alpha"]), float(p["label_noise"])
    streams = np.random.SeedSequence([seed, ("train", "test").index(p["regime"])]).spawn(7)
    r_lab = np.random.default_rng(streams[1])
    sd = label_noise * syn._score_sd(alpha)
    noisy = ds.score + r_lab.standard_normal(n) * sd
    m = int(p.get("latent_dim", 1))  # latent_dim > 1: the generator's Monte Carlo tertiles
    lo, hi = (syn.label_thresholds(alpha, float(p["redundancy"]), label_noise) if m == 1 else
              syn.label_thresholds_dims(alpha, float(p["redundancy"]), label_noise, m))
    rebuilt = np.where(noisy < lo, 0, np.where(noisy > hi, 2, 1))
    if not np.array_equal(rebuilt, ds.label):
        log.warning("forward returns: the generator's labels could not be rebuilt; PnL is unavailable")
        return None
    scale = syn._score_sd(alpha) * math.sqrt(1 + label_noise**2)
    return 0.01 * (noisy - (lo + hi) / 2) / scale


def synthetic_stream(n: int, seed: int, alpha: float, noise: float | dict[str, float] = 1.0,
                     missing_rate: float = 0.0, redundancy: float = 0.0, shift: float = 0.0,
                     label_noise: float = 0.25, latent_dim: int = 1) -> TaskStream:
    """The seed's test tasks of the synthetic market (the off-chain test split of its models) at
    `latent_dim` (1: the original generator, called exactly as before)."""
    from models.data.synthetic import generate

    kw: dict[str, Any] = {} if latent_dim == 1 else {"latent_dim": int(latent_dim)}
    ds = generate(n, seed, alpha=alpha, noise=noise, missing_rate=missing_rate, redundancy=redundancy,
                  shift=shift, regime="test", label_noise=label_noise, **kw)
    payloads = [encode_sample(ds[i]) for i in range(len(ds))]
    what = (f"synthetic alpha={alpha:g} seed={seed} n={n}" + (f" noise={noise}" if noise != 1.0 else "")
            + (f" latent_dim={latent_dim}" if latent_dim != 1 else ""))
    return TaskStream(payloads, ds.label.copy(), ds.oracle.copy(), forward_returns(ds, seed), what, dataset=ds)


def file_test_rows(n_rows: int, seed: int, val_frac: float, test_frac: float) -> np.ndarray:
    """Row indices of the test split `models.data.splits` draws for a file under a seed."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n_rows)
    return idx[: round(test_frac * n_rows)]


def file_stream(path: Path, seed: int, n: int, val_frac: float = 0.15, test_frac: float = 0.3) -> TaskStream:
    """The first `n` test tasks of the user's own data (no oracle, no returns: the file has none)."""
    from models.data.loader import load_tasks

    ds = load_tasks(path)
    rows = file_test_rows(len(ds), seed, val_frac, test_frac)[:n]
    payloads = [encode_sample(ds[int(i)]) for i in rows]
    return TaskStream(payloads, ds.label[rows].copy(), None, None, f"{Path(path).name} seed={seed} n={len(rows)}")


def noise_on(modality: str, level: float) -> dict[str, float]:
    """Generator noise knobs with one modality at `level` and the others clean."""
    return {m: (level if m == modality else 1.0) for m in (r.label for r in AGENT_ROLES)}
