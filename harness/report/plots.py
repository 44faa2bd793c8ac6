"""Plots of the paper tables with matplotlib (Agg, no display needed), written next to the tables.

- accuracy vs the selector a table's `plot` names (ρ for the ρ table, epochs for the schedule table):
  one panel of the paper's numbers and one of ours per column group, one line per row, our points
  with their 95% interval as error bars;
- accuracy vs pre-training cost: every filled cell of a table, ours against the mean pre-training
  seconds of its runs, one panel per column group (never two protocols on one axis);
- each row (method) has one colour in every panel (`row_colours`), and under a stand-in profile our axis
  and legend name the protocol and task that stand in for the paper's column.
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


def row_colours(r: Rendered) -> dict[str, str]:
    """One colour per row of the table (its method), the same in the paper's panel, ours and the cost plot:
    matplotlib's tab10 in the table's row order, so a method keeps its colour whichever panels have it."""
    palette = [f"C{k % 10}" for k in range(len(r.table.rows))]
    return {row.label: palette[k] for k, row in enumerate(r.table.rows)}


def _stand_in_note(r: Rendered, cols: list[int]) -> str:
    """What our panel measures under a stand-in profile: "linear-cached on digits-appearance"."""
    exp = next((line[j].experiment for line in r.cells for j in cols if line[j].experiment), None)
    return f"{exp.protocol} on {exp.task}" if exp and r.stand_in else ""


def selector_figure(r: Rendered, group: str):
    """The figure of one column group: the paper's numbers and ours against the table's `plot` selector."""
    plt = _pyplot()
    spec, colours = r.table.plot, row_colours(r)
    key = spec["x"]
    cols = [j for j, c in enumerate(r.table.columns) if c.group == group]
    fig, (ax_p, ax_o) = plt.subplots(1, 2, figsize=(10, 4))
    spread = (max(xs) - min(xs)) if len(xs := [x for j in cols if (x := _x_of(r, j, key)) is not None]) > 1 else 1
    for k, line in enumerate(r.cells):
        xs = [_x_of(r, j, key) for j in cols]
        dodge = (k - (len(r.cells) - 1) / 2) * 0.012 * spread  # our error bars side by side, not on top
        colour = colours[line[0].row]
        paper_pts = [(x, line[j].paper_value) for x, j in zip(xs, cols) if line[j].paper_value is not None]
        if paper_pts:
            ax_p.plot(*zip(*paper_pts), marker="o", label=line[0].row, color=colour)
        ours_pts = [(x, line[j].ours) for x, j in zip(xs, cols) if line[j].ours is not None]
        if ours_pts:
            x, o = zip(*ours_pts)
            lo = [v.mean - v.ci[0] if v.ci else 0 for v in o]
            hi = [v.ci[1] - v.mean if v.ci else 0 for v in o]
            x = [v * (1 + dodge / spread) if spec.get("log_x") else v + dodge for v in x]
            ax_o.errorbar(x, [v.mean for v in o], yerr=[lo, hi], marker="o", capsize=3, label=line[0].row,
                          color=colour)
    note = _stand_in_note(r, cols)
    ours_label = f"{note}, top-1 (%)" if note else f"{group} top-1 (%)".strip()
    for ax, who, ylabel, legend in ((ax_p, f"paper ({r.table.source})", f"{group} top-1 (%)".strip(), None),
                                    (ax_o, f"ours (profile {r.profile})", ours_label,
                                     f"{note}\n(stands for {group})" if note else None)):
        ax.set_xlabel(spec.get("xlabel", key))
        ax.set_ylabel(ylabel)
        ax.set_title(who, fontsize=9)
        ax.grid(alpha=0.3)
        if spec.get("log_x"):
            ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({x for j in cols if (x := _x_of(r, j, key)) is not None}))
        ax.get_xaxis().set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        if ax.has_data():
            ax.legend(fontsize=8, title=legend, title_fontsize=7)
        else:
            ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.suptitle(f"{r.table.title} — {group}" if group else r.table.title, fontsize=10)
    fig.tight_layout()
    return fig


def accuracy_vs_selector(r: Rendered, out_dir: Path) -> list[Path]:
    """One PNG per column group of a table with a `plot` entry; returns the files written."""
    spec = r.table.plot
    if not spec:
        return []
    plt, written = _pyplot(), []
    for g in dict.fromkeys(c.group for c in r.table.columns):
        fig = selector_figure(r, g)
        path = out_dir / f"{r.table.paper}-{r.table.name}-{spec.get('name', 'plot')}{_slug(g)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def cost_figure(r: Rendered):
    """Ours against pre-training minutes: one panel per column group (one protocol and task per axis), one
    colour per row; None when no cell has a pre-training cost."""
    pts = [(line[0].row, c.ours.pretrain_seconds, c.ours.mean, c.group, c.column)
           for line in r.cells for c in line if c.ours and c.ours.pretrain_seconds]
    if not pts:
        return None
    plt, colours = _pyplot(), row_colours(r)
    groups = list(dict.fromkeys(p[3] for p in pts))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, g in zip(axes[0], groups):
        cols = [j for j, c in enumerate(r.table.columns) if c.group == g]
        for row in dict.fromkeys(p[0] for p in pts if p[3] == g):
            mine = [p for p in pts if p[0] == row and p[3] == g]
            ax.scatter([p[1] / 60 for p in mine], [p[2] for p in mine], label=row, color=colours[row])
            for p in mine:
                ax.annotate(p[4], (p[1] / 60, p[2]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        note = _stand_in_note(r, cols)
        ax.set_xlabel("pre-training time (min, as recorded)")
        ax.set_ylabel(f"{note}, top-1 (%)" if note else f"{g} top-1 (%)".strip())
        ax.set_title(g or r.table.title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{r.table.title}: accuracy vs cost, profile {r.profile}", fontsize=9)
    fig.tight_layout()
    return fig


def accuracy_vs_cost(r: Rendered, out_dir: Path) -> list[Path]:
    """The cost figure as a PNG; nothing when no cell has a pre-training cost."""
    fig = cost_figure(r)
    if fig is None:
        return []
    path = out_dir / f"{r.table.paper}-{r.table.name}-acc-vs-cost.png"
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return [path]


def _slug(group: str) -> str:
    return "-" + "".join(ch if ch.isalnum() else "-" for ch in group.lower()).strip("-") if group else ""
