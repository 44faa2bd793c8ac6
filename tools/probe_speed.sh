#!/usr/bin/env bash
# The two linear probes side by side, in one go, on one machine: linear-cached cold (extracting),
# linear-cached warm (its stored features), and linear (the backbone in the loop), for each method
# given, reusing the pre-trained encoders of $BENCH_CACHE_DIR but none of its probes or features.
# Prints each run's protocol seconds and top-1s, and the speed ratios.
#
#   BENCH_CACHE_DIR=~/.cache/video-ssl-bench tools/probe_speed.sh rho_byol random_init
#   PROFILE=ci tools/probe_speed.sh rho_byol          # seconds
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="${BENCH_CACHE_DIR:-$HOME/.cache/video-ssl-bench}"
PROFILE="${PROFILE:-embedded}"
PYTHON="${PYTHON:-.venv/bin/python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$SRC/datasets" "$SRC/checkpoints"
ln -s "$SRC/datasets" "$WORK/datasets"
ln -s "$SRC/checkpoints" "$WORK/checkpoints"
for m in "${@:-rho_byol}"; do
    for p in linear-cached linear-cached linear; do
        BENCH_CACHE_DIR="$WORK" "$PYTHON" -m harness.cli run --method "$m" --protocol "$p" --profile "$PROFILE" -q \
            --results-dir "$WORK/results" >/dev/null 2>>"$WORK/log" || { tail -n 20 "$WORK/log"; exit 1; }
    done
done
"$PYTHON" - "$WORK/results/runs" <<'PY'
import json, pathlib, sys
runs = sorted(pathlib.Path(sys.argv[1]).glob("*.json"), key=lambda p: p.stat().st_mtime)
by = {}
print("| method | probe | protocol s | top-1 appearance / motion |\n|---|---|---|---|")
for p in runs:
    r = json.loads(p.read_text())
    reused = r["results"][0]["extra"].get("features", {}).get("reused")
    name = r["protocol"] + (" (stored features)" if reused else " (extracting)" if reused is False else "")
    s = r["costs"]["protocol_seconds"]
    by[(r["method"], name)] = s
    print(f"| {r['method']} | {name} | {s:.1f} | " + " / ".join(f"{t['metrics']['top1']:.1f}" for t in r["results"]) + " |")
for m in dict.fromkeys(k[0] for k in by):
    online = by[(m, "linear")]
    print(f"{m}: linear / linear-cached = {online / by[(m, 'linear-cached (extracting)')]:.1f}x extracting, "
          f"{online / by[(m, 'linear-cached (stored features)')]:.1f}x from stored features")
PY
