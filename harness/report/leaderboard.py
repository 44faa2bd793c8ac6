"""The leaderboard derived from run records.

The leaderboard's rules, so that a number in it means one thing:
- one row per method variant, one column per protocol:task;
- a variant is named only by the settings that shape that method's encoder and that protocol's
  measurement (the record's `identity`) and by the code versions that produced it: runs that
  differ in any of them are never averaged together;
- each cell is the mean over seeds (re-runs of one seed are averaged first, so they count once),
  with a 95% confidence interval from Student's t when there are two seeds or more; a cell of one
  seed shows the run's own bootstrap interval over test videos instead, in brackets.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from harness import catalog
from harness.errors import ConfigError


def _label_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _identity(r: dict) -> dict[str, Any]:
    """The record's variant-defining settings, flat: its identity plus the code versions it ran."""
    out = {**r["identity"].get("encoder", {}), **r["identity"].get("protocol", {})}
    cv = r.get("code_version", {})
    if cv.get("pretrain") is not None:
        out["code.pretrain"] = cv["pretrain"]
    out[f"code.{r['protocol']}"] = cv.get("protocol")
    return out


DEFAULT = "default"  # an option a record leaves out because it was at its default


def _value(r: dict, flat: dict, key: str) -> Any:
    """A record's value of a variant key; DEFAULT for an option of its own protocol it leaves out (identities
    name an option with a default only when it is set: `protocol_identity`, `when_set`); None where the key does not
    apply (another protocol's settings, pre-training keys of a run without pre-training)."""
    if key in flat:
        return flat[key]
    if key.startswith(f"protocols.{r['protocol']}."):
        return DEFAULT
    pretrained = (r.get("code_version") or {}).get("pretrain") is not None
    if pretrained and key.startswith(("pretrain.", "augment.", f"methods.{r['method']}.")):
        return DEFAULT  # a pre-training option named only when set (`pretrain.init`, `pretrain.steps`)
    return None


DEFINING = ("rho",)  # a method's settings every label names, differing or not: ρ = 1 never reads as the method


def variant_labels(records: list[dict]) -> list[str]:
    """Per record, the settings that set it apart from other runs of its (profile, method), e.g.
    'pretrain.epochs=120'; '' where all of them agree; the method's own settings without their
    `methods.<method>.` prefix ('rho=2'), which is always named. A key only counts among the runs it applies
    to, so another protocol's settings never label a run, nor pre-training keys a method without it; the
    runs that left an option of their protocol at its default are told apart from those that set it,
    and carry no label for it (they sit in the row of the method's default runs)."""
    flats = [_identity(r) for r in records]
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault((r["profile"], r["method"]), []).append(i)
    labels = [""] * len(records)
    for members in groups.values():
        keys = sorted({k for i in members for k in flats[i]})
        values = {k: {i: _value(records[i], flats[i], k) for i in members} for k in keys}
        method = records[members[0]]["method"]
        own = f"methods.{method}."
        always = {own + k for k in DEFINING}
        differ = [k for k in keys if k in always
                  or len({json.dumps(v, sort_keys=True) for v in values[k].values() if v is not None}) > 1]
        if "backbone.name" in differ:  # the clip shape comes with the backbone (`by_backbone`): its name says it
            differ = [k for k in differ if not k.startswith("backbone.clip.")]
        differ.sort(key=lambda k: (k not in always, k))
        for i in members:
            labels[i] = ", ".join(f"{k.removeprefix(own)}={_label_value(values[k][i])}" for k in differ
                                  if values[k][i] not in (None, DEFAULT))
    return labels


def filter_records(records: list[dict], methods=(), protocols=(), tasks=(), only: str | None = None) -> list[dict]:
    """The records a leaderboard shows: of these methods and protocols (all when empty), matching `only`
    (selectors as `bench compare` takes them: `rho=2,pretrain.epochs=62`), with the results of these tasks."""
    from harness.report.compare import parse_selector, select

    out = [r for r in records if (not methods or r["method"] in methods) and (not protocols or r["protocol"] in protocols)]
    if only:
        out = select(out, parse_selector(only))
    if tasks:
        out = [{**r, "results": [t for t in r["results"] if t["task"] in tasks]} for r in out]
        out = [r for r in out if r["results"]]
    return out


def variants(records: list[dict]) -> list[str]:
    """The distinct settings (encoder and protocol identities, code versions) among `records`, each named by
    what sets it apart (its leaderboard label); one entry when they all ran the same experiment."""
    groups: dict[str, str] = {}
    for r, label in zip(records, variant_labels(records)):
        key = json.dumps([r.get("identity"), r.get("code_version")], sort_keys=True, default=str)
        groups.setdefault(key, f"{r['method']} [{label}]" if label else r["method"])
    return list(groups.values())


def records_frame(records: list[dict]):
    """One row per (run, task) with the metrics flattened; `variant` names what sets the run apart."""
    import pandas as pd

    rows = []
    for r, variant in zip(records, variant_labels(records)):
        pre = r.get("pretrain") or {}
        cost = {"pretrain_s": pre.get("seconds", float("nan")), "clips_per_s": pre.get("clips_per_s", float("nan")),
                "peak_gb": pre.get("peak_memory_gb", float("nan")),
                "device": (r.get("versions") or {}).get("gpu") or (r.get("costs") or {}).get("device", "")}
        enc = (r.get("identity") or {}).get("encoder", {})
        pre = r.get("pretrain") or {}
        length = ("" if pre.get("skipped") or r.get("code_version", {}).get("pretrain") is None
                  else f"{enc['pretrain.steps']} steps" if enc.get("pretrain.steps")
                  else f"{enc['pretrain.epochs']} ep" if "pretrain.epochs" in enc else "")
        for t in r["results"]:
            rows.append({"id": r.get("id"), **cost, "profile": r["profile"], "method": r["method"],
                         "variant": variant, "backbone": enc.get("backbone.name", r.get("backbone", "")),
                         "length": length,
                         "row": r["method"] if not variant else f"{r['method']} [{variant}]",
                         "protocol": r["protocol"], "task": t["task"], "column": f"{r['protocol']}:{t['task']}",
                         "seed": r["seed"], "unreadable": tuple(r.get("unreadable_videos", [])),
                         "has": tuple(t["metrics"]), **t["metrics"],
                         **{f"{k}@lo": v[0] for k, v in t.get("ci95", {}).items()},
                         **{f"{k}@hi": v[1] for k, v in t.get("ci95", {}).items()}})
    return pd.DataFrame(rows)


@dataclass
class Board:
    """The leaderboard: per (profile, row) and protocol:task column, the mean, CI half-width and seed count."""

    metric: str
    mean: Any  # DataFrame: (profile, row) x column
    ci95: Any  # DataFrame: half-width of the 95% interval over seeds; NaN with one seed
    n: Any  # DataFrame: seeds behind each cell
    seeds: Any  # Series: distinct seeds of each row
    notes: Any  # Series: what the reader must know about a row (unreadable videos)
    boot_lo: Any = None  # DataFrames: the bootstrap interval over test videos of one-seed cells (NaN otherwise)
    boot_hi: Any = None
    ids: Any = None  # DataFrame: the ids of the records behind each cell (lists)
    costs: Any = None  # DataFrame per row: pretrain_s (mean), clips_per_s (mean), peak_gb (max), device
    ranks: Any = None  # DataFrame: each cell's rank in its column with ties (`compare.tie_ranks`); None: not ranked
    info: Any = None  # DataFrame per row: method, variant, backbone, pre-training length ("62 ep")

    @property
    def empty(self) -> bool:
        return self.mean.empty


def t95(n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def leaderboard(records: list[dict], metric: str = "top1", profile: str | None = None, runs_dir=None) -> Board:
    """Method variant x protocol:task table of `metric`: mean over seeds, with a 95% CI; with `runs_dir` (where
    the records' per-video outputs are), each column ranked with ties by paired tests."""
    df = records_frame(records)
    if df.empty:
        raise ConfigError("no run records yet: try `bench run --method rho_byol --protocol linear`")
    metrics = sorted({k for r in records for t in r.get("results", []) for k in t.get("metrics", {})})
    if metric not in df:
        raise ConfigError(f"--metric {metric!r} is not in the records; they have: {', '.join(metrics)}")
    # protocols without this metric (retrieval reports R@k) leave no empty column; a run that recorded it as NaN
    # (a diverged fit) stays, and its cell reads NaN
    df = df[df["has"].map(lambda m: metric in m)]
    if profile is not None:
        have = sorted(df.profile.unique())
        df = df[df.profile == profile]
        if df.empty:
            raise ConfigError(f"no runs with profile {profile!r}; runs exist for: {', '.join(have)}")
    keys = ["profile", "row", "column"]
    def mean(x):  # a NaN among the runs makes the cell NaN: never averaged away
        return x.mean(skipna=False)

    per_seed = df.groupby([*keys, "seed"])[metric].agg(mean).reset_index()  # re-runs of a seed count once
    agg = per_seed.groupby(keys)[metric].agg([mean, "std", "size"]).set_axis(["mean", "std", "count"], axis=1)
    agg["ci95"] = [s * t95(int(n)) / math.sqrt(n) if n > 1 else float("nan")
                   for s, n in zip(agg["std"], agg["count"])]
    mean = agg["mean"].unstack("column")
    ci = agg["ci95"].unstack("column")
    n = agg["count"].unstack("column")
    bounds = []
    for side in ("lo", "hi"):  # one seed: its bootstrap interval (re-runs of the seed: their mean bounds)
        col = f"{metric}@{side}"
        b = (df.groupby(keys)[col].mean() if col in df else agg["mean"] * float("nan")).where(agg["count"] == 1)
        bounds.append(b.unstack("column"))
    seeds = per_seed.groupby(["profile", "row"])["seed"].nunique().rename("seeds")
    bad = df.groupby(["profile", "row"])["unreadable"].agg(lambda s: len({p for t in s for p in t}))
    notes = bad.map(lambda k: f"{k} unreadable videos left out" if k else "").rename("notes")
    idx = mean.sort_index().index
    cols = sorted(mean.columns, key=lambda c: (EMPHASIS_ORDER.index(task_emphasis(c)), c))
    ids = df.groupby(keys)["id"].agg(lambda s: sorted(set(s))).unstack("column")
    costs = df.drop_duplicates("id").groupby(["profile", "row"]).agg(
        pretrain_s=("pretrain_s", "mean"), clips_per_s=("clips_per_s", "mean"), peak_gb=("peak_gb", "max"),
        device=("device", lambda s: ", ".join(sorted({d for d in s if d}))))
    info = df.groupby(["profile", "row"]).agg(method=("method", "first"), variant=("variant", "first"),
                                              backbone=("backbone", "first"), length=("length", "first"))
    board = Board(metric, mean.reindex(index=idx, columns=cols), ci.reindex(index=idx, columns=cols),
                  n.reindex(index=idx, columns=cols), seeds.reindex(idx), notes.reindex(idx),
                  bounds[0].reindex(index=idx, columns=cols), bounds[1].reindex(index=idx, columns=cols),
                  ids.reindex(index=idx, columns=cols), costs.reindex(idx), info=info.reindex(idx))
    if runs_dir is not None:
        board.ranks = rank_board(board, {r.get("id"): r for r in records}, runs_dir)
    return board


def rank_board(board: Board, by_id: dict[str, dict], runs_dir):
    """Each cell's rank within its column and profile (`compare.tie_ranks`); NaN where a row cannot be ranked."""
    from harness.report.compare import tie_ranks

    ranks = board.mean * float("nan")
    for col in board.mean.columns:
        task = col.split(":", 1)[1]
        for prof in board.mean.index.get_level_values(0).unique():
            cells = {row: [by_id[i] for i in board.ids.loc[(p, row), col]]
                     for (p, row) in board.mean.index if p == prof and board.mean.notna().loc[(p, row), col]}
            try:
                for row, rank in tie_ranks(cells, task, board.metric, runs_dir).items():
                    if rank is not None:
                        ranks.loc[(prof, row), col] = rank
            except ConfigError:  # a metric without a per-video form (MedR): not ranked
                continue
    return ranks


EMPHASIS_ORDER = ("temporal", "spatial", "")
EMPHASIS_MARK = {"temporal": "[T] ", "spatial": "[S] ", "": ""}


def task_emphasis(column: str) -> str:
    """"temporal", "spatial" or "" for a protocol:task column (an official split counts as its task)."""
    task = column.split(":", 1)[-1].split("@", 1)[0]
    return catalog.TASKS.get(task).emphasis if task in catalog.TASKS else ""


CSV_COLUMNS = ("profile", "method", "variant", "backbone", "pretrain", "protocol", "task", "mean", "ci95", "seeds",
               "boot_low", "boot_high", "rank")


def format_table(board: Board, fmt: str = "markdown") -> str:
    """Markdown (cells "mean ± CI" over seeds, or "mean [low, high]" with a one-seed bootstrap interval;
    backbone, pre-training length, seeds and cost columns, those that say nothing left out) or tidy CSV
    (one line per cell, method, variant, protocol and task in columns of their own; written by the csv
    module, so labels with commas or quotes read back)."""
    def num(x: float) -> str:
        return "" if x != x else f"{x:.6g}"

    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for (prof, row), line in board.mean.iterrows():
            info = board.info.loc[(prof, row)]
            for col, v in line.items():
                at = ((prof, row), col)
                if v == v or isinstance(board.ids.loc[at], list):  # a cell, finite or a recorded NaN
                    protocol, task = col.split(":", 1)
                    w.writerow([prof, info["method"], info["variant"], info["backbone"], info["length"], protocol,
                                task, f"{v:.6g}", num(board.ci95.loc[at]), int(board.n.loc[at]),
                                num(board.boot_lo.loc[at]), num(board.boot_hi.loc[at]),
                                num(board.ranks.loc[at]) if board.ranks is not None else ""])
        return buf.getvalue().rstrip("\n")
    cols = list(board.mean.columns)
    show_notes = bool((board.notes != "").any())
    costs = board.costs if board.costs is not None else None
    cost_heads = []
    if costs is not None and bool(costs["pretrain_s"].notna().any()):
        cost_heads = ["pre-train min", "clips/s"]
        if bool(costs["peak_gb"].fillna(0).gt(0).any()):
            cost_heads.append("peak GB")
        devices = {d for d in costs["device"] if d}
        if len(devices) > 1:
            cost_heads.append("device")
    lengths = board.info["length"] if board.info is not None else None
    show_length = lengths is not None and bool((lengths != "").any())
    backbones = board.info["backbone"] if board.info is not None else None
    show_backbone = backbones is not None and backbones.nunique() > 1
    header = ["profile", "method", *(["backbone"] if show_backbone else []), *(["pre-train"] if show_length else []),
              *(EMPHASIS_MARK[task_emphasis(c)] + c for c in cols), "seeds", *cost_heads,
              *(["notes"] if show_notes else [])]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for (prof, row), line in board.mean.iterrows():
        counts = board.n.loc[(prof, row)]
        most = int(board.seeds.loc[(prof, row)])
        cells = []
        for col in cols:
            v, ci, k = line[col], board.ci95.loc[(prof, row), col], counts[col]
            if v != v:
                cells.append("NaN" if isinstance(board.ids.loc[(prof, row), col], list) else "")
                continue
            lo, hi = board.boot_lo.loc[(prof, row), col], board.boot_hi.loc[(prof, row), col]
            text = f"{v:.1f}" + (f" ± {ci:.1f}" if ci == ci else f" [{lo:.1f}, {hi:.1f}]" if lo == lo else "")
            rank = board.ranks.loc[(prof, row), col] if board.ranks is not None else float("nan")
            cells.append((f"#{int(rank)} " if rank == rank else "") + text + (f" (n={int(k)})" if int(k) != most else ""))
        notes = [board.notes.loc[(prof, row)]] if show_notes else []
        extra = ([backbones.loc[(prof, row)]] if show_backbone else []) + ([lengths.loc[(prof, row)]] if show_length else [])
        every = dict(zip(("pre-train min", "clips/s", "peak GB", "device"), cost_cells(costs.loc[(prof, row)]))) \
            if cost_heads else {}
        row_costs = [every[h] for h in cost_heads]
        lines.append("| " + " | ".join([prof, row, *extra, *cells, str(most), *row_costs, *notes]) + " |")
    if any(task_emphasis(c) for c in cols):
        lines += ["", "[T] temporally-heavy task (motion decides the class), [S] spatially-heavy task (one frame does)."]
    if not show_backbone and backbones is not None and len(backbones) and backbones.iloc[0]:
        lines += ["", f"Backbone: {backbones.iloc[0]}."]
    if cost_heads and "device" not in cost_heads:
        devices = sorted({d for d in costs["device"] if d})
        if devices:
            lines += ["", f"Device: {devices[0]}" + ("; peak GPU memory not recorded." if "peak GB" not in cost_heads
                                                      and devices[0].startswith("cuda") else ".")]
    if board.ranks is not None and bool(board.ranks.notna().to_numpy().any()):
        from harness.report.compare import RANK_NOTE

        lines += ["", RANK_NOTE + " Seeds per row: the seeds column."]
    return "\n".join(lines)


def cost_cells(c) -> list[str]:
    """Pre-training minutes, clips/s, peak GPU memory (GB) and device of one row, blank where unknown."""
    def f(x: float, fmt: str) -> str:
        return "" if x != x else format(x, fmt)

    return [f(c["pretrain_s"] / 60, ".1f"), f(c["clips_per_s"], ".0f"), f(c["peak_gb"], ".1f") if c["peak_gb"] else "",
            c["device"]]
