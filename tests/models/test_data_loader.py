"""The user-data loader: round trips, and clear errors with row numbers for bad rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.data.loader import DataError, load_tasks, save_tasks
from models.data.synthetic import FLOW_NAMES, generate


def _good_rows(n: int = 3) -> list[dict]:
    ds = generate(n, 0)
    return [{"asset": s.asset, "prices": json.dumps(s.prices), "volumes": json.dumps(s.volumes),
             "headlines": json.dumps(s.headlines), "flows": json.dumps(s.flows), "label": "buy", "risk_flag": 0}
            for s in (ds[i] for i in range(n))]


def _csv(tmp_path, rows, name="tasks.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path, suffix):
    ds = generate(40, 3, missing_rate=0.2)
    path = tmp_path / f"tasks{suffix}"
    save_tasks(ds, path)
    back = load_tasks(path)
    assert np.array_equal(back.mask, ds.mask)
    np.testing.assert_array_equal(back.prices, ds.prices)
    np.testing.assert_array_equal(back.flows, ds.flows)
    assert back.headlines == ds.headlines
    assert np.array_equal(back.label, ds.label) and np.array_equal(back.risk_flag, ds.risk_flag)
    assert back.oracle is None


def test_missing_column(tmp_path):
    rows = _good_rows()
    for r in rows:
        del r["label"]
    with pytest.raises(DataError, match="missing column.*label"):
        load_tasks(_csv(tmp_path, rows))


def test_wrong_type_nan_and_unknown_label_name_their_rows(tmp_path):
    rows = _good_rows(5)
    rows[1]["prices"] = "abc"
    rows[2]["volumes"] = json.dumps([float("nan")] * 32).replace("NaN", "NaN")
    rows[3]["label"] = "strong buy"
    rows[4]["flows"] = json.dumps([1.0, 2.0])
    with pytest.raises(DataError) as err:
        load_tasks(_csv(tmp_path, rows))
    msg = str(err.value)
    assert "4 bad row(s)" in msg
    assert "row 2: prices: expected a JSON list" in msg
    assert "row 3: volumes contains NaN" in msg
    assert "row 4: label 'strong buy'" in msg
    assert "row 5: flows needs 8 values" in msg
    assert "row 1" not in msg


def test_empty_cells_and_bad_flag(tmp_path):
    rows = _good_rows(2)
    rows[0]["prices"] = ""
    rows[1]["risk_flag"] = 7
    with pytest.raises(DataError) as err:
        load_tasks(_csv(tmp_path, rows))
    assert "row 1: prices is missing" in str(err.value) and "row 2: risk_flag '7' is not 0 or 1" in str(err.value)


def test_flow_columns_and_numeric_labels(tmp_path):
    rows = _good_rows(2)
    for r in rows:
        for name, v in zip(FLOW_NAMES, json.loads(r.pop("flows"))):
            r[name] = v
        r["label"] = 0
    ds = load_tasks(_csv(tmp_path, rows))
    assert ds.mask[:, 2].all() and list(ds.label) == [0, 0]


def test_series_length_must_agree(tmp_path):
    rows = _good_rows(2)
    rows[1]["prices"] = json.dumps(json.loads(rows[1]["prices"])[:10])
    rows[1]["volumes"] = json.dumps(json.loads(rows[1]["volumes"])[:10])
    with pytest.raises(DataError, match="row 2: prices has 10 values; earlier rows have 32"):
        load_tasks(_csv(tmp_path, rows))


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_tasks(tmp_path / "nope.csv")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported"):
        load_tasks(tmp_path / "x.txt")


def test_more_headlines_than_the_feature_has_slots_are_refused_at_load_time(tmp_path):
    rows = _good_rows(3)
    rows[1]["headlines"] = json.dumps(["ETF approved", "Fees fall", "Hack at exchange", "Token rallies"])
    with pytest.raises(DataError) as err:
        load_tasks(_csv(tmp_path, rows))
    assert "1 bad row(s)" in str(err.value) and "row 2: headlines has 4 entries; a task has at most 3" in str(err.value)
