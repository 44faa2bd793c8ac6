"""Training-step throughput and peak memory of every method at the `paper` profile's shapes, on one GPU.

Builds each method exactly as `bench run --profile paper` does (Slow R-50 8x8 at 224, the paper's
heads, queue and prototypes, bf16 autocast, channels-last) and times full training steps through the
engine's own step function (forward, backward, the method's hooks, the optimiser) on synthetic clips,
so the figure is compute only: no decoding. The paper's per-GPU batch is 8 videos, each with ρ clips.

    python tools/paper_step_bench.py --rho 2 4 --batch 8 --out results/paper_steps.json

Prints a markdown table (clips/s, ms per step, peak GiB) and writes the rows as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import catalog  # noqa: E402
from harness.backbones import build_encoder  # noqa: E402
from harness.config import load_config  # noqa: E402
from harness.engine import StepInfo, _step, build_optimizer, prepare_model, use_bf16  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_one(method_name: str, rho: int, batch: int, steps: int, warmup: int, device: torch.device,
              profile: str = "paper", overrides: tuple[str, ...] = ()) -> dict:
    cfg = load_config(profile, [f"method.rho={rho}", *overrides], method=method_name)
    torch.manual_seed(0)
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    method = catalog.METHODS.get(method_name)(enc, cfg.method_cfg)
    spec = method.sample_spec()
    if spec.label is not None:
        method.setup_labels(tuple(str(i) for i in range(400)))  # Kinetics-400's head
    prepare_model(method, device, cfg.pretrain.channels_last)
    modules = method.trainable_modules()
    opt = build_optimizer(modules, cfg.pretrain, [method.lr_scale(m) for m in modules])
    params = [p for g in opt.param_groups for p in g["params"]]
    c = cfg.backbone.clip
    clips = torch.randn(batch, spec.views, 3, c.frames, c.crop_size, c.crop_size, device=device)
    data = {"clips": clips, "label": torch.randint(0, 400, (batch,), device=device)}
    bf16 = use_bf16(cfg.pretrain, device)
    method.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + steps):
        info = StepInfo(100 + i, 10_000, 1000)  # past SwAV's frozen first epoch, like most of a run
        _sync(device)
        t0 = time.perf_counter()
        method.before_step(info)
        info.outputs = _step(method, method.losses, opt, params, data, cfg.pretrain.lr, bf16, cfg.pretrain, info,
                             lambda: "")
        method.after_step(info)
        _sync(device)
        times.append(time.perf_counter() - t0)
    step_s = sorted(times[warmup:])[len(times[warmup:]) // 2]  # the median step
    return {"method": method_name, "rho": rho, "batch_videos": batch, "clips_per_step": batch * spec.views,
            "precision": "bf16" if bf16 else "fp32", "ms_per_step": 1000 * step_s,
            "clips_per_s": batch * spec.views / step_s, "profile": profile, "torch": torch.__version__,
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan"),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["rho_simclr", "rho_moco", "rho_byol", "rho_swav", "supervised"])
    ap.add_argument("--rho", nargs="+", type=int, default=[2, 4])
    ap.add_argument("--batch", type=int, default=8, help="videos per step (the paper: 8 per GPU)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--profile", default="paper", help="another profile's shapes (ci + --device cpu: a smoke test)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--set", action="append", default=[], help="a config override, e.g. pretrain.precision=fp32")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA device (or --device cpu with a small --profile)")
    device = torch.device(args.device)
    rows = []
    print("| method | ρ | clips/step | ms/step | clips/s | peak GiB |\n|---|---|---|---|---|---|", flush=True)
    for m in args.methods:
        for rho in args.rho:
            try:
                r = bench_one(m, rho, args.batch, args.steps, args.warmup, device, args.profile, tuple(args.set))
            except torch.cuda.OutOfMemoryError as e:
                r = {"method": m, "rho": rho, "error": f"out of memory: {e}"}
            rows.append(r)
            if "error" in r:
                print(f"| {m} | {rho} | - | - | - | {r['error'][:40]} |", flush=True)
            else:
                print(f"| {m} | {rho} | {r['clips_per_step']} | {r['ms_per_step']:.0f} | {r['clips_per_s']:.0f} "
                      f"| {r['peak_gib']:.1f} |", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
