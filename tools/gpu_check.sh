#!/usr/bin/env bash
# The embedded profile on a CUDA machine, in one go (issue 2's "the CUDA path is real" check).
#
# Runs `bench run` for rho_byol and random_init with the embedded profile (bf16 autocast and
# channels-last are the CUDA defaults), then rho_byol again with longer schedules to measure how
# much pre-training the embedded gap needs, and prints the leaderboard. Run records go to
# results/runs and are copied to $OUT when that is set.
#
#   tools/gpu_check.sh                                  # embedded profile, then rho_byol for 120 epochs
#   EXTRA_EPOCHS="120 240" WORKERS=12 tools/gpu_check.sh
#   PYTHON=.venv/bin/python DEVICE=cpu PROFILE=ci EXTRA_EPOCHS=6 WORKERS=0 tools/gpu_check.sh   # a smoke test without a GPU
#
# On a machine without the repo's dependencies (PyAV is the usual one missing), put wheels in
# .whl/ first; they are installed to /tmp/site and put on PYTHONPATH. The repo is used in place
# (python3 -m harness.cli), so the machine's own torch is what runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export BENCH_CACHE_DIR="${BENCH_CACHE_DIR:-/tmp/bench-cache}"
EXTRA_EPOCHS="${EXTRA_EPOCHS:-120}"
DEVICE="${DEVICE:-cuda}"
PROFILE="${PROFILE:-embedded}"
WORKERS="${WORKERS:-8}"
PYTHON="${PYTHON:-python3}"
bench() { "$PYTHON" -m harness.cli "$@"; }
timed() { local label=$1 t0=$SECONDS; shift; "$@"; echo "$label: $((SECONDS - t0)) s wall"; }

"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
timed "data prepare" bench data prepare moving-digits --profile "$PROFILE"
for m in random_init rho_byol; do
    timed "$m" bench run --method "$m" --protocol linear \
        --profile "$PROFILE" --set run.device="$DEVICE" --set data.num_workers="$WORKERS"
done
for e in $EXTRA_EPOCHS; do
    timed "rho_byol, $e epochs" bench run --method rho_byol --protocol linear \
        --profile "$PROFILE" --set run.device="$DEVICE" --set data.num_workers="$WORKERS" --set pretrain.epochs="$e"
done
bench leaderboard --profile "$PROFILE"
"$PYTHON" - <<'PY'
import glob, json
for p in sorted(glob.glob("results/runs/**/*.json", recursive=True)):
    r = json.load(open(p))
    pre = r.get("pretrain", {})
    print(r["method"], r["config"]["pretrain"]["epochs"], "epochs:",
          {x["task"]: round(x["metrics"]["top1"], 1) for x in r["results"]},
          "pretrain", round(pre.get("seconds", 0), 1), "s,", round(pre.get("clips_per_s", 0)), "clips/s,",
          pre.get("precision"), "peak", round(pre.get("peak_memory_gb", 0), 2), "GiB")
PY
if [ -n "${OUT:-}" ]; then cp -r results/runs "$OUT/" 2>/dev/null || true; fi
