"""`bench regress`: a fixed matrix of small runs compared metric by metric with stored baselines.

The matrix is every method that pre-trains, plus `random_init`, under the fast linear probe on the
`ci` profile with seed 0: seconds per cell on two CPU cores, and enough to catch a change that breaks
what a method learns or what a protocol measures. Baselines live in `results/baselines/<profile>.json`
with the tolerance of each metric (in points; one of the `ci` profile's 60 test videos is 1.7 points);
a cell outside its tolerance is a regression and the command exits 1. `--update` rewrites the baselines
from the runs and says which changed.
"""
from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness import catalog
from harness.config import load_config, method_pretrains
from harness.storage import atomic_json

BASELINES = Path(__file__).resolve().parent.parent / "results" / "baselines"
PROTOCOL = "linear-cached"
METRICS = ("top1", "top1_1view")
DEFAULT_TOLERANCE = 5.0  # points: three of the ci profile's 60 test videos


def matrix(profile: str) -> list[tuple[str, str]]:
    """(method, protocol) cells: every method that pre-trains, and the untrained reference."""
    cells = []
    for m in catalog.METHODS.names():
        cfg = load_config(profile, method=m) if m != "pretrained" else None
        if cfg is not None and (method_pretrains(cfg.method_cfg) or m == "random_init"):
            cells.append((m, PROTOCOL))
    return cells


def run_cell(profile: str, method: str, protocol: str, cache: Path, results: Path) -> dict[str, float]:
    """One cell's metrics, `task/metric` -> value, from a real `bench run` (seed 0)."""
    from harness.runner import run

    cfg = load_config(profile, [f"run.cache_dir={str(cache)!r}", f"run.results_dir={str(results)!r}"],
                      method=method, protocol=protocol, seed=0)
    record, _ = run(cfg, progress=False)
    return {f"{r['task']}/{k}": r["metrics"][k] for r in record["results"] for k in METRICS if k in r["metrics"]}


@dataclass
class Row:
    cell: str
    metric: str
    baseline: float | None
    now: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.baseline is not None and abs(self.now - self.baseline) <= self.tolerance


def regress(profile: str, update: bool = False, baseline_path: Path | None = None,
            runner: Callable[..., dict[str, float]] = run_cell, cache: Path | None = None,
            log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> tuple[list[Row], str]:
    """Run the matrix, compare with (or with `update`, rewrite) the baselines; returns the rows and a report."""
    path = baseline_path or BASELINES / f"{profile}.json"
    stored = json.loads(path.read_text()) if path.exists() else {"tolerance": {}, "cells": {}}
    tol = {m: stored.get("tolerance", {}).get(m, DEFAULT_TOLERANCE) for m in METRICS}
    rows, now_cells = [], {}
    from harness.progress import JobClock

    cells = matrix(profile)
    clock = JobClock(len(cells))
    with tempfile.TemporaryDirectory() as tmp:
        for k, (method, protocol) in enumerate(cells, 1):
            cell = f"{method}/{protocol}"
            log(clock.line(k, cell))
            where = cache or load_config(profile).cache_root()  # datasets and encoders reused under their keys
            now_cells[cell] = runner(profile, method, protocol, where, Path(tmp) / "results")
            for key, value in now_cells[cell].items():
                base = stored["cells"].get(cell, {}).get(key)
                rows.append(Row(cell, key, base, value, tol[key.rsplit("/", 1)[1]]))
    lines = ["| cell | metric | baseline | now | difference | within |", "|---|---|---|---|---|---|"]
    for r in rows:
        diff = "" if r.baseline is None else f"{r.now - r.baseline:+.1f}"
        mark = "new" if r.baseline is None else "yes" if r.ok else f"NO (tolerance {r.tolerance:g})"
        lines.append(f"| {r.cell} | {r.metric} | {'' if r.baseline is None else f'{r.baseline:.1f}'} | {r.now:.1f} "
                     f"| {diff} | {mark} |")
    if update:
        changed = sorted({r.cell for r in rows if r.baseline is None or r.now != r.baseline})
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_json(path, {"profile": profile, "protocol": PROTOCOL, "seed": 0, "tolerance": tol, "cells": now_cells})
        lines.append(f"baselines written to {path}; changed: {', '.join(changed) if changed else 'none'}")
    else:
        bad = [r for r in rows if not r.ok]
        lines.append(f"{len(bad)} of {len(rows)} metrics outside their tolerance" if bad
                     else f"all {len(rows)} metrics within their tolerance")
    return rows, "\n".join(lines)
