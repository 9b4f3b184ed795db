"""Load the user's own tasks from CSV or Parquet so the same suite runs on them.

Columns (one row per task; extra columns are ignored):

| column      | type                                   | notes |
| asset       | string                                 | non-empty |
| prices      | list of numbers > 0                    | >= 8 values, the same length in every row; [] = market absent |
| volumes     | list of numbers >= 0                   | same length as prices |
| headlines   | list of strings                        | [] = sentiment absent; at most 3 (`HEADLINE_SLOTS`) |
| flows       | list of 8 numbers >= 0                 | order `FLOW_NAMES`; [] = risk absent. Or 8 columns named as FLOW_NAMES |
| label       | sell / hold / buy, or 0 / 1 / 2        | |
| risk_flag   | 0 / 1                                  | optional, default 0 |

In CSV, list cells are JSON arrays (`[101.5, 102.0]`, `["ETF approved", "Fees fall"]`); in Parquet
they may be list columns or the same JSON strings. Every row needs at least one modality present.

Bad input raises `DataError` naming the problem; row problems are all collected and reported with
their row numbers (data rows counted from 1; in a CSV file, row r is on line r + 1).
`save_tasks` writes a Dataset in this format (the generator's output is a valid input).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from models.data.features import HEADLINE_SLOTS
from models.data.synthetic import ACTIONS, FLOW_NAMES, Dataset
from node.protocol.errors import ChorusError

REQUIRED = ("asset", "prices", "volumes", "headlines", "label")
MIN_SERIES = 8
MAX_REPORTED = 20


class DataError(ChorusError, ValueError):
    """A data file is unreadable, lacks columns, or has bad rows (the message lists them)."""


def _read(path: Path):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types; report them as one
        raise DataError(f"{path}: cannot read: {exc}") from exc
    raise DataError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _as_list(v: Any, col: str) -> list:
    if _is_missing(v):
        raise ValueError(f"{col} is missing (use [] for an absent modality)")
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            raise ValueError(f"{col}: expected a JSON list, got {v[:40]!r}") from None
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"{col}: expected a list, got {type(v).__name__}")
    return list(v)


def _numbers(v: Any, col: str, *, positive: bool = False) -> list[float]:
    items = _as_list(v, col)
    out = []
    for x in items:
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
            raise ValueError(f"{col}: expected numbers, got {x!r}")
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"{col} contains NaN or infinity")
        if x < 0 or (positive and x == 0):
            raise ValueError(f"{col} must be {'> 0' if positive else '>= 0'}, got {x}")
        out.append(x)
    return out


def _label(v: Any) -> int:
    if _is_missing(v):
        raise ValueError("label is missing")
    s = str(v).strip().lower()
    if s in ACTIONS:
        return ACTIONS.index(s)
    try:
        f = float(s)
    except ValueError:
        f = math.nan
    if f in (0.0, 1.0, 2.0):
        return int(f)
    raise ValueError(f"label {v!r} is not one of sell/hold/buy or 0/1/2")


def _flag(v: Any) -> int:
    if _is_missing(v):
        return 0
    s = str(v).strip().lower()
    if s in ("0", "1", "0.0", "1.0", "true", "false"):
        return int(s in ("1", "1.0", "true"))
    raise ValueError(f"risk_flag {v!r} is not 0 or 1")


def load_tasks(path: str | Path) -> Dataset:
    """Tasks from a CSV or Parquet file as a Dataset (no latent state, no oracle)."""
    path = Path(path)
    df = _read(path)
    cols = set(df.columns)
    flow_cols = all(n in cols for n in FLOW_NAMES)
    missing = [c for c in REQUIRED if c not in cols]
    if "flows" not in cols and not flow_cols:
        missing.append("flows (or the 8 columns " + ", ".join(FLOW_NAMES) + ")")
    if missing:
        raise DataError(f"{path}: missing column(s): {', '.join(missing)}")
    if len(df) == 0:
        raise DataError(f"{path}: no rows")

    rows, errors = [], []
    series_len: int | None = None
    for i, rec in enumerate(df.to_dict("records"), start=1):
        try:
            asset = rec["asset"]
            if _is_missing(asset) or not isinstance(asset, str):
                raise ValueError("asset must be a non-empty string")
            prices = _numbers(rec["prices"], "prices", positive=True)
            volumes = _numbers(rec["volumes"], "volumes")
            if len(prices) != len(volumes):
                raise ValueError(f"prices has {len(prices)} values but volumes has {len(volumes)}")
            if prices:
                if len(prices) < MIN_SERIES:
                    raise ValueError(f"prices needs at least {MIN_SERIES} values, got {len(prices)}")
                if series_len is None:
                    series_len = len(prices)
                elif len(prices) != series_len:
                    raise ValueError(f"prices has {len(prices)} values; earlier rows have {series_len}")
            headlines = _as_list(rec["headlines"], "headlines")
            if not all(isinstance(h, str) and h.strip() for h in headlines):
                raise ValueError("headlines must be non-empty strings")
            if len(headlines) > HEADLINE_SLOTS:
                raise ValueError(f"headlines has {len(headlines)} entries; a task has at most {HEADLINE_SLOTS} "
                                 "(one slot each in the sentiment feature, models.data.features)")
            if flow_cols and "flows" not in cols:
                flows = _numbers([rec[n] if not isinstance(rec[n], str) else _num(rec[n], n) for n in FLOW_NAMES], "flows")
            else:
                flows = _numbers(rec["flows"], "flows")
            if flows and len(flows) != len(FLOW_NAMES):
                raise ValueError(f"flows needs {len(FLOW_NAMES)} values ({', '.join(FLOW_NAMES)}), got {len(flows)}")
            if not (prices or headlines or flows):
                raise ValueError("every modality is empty")
            rows.append((asset, prices, volumes, [str(h) for h in headlines], flows, _label(rec["label"]),
                         _flag(rec.get("risk_flag"))))
        except ValueError as exc:
            errors.append(f"row {i}: {exc}")
    if errors:
        more = f"\n  ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        raise DataError(f"{path}: {len(errors)} bad row(s):\n  " + "\n  ".join(errors[:MAX_REPORTED]) + more)
    return _to_dataset(rows, series_len or MIN_SERIES, str(path))


def _num(s: str, col: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"{col}: expected a number, got {s!r}") from None


def _to_dataset(rows: list[tuple], t: int, source: str) -> Dataset:
    n = len(rows)
    prices = np.full((n, t), np.nan)
    volumes = np.full((n, t), np.nan)
    flows = np.full((n, len(FLOW_NAMES)), np.nan)
    mask = np.zeros((n, 3), dtype=bool)
    for i, (_, p, v, h, f, _, _) in enumerate(rows):
        if p:
            prices[i], volumes[i], mask[i, 0] = p, v, True
        mask[i, 1] = bool(h)
        if f:
            flows[i], mask[i, 2] = f, True
    return Dataset(
        asset=np.array([r[0] for r in rows]), prices=prices, volumes=volumes, headlines=[r[3] for r in rows],
        flows=flows, label=np.array([r[5] for r in rows], dtype=np.int64),
        risk_flag=np.array([r[6] for r in rows], dtype=np.int64), mask=mask, params={"source": source},
    )


def save_tasks(ds: Dataset, path: str | Path) -> None:
    """Write a Dataset as CSV (JSON list cells) or Parquet (list columns), readable by `load_tasks`."""
    import pandas as pd

    path = Path(path)
    recs = []
    for i in range(len(ds)):
        s = ds[i]
        recs.append({"asset": s.asset, "prices": s.prices, "volumes": s.volumes, "headlines": s.headlines,
                     "flows": s.flows, "label": ACTIONS[s.label], "risk_flag": s.risk_flag})
    df = pd.DataFrame(recs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        for c in ("prices", "volumes", "headlines", "flows"):
            df[c] = df[c].map(json.dumps)
        df.to_csv(path, index=False)
    elif path.suffix.lower() in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    else:
        raise DataError(f"{path}: unsupported file type (use .csv or .parquet)")
