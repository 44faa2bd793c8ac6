"""`bench compare A B`: is A better than B, decided by a paired test on the videos and seeds both scored.

Two runs of one protocol on one task score the same test videos, so their per-video outcomes pair up: each
seed's difference is read video by video (`D_s = mean_v hit_A(s, v) - hit_B(s, v)`), which removes the test
set's own sampling noise from the comparison. What remains is the spread of training across seeds, and it
decides how sure a difference is:

- with two seeds or more, the 95% interval and the p-value are Student's t over the seeds' paired
  differences (scipy): calibrated whatever the seeds' spread (`tests/test_compare.py` simulates it: 5% false
  positives at no difference);
- with one seed, only the test clips' noise can be measured: a bootstrap interval over the paired videos
  and a sign-flip test (every video's difference flips sign at random; exact up to 2^16 flips), with a note;
- the variance of the seed-mean difference splits into a training part (seeds) and a test-clip part, so
  `seeds_for` can say how many seeds a difference needs.

A two-level bootstrap (seeds, then videos) and a sign-flip over videos were tried first and rejected: with 3
seeds and a seed spread like the embedded profile's, they declared 19% and 57% of equal pairs different.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from harness.errors import ConfigError
from harness.report.outputs import hits, load_outputs

Z_95, Z_80 = 1.959963984540054, 0.8416212335729143  # two-sided 5% and 80% power


def parse_selector(text: str) -> dict[str, str]:
    """`rho_byol` or `method=rho_byol,rho=4,protocol=linear-cached`: a bare word names the method; `KEY=default`
    selects the runs that left an option (named only when set) at its default."""
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq:
            key, value = "method", key
        out[key.strip()] = value.strip()
    if not out:
        raise ConfigError(f"empty selector {text!r}; e.g. rho_byol or method=rho_byol,rho=4")
    return out


def _value(record: dict, key: str) -> Any:
    if key in ("method", "protocol", "profile", "backbone"):
        return record.get(key)
    ident = {**record.get("identity", {}).get("encoder", {}), **record.get("identity", {}).get("protocol", {})}
    if key in ident:
        return ident[key]
    ends = [v for k, v in ident.items() if k.endswith("." + key)]
    return ends[0] if len(ends) == 1 else None


def _same(value: Any, text: str) -> bool:
    if value is None:  # an option a record's identity leaves out sits at its default: `train_per_class=default`
        return text == "default"
    if isinstance(value, bool):
        return str(value).lower() == text.lower()
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(value), float(text))
        except ValueError:
            return False
    return str(value) == text


def select(records: list[dict], selector: dict[str, str]) -> list[dict]:
    """The records every `key=value` of `selector` matches (identity keys by their full name or last part)."""
    return [r for r in records if all(_same(_value(r, k), v) for k, v in selector.items())]


@dataclass
class Paired:
    """A's and B's per-video hits on the seeds and test videos both have: (seeds, videos) arrays."""

    a: np.ndarray
    b: np.ndarray
    seeds: list[int]
    videos: int

    @property
    def diff(self) -> np.ndarray:
        return self.a - self.b


def pair(records_a: list[dict], records_b: list[dict], task: str, metric: str, runs_dir: Path) -> Paired:
    """A's and B's hits for `metric` of `task`, seed by seed (the newest record of each seed), on the videos
    both scored."""
    def per_seed(records: list[dict], who: str) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {}
        for r in sorted(records, key=lambda r: r.get("finished", "")):
            if task not in r.get("tasks", []):
                continue
            outputs = load_outputs(r, runs_dir)
            if outputs is None:
                raise ConfigError(f"record {r.get('id')} ({who}) keeps no per-video outputs (made before they "
                                  "were recorded): run it again to compare it")
            ids, h = hits(outputs[task], metric)
            out[int(r["seed"])] = dict(zip(ids, h))
        return out

    sa, sb = per_seed(records_a, "A"), per_seed(records_b, "B")
    seeds = sorted(set(sa) & set(sb))
    if not seeds:
        raise ConfigError(f"A and B share no seed on {task} (A: {sorted(sa) or 'none'}, B: {sorted(sb) or 'none'})")
    common = sorted(set.intersection(*(set(sa[s]) & set(sb[s]) for s in seeds)))
    if not common:
        raise ConfigError(f"A and B share no test video on {task}")
    a = np.array([[sa[s][v] for v in common] for s in seeds], dtype=float)
    b = np.array([[sb[s][v] for v in common] for s in seeds], dtype=float)
    return Paired(a, b, seeds, len(common))


def sign_flip_p(x: np.ndarray, resamples: int = 20000, seed: int = 0) -> float:
    """Two-sided p-value of the mean of paired differences `x` being 0: every video's difference flips sign
    at random (all 2^n flips when n <= 16). A sampled test counts the observed signs as one of its draws,
    (k + 1) / (resamples + 1), so it never reports p = 0 (Phipson & Smyth 2010). Written out rather than
    scipy's `permutation_test`: the same test, about 5 times slower at 500 videos and 20,000 draws."""
    x = np.asarray(x, dtype=float)
    observed = abs(x.mean())
    n = len(x)
    if n <= 16:
        signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        return float((np.abs((signs * x).mean(axis=1)) >= observed - 1e-12).mean())
    signs = np.random.default_rng(seed).choice([-1, 1], size=(resamples, n))
    extreme = int((np.abs((signs * x).mean(axis=1)) >= observed - 1e-12).sum())
    return (extreme + 1) / (resamples + 1)


def detectable(per_seed_var: float, seeds: int) -> float:
    """The smallest paired difference (points) a t-test over `seeds` seeds finds with 80% power at the 5%
    level, when one seed's paired mean difference has variance `per_seed_var` (points²)."""
    n = seeds
    quant = (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) if n > 1 else (Z_95 + Z_80)
    return quant * math.sqrt(per_seed_var / n)


def seeds_for(per_seed_var: float, delta: float, most: int = 1000) -> int:
    """Seeds each side needs to detect a difference of `delta` points with 80% power (t over seeds)."""
    return next((n for n in range(2, most + 1) if detectable(per_seed_var, n) <= delta), most)


@dataclass
class Comparison:
    """The paired difference A - B (points of the metric) and what decides it."""

    task: str
    metric: str
    mean_a: float
    mean_b: float
    diff: float
    ci: tuple[float, float]
    p: float
    seeds: list[int]
    videos: int
    var_seed: float  # of the per-seed mean difference across seeds, beyond what the videos explain (points²)
    var_video: float  # of one video's difference within a seed (points²)
    notes: list[str] = field(default_factory=list)

    @property
    def decided(self) -> bool:
        return self.p < 0.05

    @property
    def per_seed_var(self) -> float:
        """Variance of one seed's paired mean difference (points²): training seeds plus test clips."""
        return self.var_seed + self.var_video / self.videos

    def detectable(self, seeds: int | None = None) -> float:
        """The smallest difference (points) found with 80% power at the 5% level with `seeds` seeds."""
        return detectable(self.per_seed_var, seeds or len(self.seeds))

    def seeds_for(self, delta: float, most: int = 1000) -> int:
        """Seeds each side needs to detect a difference of `delta` points with 80% power (t over seeds)."""
        return seeds_for(self.per_seed_var, delta, most)

    @property
    def seed_share(self) -> float:
        """The share of the seed-mean difference's variance that comes from training seeds, not test clips."""
        return self.var_seed / self.per_seed_var if self.per_seed_var > 0 else 0.0

    def verdict(self, a: str = "A", b: str = "B") -> str:
        lo, hi = self.ci
        if self.decided:
            better, worse, d = (a, b, self.diff) if self.diff > 0 else (b, a, -self.diff)
            lo, hi = (lo, hi) if self.diff > 0 else (-hi, -lo)
            return f"{better} better than {worse} by {d:.1f} [{lo:.1f}, {hi:.1f}], p = {self.p:.3g}"
        return (f"no detectable difference ({a} - {b} = {self.diff:+.1f} [{lo:.1f}, {hi:.1f}], p = {self.p:.2g}); "
                f"with {len(self.seeds)} seed{'s' * (len(self.seeds) != 1)} a difference under "
                f"{self.detectable():.1f} points would go unseen")


def compare(paired: Paired, task: str, metric: str) -> Comparison:
    """The paired comparison of two runs' hits (see the module's docstring)."""
    d = 100 * paired.diff  # points
    per_seed = d.mean(axis=1)
    within = float(d.var(axis=1, ddof=1).mean()) if paired.videos > 1 else 0.0
    between = float(per_seed.var(ddof=1)) if len(per_seed) > 1 else 0.0
    var_seed = max(between - within / paired.videos, 0.0)
    mean = float(per_seed.mean())
    if len(per_seed) > 1:
        sd = per_seed.std(ddof=1)
        half = float(stats.t.ppf(0.975, len(per_seed) - 1) * sd / math.sqrt(len(per_seed)))
        p = float(stats.ttest_1samp(per_seed, 0.0).pvalue) if sd > 0 else (1.0 if mean == 0 else 0.0)
        ci, notes = (mean - half, mean + half), []
    else:
        x = d[0]
        boot = stats.bootstrap((x,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                               random_state=0) if x.std() > 0 else None
        ci = (float(boot.confidence_interval.low), float(boot.confidence_interval.high)) if boot else (mean, mean)
        p, notes = sign_flip_p(x), ["one seed: the interval and p-value cover the test clips only, not training "
                                    "seeds; run 3 seeds or more to compare methods"]
    return Comparison(task, metric, 100 * float(paired.a.mean()), 100 * float(paired.b.mean()), mean, ci, p,
                      paired.seeds, paired.videos, var_seed, within, notes)


def describe(c: Comparison, a: str, b: str) -> str:
    """The comparison in a few lines a reader can act on."""
    lines = [f"{c.task} / {c.metric}: A = {c.mean_a:.1f}, B = {c.mean_b:.1f} over seeds {c.seeds} and "
             f"{c.videos} test videos both scored",
             "  " + c.verdict(a, b),
             f"  variance of the seed-mean difference: {100 * c.seed_share:.0f}% from training seeds, "
             f"{100 * (1 - c.seed_share):.0f}% from the test clips ("
             + ("Student's t over the seeds, paired by video)" if len(c.seeds) > 1 else "sign-flip over the videos)")]
    return "\n".join(lines + [f"  note: {n}" for n in c.notes])


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of `pvalues` (family-wise error at the nominal level)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        out[i] = running
    return out


RANK_NOTE = ("#k: the cell's rank in its column. Rows not significantly worse than the best share rank 1 (paired "
             "per-video tests: Student's t over seeds, one seed: sign-flip over videos; Holm-corrected over the rows "
             "compared), and so on down; rows without per-video outputs are not ranked.")


def tie_ranks(rows: dict[str, list[dict]], task: str, metric: str, runs_dir: Path, alpha: float = 0.05
              ) -> dict[str, int | None]:
    """Ranks of a leaderboard column with ties: the best row (highest mean) and every row not significantly
    worse than it (paired tests, Holm-corrected over the rows compared) share rank 1; the rest are ranked the
    same way among themselves, after the rows already placed. None for a row without per-video outputs."""
    usable, ranks = {}, {}
    for name, records in rows.items():
        try:
            if all(load_outputs(r, runs_dir) is not None for r in records):
                usable[name] = records
                continue
        except ConfigError:
            pass
        ranks[name] = None
    means = {}
    for name, records in usable.items():
        by_seed: dict[int, list[float]] = {}
        for r in records:
            _, h = hits(load_outputs(r, runs_dir)[task], metric)
            by_seed.setdefault(int(r["seed"]), []).append(float(np.mean(h)))
        means[name] = float(np.mean([np.mean(v) for v in by_seed.values()]))
    left, placed = sorted(usable, key=lambda n: -means[n]), 0
    while left:
        best, others = left[0], left[1:]
        ps = []
        for o in others:
            try:
                ps.append(compare(pair(usable[best], usable[o], task, metric, runs_dir), task, metric).p)
            except ConfigError:  # no shared seed or video: cannot be told apart
                ps.append(1.0)
        tied = [best] + [o for o, p in zip(others, holm(ps)) if p >= alpha]
        for name in tied:
            ranks[name] = placed + 1
        placed += len(tied)
        left = [n for n in left if n not in tied]
    return ranks
