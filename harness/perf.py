"""`bench perf`: what a pre-training step costs, measured three ways side by side in one process.

(a) compute only: the method's training step (forward, backward, optimiser) on synthetic clips of the
    profile's shape, for each precision/layout/compiler mode, with peak memory;
(b) the loader alone: decoded, sampled and augmented batches of the pre-training data with N workers;
(c) the full step: the loader feeding the step, and the fraction of its time spent waiting for data.

Ratios are what carries over between machines (shared machines drift in absolute terms), so every
figure is printed beside the eager-fp32 rate of the same run. The result is also written as JSON under
`<results>/perf/`.
"""
from __future__ import annotations

import json
import platform
import resource
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from harness import catalog
from harness.builders import build_encoder
from harness.config import Config
from harness.engine import StepInfo, optimizer_step, prepare_model, resolve_device, seed_everything, to_device
from harness.errors import ConfigError
from harness.optim import build_optimizer
from harness.report.records import versions
from harness.storage import atomic_write

MODES = {  # name: (bf16, channels_last, compile)
    "fp32": (False, False, False),
    "bf16": (True, False, False),
    "bf16+channels_last": (True, True, False),
    "bf16+compile": (True, True, True),
    "fp32+compile": (False, False, True),  # where bf16 is emulated (CPUs): what compiling gains on its own
}


@dataclass
class PerfResult:
    compute: dict[str, dict] = field(default_factory=dict)  # mode -> clips_per_s, peak_gb | error
    loader: dict[str, dict] = field(default_factory=dict)  # "workers=N" -> clips_per_s
    full: dict = field(default_factory=dict)  # clips_per_s, data_wait_fraction, workers


def _peak_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB, the process so far


def _method(cfg: Config, prepare: bool = False):
    """The method to time; with `prepare`, its stages run as in a run (a tokenizer trained on the captions),
    otherwise a method that reads captions gets a tokenizer of a few words (timing needs only the shapes)."""
    from harness.pretraining import prepare_stages, stage_for

    encoder = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    method = catalog.METHODS.get(cfg.method)(encoder, cfg.method_cfg)
    if prepare:
        prepare_stages(method, stage_for(cfg, progress=False))
    elif getattr(method, "tokenizer", False) is None:
        import tempfile

        from harness.models.text import tokenizer_for

        with tempfile.TemporaryDirectory() as tmp:
            method.tokenizer, _ = tokenizer_for(cfg.method_cfg.text, ["a red digit moves up then shrinks."], {}, Path(tmp),
                                                log=lambda m: None)
    if method.sample_spec().label is not None:
        method.setup_labels(tuple(str(k) for k in range(10)))
    return method


def synthetic_batch(method, batch: int, device: torch.device, seed: int | None = None) -> dict:
    """A batch of random clips (and labels, audio and captions when the method's sample spec asks for them)
    in the shapes the data path gives: for timing a step and for the methods' contract tests."""
    spec, c = method.sample_spec(), method.encoder.clip_spec
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    out = {"clips": torch.randn(batch, spec.views, 3, c.frames, c.crop_size, c.crop_size, generator=g)}
    if spec.label is not None:
        out["label"] = torch.arange(batch) % 5
    if "audio" in spec.streams:
        samples = round(((c.frames - 1) * c.stride + 1) / c.fps * spec.audio_rate)
        out["audio"] = torch.randn(batch, spec.views, samples, generator=g) * 0.1
        out["audio_valid"] = torch.ones(batch, dtype=torch.bool)
    if "text" in spec.streams:
        n = batch * spec.views * spec.captions
        ids, mask = spec.tokenizer.encode(["a red 3 moves up.", "a blue 5 shrinks."] * n)
        shape = (batch, spec.views, spec.captions, -1)
        out.update(text_ids=ids[:n].view(shape), text_mask=mask[:n].view(shape),
                   text_valid=torch.ones(shape[:3], dtype=torch.bool))
    return {k: v.to(device) for k, v in out.items()}


def _time_steps(cfg: Config, method, make_batch, steps: int, warmup: int, device: torch.device, bf16: bool,
                channels_last: bool, compile_: bool) -> tuple[float, int]:
    """Seconds and clips of `steps` timed training steps after `warmup` untimed ones."""
    prepare_model(method, device, channels_last)
    modules = method.trainable_modules()
    opt = build_optimizer(modules, cfg.pretrain, [method.lr_scale(m) for m in modules])
    params = [p for g in opt.param_groups for p in g["params"]]
    forward = torch.compile(method.losses) if compile_ else method.losses
    views = method.sample_spec().views
    clips, t0 = 0, 0.0
    method.train()
    for k in range(warmup + steps):
        if k == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        batch = make_batch()
        method.before_step(StepInfo(k, warmup + steps, 1))
        optimizer_step(method, forward, opt, params, batch, 0.01, bf16, cfg.pretrain, StepInfo(k, warmup + steps, 1),
              lambda: "perf")
        method.after_step(StepInfo(k, warmup + steps, 1))
        if k >= warmup:
            clips += batch["clips"].shape[0] * views
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, clips


def measure(cfg: Config, modes: list[str], workers: list[int], steps: int, warmup: int, batch: int,
            log=print) -> PerfResult:
    device = resolve_device(cfg.run)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ConfigError(f"--modes: unknown {', '.join(unknown)}; choose from {', '.join(MODES)}")
    res = PerfResult()
    probe = _method(cfg)
    spec = probe.sample_spec()
    views = spec.views
    for mode in modes:
        bf16, cl, comp = MODES[mode]
        seed_everything(0)
        method = _method(cfg)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        log(f"compute only, {mode}: {warmup} + {steps} steps of {batch} x {views} clips on {device.type}")
        try:
            secs, clips = _time_steps(cfg, method, lambda: synthetic_batch(probe, batch, device), steps,
                                      warmup, device, bf16, cl, comp)
            res.compute[mode] = {"clips_per_s": clips / secs, "peak_gb": _peak_gb(device)}
        except Exception as e:  # a mode this machine cannot run (no compiler for torch.compile): say so, go on
            res.compute[mode] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        del method
    if workers:
        _loader_and_full(cfg, res, workers, steps, warmup, batch, device, log)
    return res


def _loader_and_full(cfg: Config, res: PerfResult, workers: list[int], steps: int, warmup: int, batch: int,
                     device: torch.device, log) -> None:
    from torch.utils.data import DataLoader

    from harness.data.datasets import PretrainClips, VideoSet
    from harness.data.sampling import EpochBatches

    ds = catalog.DATASETS.get(cfg.pretrain.dataset)
    root, entries = ds.split(cfg.dataset_cfg, cfg.cache_root(), "pretrain", progress=False)
    method = _method(cfg, prepare=True)
    spec = method.sample_spec()
    labels = ds.labels(cfg.dataset_cfg, entries, spec.label)[1] if spec.label else None
    depth = 4 * max(workers)  # batches the workers prefetch: drained before timing, so the rate is steady state
    n = steps + warmup + depth

    finish = [lambda b: b]  # colour and normalisation, when `data.augment_on = "device"` leaves them to the step

    def loader(k: int) -> DataLoader:
        videos = VideoSet(root, entries, False, fps=cfg.backbone.clip.fps)  # decoded from disk: no frame cache
        data = PretrainClips.for_spec(videos, cfg, spec, 0, labels)
        finish[0] = data.finish
        if len(videos) < batch:
            raise ConfigError(f"--batch {batch}: the pre-training data has only {len(videos)} videos")
        epochs = -(-n // (len(videos) // batch))  # enough epochs of whole batches for n steps
        sampler = EpochBatches(len(videos), batch, epochs, 0)
        return DataLoader(data, batch_sampler=sampler, collate_fn=data.collate, num_workers=k,
                          pin_memory=device.type == "cuda", persistent_workers=k > 0,
                          prefetch_factor=4 if k > 0 else None)

    for k in workers:
        log(f"loader only, {k} workers: {warmup + 4 * k} + {steps} batches of {batch} videos (decoded from disk)")
        it, clips, t0 = iter(loader(k)), 0, 0.0
        skip = warmup + 4 * k
        for b in range(steps + skip):
            if b == skip:
                t0 = time.perf_counter()
            item = next(it)
            if b >= skip:
                clips += item["clips"].shape[0] * item["clips"].shape[1]
        res.loader[f"workers={k}"] = {"clips_per_s": clips / (time.perf_counter() - t0)}
        del it
    k = max(workers)
    bf16 = cfg.pretrain.precision == "bf16" or (cfg.pretrain.precision == "auto" and device.type == "cuda")
    log(f"full step, {k} workers, {'bf16' if bf16 else 'fp32'}")
    it = iter(loader(k))
    calls, waited = [0], [0.0]

    def next_batch() -> dict:
        t = time.perf_counter()
        out = finish[0](to_device(next(it), device))
        if calls[0] >= warmup + depth:  # only the timed steps' waits
            waited[0] += time.perf_counter() - t
        calls[0] += 1
        return out

    seed_everything(0)
    secs, clips = _time_steps(cfg, method, next_batch, steps, warmup + depth, device, bf16, False, False)
    res.full = {"workers": k, "clips_per_s": clips / secs, "precision": "bf16" if bf16 else "fp32",
                "data_wait_fraction": min(1.0, waited[0] / max(secs, 1e-9))}


def table(res: PerfResult) -> str:
    base = res.compute.get("fp32", {}).get("clips_per_s")
    lines = ["| measurement | clips/s | vs compute fp32 | peak memory (GB) |", "|---|---|---|---|"]

    def ratio(x: float) -> str:
        return f"{x / base:.2f}x" if base else ""

    for mode, r in res.compute.items():
        if "error" in r:
            lines.append(f"| compute only, {mode} | not run: {r['error']} | | |")
        else:
            lines.append(f"| compute only, {mode} | {r['clips_per_s']:.1f} | {ratio(r['clips_per_s'])} | "
                         f"{r['peak_gb']:.2f} |")
    for name, r in res.loader.items():
        lines.append(f"| loader only, {name} | {r['clips_per_s']:.1f} | {ratio(r['clips_per_s'])} | |")
    if res.full:
        lines.append(f"| full step ({res.full['precision']}, workers={res.full['workers']}) | "
                     f"{res.full['clips_per_s']:.1f} | {ratio(res.full['clips_per_s'])} | |")
        lines.append(f"\nThe full step waited for data {100 * res.full['data_wait_fraction']:.0f}% of its time. "
                     "CPU peak memory is the process's maximum resident size so far (all modes before it included).")
    return "\n".join(lines)


def write(res: PerfResult, cfg: Config, settings: dict) -> Path:
    out = cfg.results_root() / "perf"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = out / f"{stamp}-{cfg.method}-{cfg.backbone.name}-{uuid.uuid4().hex[:6]}.json"
    body = {"kind": "perf", "method": cfg.method, "backbone": cfg.backbone.name, "profile": cfg.profile,
            "dataset": cfg.pretrain.dataset,
            "settings": settings, "compute": res.compute, "loader": res.loader, "full": res.full,
            "versions": versions(), "host": platform.node(), "finished": datetime.now(timezone.utc).isoformat()}
    atomic_write(path, lambda f: json.dump(body, f, indent=1))
    return path
