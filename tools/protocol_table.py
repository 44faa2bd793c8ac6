"""Every protocol's scores side by side from a folder of run records: per method and protocol, top-1
(R@1 for retrieval) over all views and on the single view, per task, as the mean over seeds ± the
half-width of Student's t 95% interval (one seed: its bootstrap interval over test videos), and the
mean protocol wall time per run (for a run that reused a stored extraction, what extracting cost the
run that made it is added in brackets).

    python tools/protocol_table.py results/runs --profile embedded

It reads the records the way `bench leaderboard` does (harness.report.leaderboard), one row per method variant;
the leaderboard shows one metric at a time, this shows the protocols' headline metrics together.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.report.leaderboard import records_frame, t95  # noqa: E402
from harness.report.records import load_records  # noqa: E402

ORDER = ["linear", "linear-cached", "finetune", "knn", "retrieval"]


def cell(rows, metric: str) -> str:
    per_seed = rows.groupby("seed")[metric].mean()
    m, n = per_seed.mean(), len(per_seed)
    if n > 1:
        return f"{m:.1f} ± {per_seed.std() * t95(n) / math.sqrt(n):.1f}"
    lo, hi = rows.get(f"{metric}@lo"), rows.get(f"{metric}@hi")
    return f"{m:.1f} [{lo.mean():.1f}, {hi.mean():.1f}]" if lo is not None else f"{m:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("--profile", default="embedded")
    args = ap.parse_args()
    records, _ = load_records(args.runs)
    records = [r for r in records if r["profile"] == args.profile]
    seconds = {r.get("id"): r["costs"]["protocol_seconds"] for r in records}
    feats = {r.get("id"): r["results"][0].get("extra", {}).get("features", {}) for r in records}
    extraction = {k: v["extraction_seconds"] for k, v in feats.items() if v.get("reused")}
    df = records_frame(records)
    df["seconds"] = df["id"].map(seconds)
    df["extraction"] = df["id"].map(extraction)
    tasks = list(dict.fromkeys(df["task"]))
    head = ["method", "protocol", *(f"{t} {v}" for t in tasks for v in ("all views", "1 view")), "seeds", "s / run"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in sorted(df["row"].unique()):
        for proto in [p for p in ORDER if p in set(df["protocol"])] + sorted(set(df["protocol"]) - set(ORDER)):
            sel = df[(df["row"] == row) & (df["protocol"] == proto)]
            if sel.empty:
                continue
            metric = "R@1" if proto == "retrieval" else "top1"
            cells = []
            for t in tasks:
                rows = sel[sel["task"] == t]
                cells += [cell(rows, metric), cell(rows, f"{metric}_1view")] if not rows.empty else ["", ""]
            runs = sel.drop_duplicates("id")
            reused = runs["extraction"].dropna()
            wall = f"{runs['seconds'].mean():.0f}" + (f" (+{reused.mean():.0f})" if len(reused) else "")
            print(f"| {row} | {proto}{' (R@1)' if metric == 'R@1' else ''} | " + " | ".join(cells)
                  + f" | {sel['seed'].nunique()} | {wall} |")


if __name__ == "__main__":
    main()
