"""`bench perf` records read back, and the step-throughput table the leaderboard prints under itself."""
from __future__ import annotations

import json
from pathlib import Path


def load_perf(results_root: Path) -> list[dict]:
    """The `bench perf` records under `<results>/perf/`, newest last; unreadable files are skipped."""
    out = []
    for p in sorted((Path(results_root) / "perf").glob("*.json")):
        try:
            body = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(body, dict) and body.get("kind") == "perf":
            out.append(body)
    return out


def perf_table(perf: list[dict]) -> str:
    """The newest `bench perf` figures per (method, backbone, profile, device): compute-only clips/s of each
    mode, the loader with the most workers, the full step and its data wait; '' when there are none."""
    newest: dict[tuple, dict] = {}
    for b in perf:
        newest[(b["method"], b["backbone"], b["profile"], b.get("dataset", "?"), b.get("versions", {}).get("gpu", "cpu"))] = b
    if not newest:
        return ""
    lines = ["| method | backbone | profile | data | device | compute clips/s by mode (peak GB) | loader clips/s | "
             "full step clips/s (data wait) |", "|---|---|---|---|---|---|---|---|"]
    for (method, backbone, profile, data, device), b in sorted(newest.items()):
        modes = ", ".join(f"{m} {r['clips_per_s']:.0f} ({r['peak_gb']:.1f})" if "clips_per_s" in r else f"{m} failed"
                          for m, r in b["compute"].items())
        loader = max(b.get("loader", {}).items(), key=lambda kv: int(kv[0].split("=")[1]), default=None)
        full = b.get("full") or {}
        lines.append(f"| {method} | {backbone} | {profile} | {data} | {device} | {modes} | "
                     + (f"{loader[1]['clips_per_s']:.0f} ({loader[0]})" if loader else "") + " | "
                     + (f"{full['clips_per_s']:.0f} ({100 * full['data_wait_fraction']:.0f}%)" if full else "") + " |")
    return "\n".join(lines)
