"""Run records (one self-describing JSON per run, written atomically) and tables derived from them."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from harness.config import REPO_ROOT


def versions() -> dict[str, str]:
    """Versions of what shapes the numbers: Python, torch (+CUDA/cuDNN), torchvision, PyAV, numpy."""
    import av
    import numpy
    import torch
    import torchvision

    v = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
         "av": av.__version__, "numpy": numpy.__version__}
    if torch.cuda.is_available():
        v["cuda"] = str(torch.version.cuda)
        v["cudnn"] = str(torch.backends.cudnn.version())
        v["gpu"] = torch.cuda.get_device_name()
    return v


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_record(record: dict[str, Any], directory: Path) -> Path:
    """Write `record` under a unique name via temp file + fsync + rename: readers never see half a
    record and two runs finishing together cannot overwrite each other."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    rid = record.setdefault("id", f"{stamp}-{record['method']}-{record['protocol']}-{uuid.uuid4().hex[:8]}")
    final = directory / f"{rid}.json"
    tmp = directory / f".{rid}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def load_records(directory: Path) -> list[dict]:
    """All complete records (temp files are skipped; unreadable ones are reported, not fatal)."""
    out = []
    if not directory.exists():
        return out
    for p in sorted(directory.glob("*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (json.JSONDecodeError, OSError) as e:
            print(f"warning: skipping unreadable record {p}: {e}")
    return out


# settings that do not change what a run measures: seeds are averaged over, the rest is bookkeeping
_NOT_A_VARIANT = ("run.seed", "run.results_dir", "run.cache_dir", "run.device", "run.threads", "data.num_workers",
                  "data.cache_frames", "pretrain.checkpoint_every", "pretrain.log_every", "protocols.linear.feature_batch")


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v)
    return out


def variant_labels(records: list[dict]) -> list[str]:
    """Per record, the settings that set it apart from other runs of its (profile, method), e.g.
    'pretrain.epochs=120'; '' where all of them agree. Keeps runs made with different `--set`
    overrides in separate leaderboard rows instead of averaging them as if they were seeds."""
    flats = [{k: v for k, v in _flatten(r.get("config", {})).items() if k not in _NOT_A_VARIANT} for r in records]
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault((r["profile"], r["method"]), []).append(i)
    labels = [""] * len(records)
    for members in groups.values():
        keys = sorted({k for i in members for k in flats[i]})
        differ = [k for k in keys if len({flats[i].get(k) for i in members}) > 1]
        for i in members:
            labels[i] = ", ".join(f"{k}={flats[i].get(k, '-')}" for k in differ)
    return labels


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (run, task) with the metrics flattened; `variant` names non-default settings."""
    rows = []
    for n, (r, variant) in enumerate(zip(records, variant_labels(records))):
        for t in r.get("results", []):
            rows.append({"id": r.get("id", f"run{n}"), "time": r.get("finished"), "profile": r["profile"], "method": r["method"],
                         "variant": variant, "protocol": r["protocol"], "backbone": r.get("backbone"),
                         "seed": r.get("seed"), "task": t["task"], **t["metrics"]})
    return pd.DataFrame(rows)


def leaderboard(records: list[dict], metric: str = "top1", profile: str | None = None) -> pd.DataFrame:
    """Method x (protocol, task) table of `metric`, averaged over seeds (n runs shown in `runs`).

    Runs of one method whose settings differ get a row each, labelled with what differs."""
    df = records_frame(records)
    if df.empty:
        return df
    if profile:
        df = df[df.profile == profile]
    if df.empty or metric not in df:
        return pd.DataFrame()
    df = df.assign(column=df.protocol + ":" + df.task,
                   method=[m if not v else f"{m} [{v}]" for m, v in zip(df.method, df.variant)])
    table = df.pivot_table(index=["profile", "method"], columns="column", values=metric, aggfunc="mean")
    runs = df.groupby(["profile", "method"])["id"].nunique().rename("runs")
    return table.join(runs).round(1).sort_index()


def format_table(df: pd.DataFrame, fmt: str = "markdown") -> str:
    if df.empty:
        return "(no runs recorded yet: try `bench run --method rho_byol --protocol linear`)"
    if fmt == "csv":
        return df.to_csv()
    flat = df.reset_index()
    cols = [str(c) for c in flat.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in flat.iterrows():
        lines.append("| " + " | ".join("" if pd.isna(v) else (f"{v:.1f}" if isinstance(v, float) else str(v))
                                       for v in row) + " |")
    return "\n".join(lines)
