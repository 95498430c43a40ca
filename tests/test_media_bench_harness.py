"""The benchmark harness in bench/: percentiles, call counting, ratios, table and JSON output."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

HARNESS = Path(__file__).resolve().parents[1] / "bench" / "_harness.py"


@pytest.fixture(scope="module")
def harness() -> Iterator[ModuleType]:
    name = "_imagineer_bench_harness"
    spec = importlib.util.spec_from_file_location(name, HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.mark.parametrize(
    "values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], [0.1] * 3 + [9.0]]
)
def test_percentiles_match_numpy(harness: ModuleType, values: list[float]) -> None:
    for q in (0, 50, 90, 100):
        assert harness.percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_time_call_runs_warmup_then_repeats(harness: ModuleType) -> None:
    calls: list[int] = []
    timing = harness.time_call("x", lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5 and len(timing.runs_s) == 3
    assert timing.p90_s >= timing.median_s >= min(timing.runs_s) >= 0
    with pytest.raises(ValueError, match="repeats=0"):
        harness.time_call("x", lambda: None, repeats=0)


def test_report_ratios_table_and_json(harness: ModuleType, tmp_path: Path) -> None:
    report = harness.Report("demo")
    slow = report.add(harness.Timing("slow", (0.4, 0.2, 0.3), {"kB": 12.5}))
    fast = report.add(harness.Timing("fast", (0.1, 0.1, 0.1)))
    assert report.add_ratio(slow, fast).value == pytest.approx(3.0)
    for plain in (True, False):
        table = harness.render_table(report, plain=plain)
        assert "slow" in table and "300.00" in table and "12.5" in table
        assert "slow / fast: 3.00x" in table
    path = report.write(tmp_path / "results")
    assert path == tmp_path / "results" / "demo.json"
    data = json.loads(path.read_text())
    assert data["timings"][0]["median_s"] == pytest.approx(0.3)
    assert data["timings"][0]["kB"] == 12.5
    assert data["ratios"] == [
        {"numerator": "slow", "denominator": "fast", "ratio": pytest.approx(3.0)}
    ]
    assert "cpu_count" in data["context"]
