#!/usr/bin/env bash
# The whole pipeline at the paper's shapes on one GPU, in one go (about 10 minutes on one H100/H200):
#
#  1. a K400- and a UCF101-format miniature synthesised here (340x256 and 320x240 clips, the official layouts);
#  2. the data path on those files (`bench perf --data`): decode limit, a pre-training sample, 30 test views;
#  3. each ρ method's pre-training step at the paper's shapes (Slow R-50 8x8 at 224, $BATCH videos x ρ clips):
#     compute only in fp32, bf16 and bf16+compile, then with real decoding and $WORKERS loader workers
#     (clips/s and the fraction of the step spent waiting for data), peak memory;
#  4. one short pre-training, then the linear probe (K400 format) and fine-tuning (UCF101 format) with their
#     30-view test: fit clips/s, test views/s;
#  5. one table on stdout and everything as JSON in $OUT/gpu_check.json (or results/gpu_check.json).
#
#   tools/gpu_check.sh                                   # on the GPU machine
#   DEVICE=cpu PROFILE=ci METHODS=rho_byol STEPS=2 WORKERS=0 tools/gpu_check.sh   # a smoke test on a CPU
#
# On a machine without the repo's dependencies (PyAV is the usual one missing), put wheels in .whl/ first;
# they are installed to /tmp/site and put on PYTHONPATH. The repo is used in place (python3 -m harness.cli),
# so the machine's own torch is what runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DEVICE="${DEVICE:-cuda}"
PROFILE="${PROFILE:-paper}"
WORKERS="${WORKERS:-8}"
BATCH="${BATCH:-16}"
STEPS="${STEPS:-10}"
METHODS="${METHODS:-rho_byol rho_simclr rho_moco rho_swav}"
PYTHON="${PYTHON:-python3}"
WORK="${WORK:-/tmp/gpu-check}"
RESULTS="$WORK/results"
export BENCH_CACHE_DIR="$WORK/cache"
if [ "$DEVICE" = cuda ]; then MODES="${MODES:-fp32,bf16,bf16+compile}"; else MODES="${MODES:-fp32}"; fi
bench() { "$PYTHON" -m harness.cli "$@"; }
rm -rf "$WORK" && mkdir -p "$WORK"

"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
bench data synth --format k400 --out "$WORK/k400" -q
bench data synth --format ucf101 --out "$WORK/ucf101" -q
SETS=(--set "run.device='$DEVICE'" --set "data.num_workers=$WORKERS")
if [ "$PROFILE" = paper ]; then
    SETS+=(--set "datasets.k400.root='$WORK/k400'" --set "datasets.ucf101.root='$WORK/ucf101'" --set "data.max_bad_fraction=0.5")
fi

echo "== 2. the data path on the miniatures' files"
bench perf --data "$WORK/k400" --data "$WORK/ucf101/UCF-101" -p "$PROFILE" --steps 6 | tee "$WORK/data.md"

echo "== 3. pre-training steps at the profile's shapes"
for m in $METHODS; do
    bench perf -m "$m" -p "$PROFILE" "${SETS[@]}" --batch "$BATCH" --modes "$MODES" --workers "0,$WORKERS" \
        --steps "$STEPS" --warmup 2 --results-dir "$RESULTS"
done

echo "== 4. a short pre-training, then the probes with their 30-view test"
for p in linear finetune; do
    bench run -m rho_byol --protocol "$p" -p "$PROFILE" "${SETS[@]}" --set pretrain.epochs=1 --set pretrain.warmup_epochs=0 \
        --set "protocols.$p.epochs=1" --set "protocols.$p.warmup_epochs=0" --set "protocols.$p.lr_steps=[]" \
        --set "protocols.$p.schedule='cosine'" --results-dir "$RESULTS" -q
done

echo "== 5. summary"
"$PYTHON" - "$RESULTS" "${OUT:-results}" <<'PY'
import glob, json, os, sys
results, out = sys.argv[1], sys.argv[2]
summary = {"perf": [], "runs": []}
print("| method | measurement | clips/s | vs fp32 compute | data wait | peak GB |")
print("|---|---|---|---|---|---|")
for path in sorted(glob.glob(f"{results}/perf/*.json")):
    body = json.load(open(path))
    summary["perf"].append(body)
    base = body["compute"].get("fp32", {}).get("clips_per_s") or float("nan")
    rows = [(f"compute {m}", r["clips_per_s"], "", r.get("peak_gb", 0)) for m, r in body["compute"].items()]
    rows += [(f"loader {k}", r["clips_per_s"], "", 0) for k, r in body["loader"].items()]
    if body.get("full"):
        f = body["full"]
        rows.append((f"full step, {f['precision']}, workers={f['workers']}", f["clips_per_s"],
                     f"{f['data_wait_fraction']:.2f}", 0))
    for name, cps, wait, peak in rows:
        print(f"| {body['method']} | {name} | {cps:.1f} | {cps / base:.2f} | {wait} | {peak or 0:.2f} |")
print()
print("| protocol | task | top-1 | fit clips/s | test clips/s | total s |")
print("|---|---|---|---|---|---|")
for path in sorted(glob.glob(f"{results}/runs/*.json")):
    r = json.load(open(path))
    summary["runs"].append({k: r.get(k) for k in ("method", "protocol", "results", "costs", "pretrain")})
    for t in r["results"]:
        c = t.get("costs", {})
        print(f"| {r['protocol']} | {t['task']} | {t['metrics'].get('top1', float('nan')):.1f} | "
              f"{c.get('train_clips_per_s', 0) or 0:.0f} | {c.get('test_clips_per_s', 0) or 0:.0f} | "
              f"{r['costs']['total_seconds']:.0f} |")
os.makedirs(out, exist_ok=True)
json.dump(summary, open(f"{out}/gpu_check.json", "w"), indent=1, default=str)
print(f"\nwritten to {out}/gpu_check.json")
PY
