"""The Anvil state benchmark runs end to end on a real Anvil (tiny sizes; its timings are not checked)."""

from __future__ import annotations

import pytest

from node.bench.anvil_state import format_result, run_benchmark
from scripts.bench_anvil import main


def test_the_benchmark_measures_each_size_on_a_fresh_anvil() -> None:
    result = run_benchmark(sizes=[3000, 0], seconds=1.0, block_time=0.25)
    assert [s.slots for s in result.sizes] == [0, 3000]
    assert all(s.blocks >= 2 and s.cpu_s >= 0 and s.rss_mib > 0 for s in result.sizes)
    text = format_result(result)
    assert "3,000 slots" in text and "x the smallest" in text
    assert set(result.to_dict()) >= {"sizes", "ratio_to_smallest", "block_time"}


@pytest.mark.parametrize("sizes", ["5", "1,x", "-1,4"])
def test_bad_sizes_are_refused_with_a_clear_error(sizes: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--sizes", sizes])
    assert exc.value.code == 2 and "--sizes" in capsys.readouterr().err
