"""Plots of the paper tables with matplotlib (Agg, no display needed), written next to the tables.

- accuracy vs the selector a table's `plot` names (ρ for the ρ table, epochs for the schedule table):
  one panel of the paper's numbers and one of ours per column group, one line per row, our points
  with their 95% interval as error bars;
- accuracy vs pre-training cost: every filled cell of a table, ours against the mean pre-training
  seconds of its runs, one marker per row.
"""
from __future__ import annotations

from pathlib import Path

from harness.report.filled import Rendered


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _x_of(r: Rendered, j: int, key: str) -> float | None:
    i = 0
    v = r.table.selectors(i, j).get(key, "")
    return float(v) if v else None


def accuracy_vs_selector(r: Rendered, out_dir: Path) -> list[Path]:
    """One PNG per column group of a table with a `plot` entry; returns the files written."""
    spec = r.table.plot
    if not spec:
        return []
    plt = _pyplot()
    key, written = spec["x"], []
    groups = list(dict.fromkeys(c.group for c in r.table.columns))
    for g in groups:
        cols = [j for j, c in enumerate(r.table.columns) if c.group == g]
        fig, (ax_p, ax_o) = plt.subplots(1, 2, figsize=(10, 4))
        spread = (max(xs) - min(xs)) if len(xs := [x for j in cols if (x := _x_of(r, j, key)) is not None]) > 1 else 1
        for k, line in enumerate(r.cells):
            xs = [_x_of(r, j, key) for j in cols]
            dodge = (k - (len(r.cells) - 1) / 2) * 0.012 * spread  # our error bars side by side, not on top
            paper_pts = [(x, line[j].paper_value) for x, j in zip(xs, cols) if line[j].paper_value is not None]
            if paper_pts:
                ax_p.plot(*zip(*paper_pts), marker="o", label=line[0].row)
            ours_pts = [(x, line[j].ours) for x, j in zip(xs, cols) if line[j].ours is not None]
            if ours_pts:
                x, o = zip(*ours_pts)
                lo = [v.mean - v.ci[0] if v.ci else 0 for v in o]
                hi = [v.ci[1] - v.mean if v.ci else 0 for v in o]
                x = [v * (1 + dodge / spread) if spec.get("log_x") else v + dodge for v in x]
                ax_o.errorbar(x, [v.mean for v in o], yerr=[lo, hi], marker="o", capsize=3, label=line[0].row)
        exp = next((line[j].experiment for line in r.cells for j in cols if line[j].experiment), None)
        ours_label = f"{exp.protocol} on {exp.task}, top-1 (%)" if exp and r.stand_in else f"{g} top-1 (%)".strip()
        for ax, who, ylabel in ((ax_p, f"paper ({r.table.source})", f"{g} top-1 (%)".strip()),
                                (ax_o, f"ours (profile {r.profile})", ours_label)):
            ax.set_xlabel(spec.get("xlabel", key))
            ax.set_ylabel(ylabel)
            ax.set_title(who, fontsize=9)
            ax.grid(alpha=0.3)
            if spec.get("log_x"):
                ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({x for j in cols if (x := _x_of(r, j, key)) is not None}))
            ax.get_xaxis().set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
            if ax.has_data():
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes, color="grey")
        fig.suptitle(f"{r.table.title} — {g}" if g else r.table.title, fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{r.table.paper}-{r.table.name}-{spec.get('name', 'plot')}{_slug(g)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def accuracy_vs_cost(r: Rendered, out_dir: Path) -> list[Path]:
    """Ours against pre-training seconds, per row; nothing when no cell has a pre-training cost."""
    pts = [(line[0].row, c.ours.pretrain_seconds, c.ours.mean, f"{c.group} {c.column}".strip())
           for line in r.cells for c in line if c.ours and c.ours.pretrain_seconds]
    if not pts:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in dict.fromkeys(p[0] for p in pts):
        mine = [p for p in pts if p[0] == row]
        ax.scatter([p[1] / 60 for p in mine], [p[2] for p in mine], label=row)
        for p in mine:
            ax.annotate(p[3], (p[1] / 60, p[2]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("pre-training time (min, as recorded)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{r.table.title}\naccuracy vs cost, profile {r.profile}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / f"{r.table.paper}-{r.table.name}-acc-vs-cost.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _slug(group: str) -> str:
    return "-" + "".join(ch if ch.isalnum() else "-" for ch in group.lower()).strip("-") if group else ""
