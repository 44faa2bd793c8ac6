"""Training-step throughput and peak memory of every method and protocol at the `paper` profile's shapes.

Builds each method exactly as `bench run --profile paper` does (Slow R-50 8x8 at 224, the paper's
heads, queue and prototypes, bf16 autocast, channels-last) and times full training steps through the
engine's own step function (forward, backward, the method's hooks, the optimiser) on synthetic clips,
so the figure is compute only: no decoding. The paper's per-GPU batch is 8 videos, each with ρ clips.

    python tools/paper_step_bench.py --rho 2 4 --batch 8 --out results/paper_steps.json

With `--protocols`, the same for the protocols' own work: a training step of `linear` (frozen
backbone in the loop) and of `finetune` (end to end), and `extract` (the frozen forward of
`linear-cached`, `knn`, `retrieval` and every test phase, 30 views per video in chunks), then the
cost of each linear probe on Kinetics-400's 240k training videos estimated from those rates.

Prints markdown tables (clips/s, ms per step, peak GiB) and writes the rows as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import catalog  # noqa: E402
from harness.builders import build_encoder  # noqa: E402
from harness.config import load_config  # noqa: E402
from harness.engine import StepInfo, optimizer_step, prepare_model, use_bf16  # noqa: E402
from harness.optim import build_optimizer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, steps: int, warmup: int, device: torch.device) -> float:
    """The median wall time of `fn()` over `steps` calls after `warmup` untimed ones."""
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        fn(i)
        _sync(device)
        times.append(time.perf_counter() - t0)
    timed = sorted(times[warmup:])
    return timed[len(timed) // 2]


def _row(device: torch.device, **kw) -> dict:
    return {**kw, "torch": torch.__version__,
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan"),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}


def bench_protocol(name: str, batch: int, steps: int, warmup: int, device: torch.device, profile: str = "paper",
                   overrides: tuple[str, ...] = ()) -> dict:
    """`linear` / `finetune`: one training step of the protocol's classifier (400 classes) on `batch`
    videos; `extract`: the frozen forward of `batch` videos x all test views, chunked as configured."""
    from harness.data.task import Task
    from protocols.multiview import chunked

    proto = "linear-cached" if name == "extract" else name
    cfg = load_config(profile, list(overrides), protocol=proto)
    c, clip = cfg.protocol_cfg, cfg.backbone.clip
    torch.manual_seed(0)
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, clip)
    bf16 = use_bf16(cfg.pretrain, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if name == "extract":
        views = c.temporal_views * c.spatial_views
        x = torch.randn(batch, views, 3, clip.frames, clip.test_short_side, clip.test_short_side)
        prepare_model(enc, device, cfg.pretrain.channels_last).eval()
        with torch.no_grad():
            step_s = median_seconds(lambda i: chunked(enc, x, device, c.clip_batch, bf16), steps, warmup, device)
        return _row(device, protocol=name, batch_videos=batch, clips_per_step=batch * views,
                    precision="bf16" if bf16 else "fp32", ms_per_step=1000 * step_s,
                    clips_per_s=batch * views / step_s, profile=profile)
    task = Task("k400", "-", "y", tuple(str(i) for i in range(400)))
    model = catalog.PROTOCOLS.get(name)(c).classifier(enc, [task], 0)
    prepare_model(model, device, cfg.pretrain.channels_last)
    pcfg = replace(cfg.pretrain, optimizer=c.optimizer, lr=c.lr, weight_decay=c.weight_decay, momentum=c.momentum,
                   grad_clip=c.grad_clip)
    modules = model.trainable_modules()
    opt = build_optimizer(modules, pcfg, [model.lr_scale(m) for m in modules])
    params = [p for g in opt.param_groups for p in g["params"]]
    data = {"clips": torch.randn(batch, 1, 3, clip.frames, clip.crop_size, clip.crop_size, device=device),
            "labels": {"y": torch.randint(0, 400, (batch,), device=device)}}
    model.train()

    def step(i: int) -> None:
        optimizer_step(model, model.losses, opt, params, data, c.lr, bf16, pcfg, StepInfo(i, 10_000, 1000), lambda: "")

    step_s = median_seconds(step, steps, warmup, device)
    return _row(device, protocol=name, batch_videos=batch, clips_per_step=batch,
                precision="bf16" if bf16 else "fp32", ms_per_step=1000 * step_s, clips_per_s=batch / step_s,
                profile=profile)


def probe_costs(rows: dict[str, dict], profile: str, videos: int = 240_000) -> str:
    """GPU-hours of each linear probe on `videos` training videos from the measured rates (test views excluded,
    the same for both): online = epochs x one clip per video through the frozen backbone's training step;
    cached = BN re-estimation + extraction, `train_views` clips per video, through the frozen forward."""
    online_cfg = load_config(profile, protocol="linear").protocol_cfg
    cached_cfg = load_config(profile, protocol="linear-cached").protocol_cfg
    online = online_cfg.epochs * videos / rows["linear"]["clips_per_s"]
    passes = 2 if cached_cfg.recompute_bn else 1
    cached = passes * cached_cfg.train_views * videos / rows["extract"]["clips_per_s"]
    return (f"K400-sized probe ({videos} training videos): linear {online / 3600:.1f} GPU-h "
            f"({online_cfg.epochs} epochs), linear-cached {cached / 3600:.2f} GPU-h; ratio {online / cached:.0f}x")


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

    def step(i: int) -> None:
        info = StepInfo(100 + i, 10_000, 1000)  # past SwAV's frozen first epoch, like most of a run
        method.before_step(info)
        info.outputs = optimizer_step(method, method.losses, opt, params, data, cfg.pretrain.lr, bf16, cfg.pretrain, info,
                             lambda: "")
        method.after_step(info)

    step_s = median_seconds(step, steps, warmup, device)
    return _row(device, method=method_name, rho=rho, batch_videos=batch, clips_per_step=batch * spec.views,
                precision="bf16" if bf16 else "fp32", ms_per_step=1000 * step_s,
                clips_per_s=batch * spec.views / step_s, profile=profile)


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
    ap.add_argument("--protocols", nargs="*", default=None, metavar="P",
                    help="time protocols instead of methods: linear finetune extract (no names: all three)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA device (or --device cpu with a small --profile)")
    device = torch.device(args.device)
    rows = []
    if args.protocols is not None:
        print("| protocol | videos/step | clips/step | ms/step | clips/s | peak GiB |\n|---|---|---|---|---|---|", flush=True)
        for name in args.protocols or ["linear", "finetune", "extract"]:
            r = bench_protocol(name, args.batch, args.steps, args.warmup, device, args.profile, tuple(args.set))
            rows.append(r)
            print(f"| {name} | {r['batch_videos']} | {r['clips_per_step']} | {r['ms_per_step']:.0f} "
                  f"| {r['clips_per_s']:.0f} | {r['peak_gib']:.1f} |", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        by = {r["protocol"]: r for r in rows}
        if {"linear", "extract"} <= set(by):
            print(probe_costs(by, args.profile))
        args.methods = []
    if args.methods:
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
