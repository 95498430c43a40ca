"""A tiny shared harness for benchmark scripts: time calls, print a table, write JSON, ratios.

Use it from a script in bench/ (run as `python bench/bench_x.py`, so this folder is on the path):

    from _harness import Report, time_call
    report = Report("x")
    a = report.add(time_call("variant a", fn_a))
    b = report.add(time_call("variant b", fn_b))
    report.add_ratio(a, b)
    report.finish()  # prints the table, writes bench/results/x.json

Ratios compare variants measured in the same run on the same machine; absolute times move
with the machine and its load, ratios much less.
"""

from __future__ import annotations

import io
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
Extra = str | int | float


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of repeated calls of one variant, in seconds."""

    label: str
    runs_s: tuple[float, ...]
    extra: Mapping[str, Extra] = field(default_factory=dict)  # more columns, e.g. bytes written

    def __post_init__(self) -> None:
        if not self.runs_s:
            raise ValueError(f"timing {self.label!r} has no runs: use repeats >= 1")

    @property
    def median_s(self) -> float:
        return percentile(self.runs_s, 50)

    @property
    def p90_s(self) -> float:
        return percentile(self.runs_s, 90)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "median_s": self.median_s,
            "p90_s": self.p90_s,
            "runs_s": list(self.runs_s),
            **dict(self.extra),
        }


@dataclass(frozen=True)
class Ratio:
    """How many times slower the numerator's median is than the denominator's."""

    numerator: str
    denominator: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"numerator": self.numerator, "denominator": self.denominator, "ratio": self.value}


def percentile(values: tuple[float, ...] | list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default does it."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q={q}: use 0 to 100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def time_call(
    label: str,
    fn: Callable[[], object],
    *,
    warmup: int = 1,
    repeats: int = 5,
    extra: Mapping[str, Extra] | None = None,
) -> Timing:
    """Call `fn` `warmup` times untimed, then `repeats` times timed with perf_counter."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup={warmup}, repeats={repeats}: use warmup >= 0, repeats >= 1")
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return Timing(label, tuple(runs), dict(extra or {}))


def ratio(numerator: Timing, denominator: Timing) -> Ratio:
    """numerator median / denominator median, both from this run."""
    return Ratio(numerator.label, denominator.label, numerator.median_s / denominator.median_s)


def machine_context() -> dict[str, Any]:
    """What the figures depend on, without host names or paths."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or "",
    }


@dataclass
class Report:
    """The timings and ratios of one benchmark run; `finish` prints and saves them."""

    name: str
    timings: list[Timing] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=machine_context)

    def add(self, timing: Timing) -> Timing:
        self.timings.append(timing)
        return timing

    def add_ratio(self, numerator: Timing, denominator: Timing) -> Ratio:
        found = ratio(numerator, denominator)
        self.ratios.append(found)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "context": self.context,
            "timings": [t.to_dict() for t in self.timings],
            "ratios": [r.to_dict() for r in self.ratios],
        }

    def write(self, results_dir: Path = RESULTS_DIR) -> Path:
        """Write bench/results/<name>.json (the folder is created) and return its path."""
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"{self.name}.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    def finish(self, results_dir: Path = RESULTS_DIR, *, plain: bool = False) -> Path:
        print(render_table(self, plain=plain))
        path = self.write(results_dir)
        print(f"results: {path.relative_to(results_dir.parent)}")
        return path


def render_table(report: Report, *, plain: bool = False) -> str:
    """The report as text: a rich table when rich is installed and wanted, else plain columns."""
    extra_keys = sorted({k for t in report.timings for k in t.extra})
    header = ["variant", "median ms", "p90 ms", "runs", *extra_keys]
    rows = [
        [
            t.label,
            f"{t.median_s * 1e3:.2f}",
            f"{t.p90_s * 1e3:.2f}",
            str(len(t.runs_s)),
            *(str(t.extra.get(k, "")) for k in extra_keys),
        ]
        for t in report.timings
    ]
    ratio_lines = [f"{r.numerator} / {r.denominator}: {r.value:.2f}x" for r in report.ratios]
    if not plain and _has_rich():
        return _rich_table(report.name, header, rows, ratio_lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [report.name, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines + ratio_lines)


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _rich_table(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None)
    console.print(table)
    for note in notes:
        console.print(note)
    return buffer.getvalue().rstrip("\n")
