"""The one training loop: optimiser, warm-up + cosine LR, clipping, precision, atomic checkpoints, resume.

A checkpoint holds the method (encoder, heads, momentum targets), the optimiser, the schedule
position, the RNG states and the step. The data order is a function of (seed, step), so a run
killed at any point and resumed from its last checkpoint reaches the same weights as one that
was never interrupted.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn

from harness.atomic import atomic_write
from harness.config import PretrainConfig, RunConfig, resolved_precision
from harness.errors import ConfigError, NonFiniteLossError
from harness.progress import progress_bar

__all__ = ["NonFiniteLossError", "resolve_device", "seed_everything", "use_bf16", "LARS", "build_optimizer",
           "lr_at", "atomic_save", "train", "TrainStats"]


# ----------------------------------------------------------------------------- device, seeds


def resolve_device(run: RunConfig) -> torch.device:
    """`auto` is CUDA when there is one; asking for CUDA on a machine without it is a config mistake."""
    if run.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device='cuda' but this machine has no CUDA device; use 'auto' or 'cpu'")
    if run.device == "cuda" or (run.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def use_bf16(cfg: PretrainConfig, device: torch.device) -> bool:
    return resolved_precision(cfg.precision, device.type) == "bf16"


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """Move to the device; on CUDA optionally switch convolutions to channels_last_3d."""
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # static shapes: let cuDNN pick the fastest kernels
        if channels_last:
            model.to(memory_format=torch.channels_last_3d)
            for m in model.modules():
                if hasattr(m, "channels_last"):
                    m.channels_last = True
    return model


# ----------------------------------------------------------------------------- optimisation


def param_groups(modules: Iterable[nn.Module], weight_decay: float,
                 lr_scales: Iterable[float] | None = None) -> list[dict]:
    """Weights decay and get LARS scaling; biases and norm parameters (ndim <= 1) get neither.

    `lr_scales` (one per module, default 1) multiply the scheduled LR of that module's groups:
    the way a method asks for a faster head, e.g. BYOL's predictor (Method.lr_scale).
    """
    modules = list(modules)
    scales = list(lr_scales) if lr_scales is not None else [1.0] * len(modules)
    groups: dict[tuple[float, bool], dict] = {}
    seen: set[int] = set()
    for m, scale in zip(modules, scales, strict=True):
        for p in m.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            decay = p.ndim > 1
            g = groups.setdefault((float(scale), decay), {
                "params": [], "weight_decay": weight_decay if decay else 0.0, "lars": decay, "lr_scale": float(scale)})
            g["params"].append(p)
    return sorted(groups.values(), key=lambda g: (g["lr_scale"] != 1.0, not g["lars"]))


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al., 2017), as the ρ study uses.

    Written by hand because torch has none. Per tensor, the step is scaled by
    trust * |w| / (|g| + wd |w|); groups with `lars=False` (biases, BN) take plain SGD steps.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust: float = 0.001, nesterov: bool = True):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust=trust, nesterov=nesterov, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if g["weight_decay"]:
                    d = d.add(p, alpha=g["weight_decay"])
                if g["lars"]:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(p.grad)
                    scale = g["trust"] * w_norm / (g_norm + g["weight_decay"] * w_norm + 1e-12)
                    d = d * torch.where((w_norm > 0) & (g_norm > 0), scale, torch.ones_like(scale))
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = d.clone()
                else:
                    buf.mul_(g["momentum"]).add_(d)
                p.add_(d.add(buf, alpha=g["momentum"]) if g["nesterov"] else buf, alpha=-g["lr"])


def build_optimizer(modules: Iterable[nn.Module], cfg: PretrainConfig,
                    lr_scales: Iterable[float] | None = None) -> torch.optim.Optimizer:
    groups = param_groups(modules, cfg.weight_decay, lr_scales)
    if cfg.optimizer == "sgd":
        for g in groups:
            g.pop("lars")
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        for g in groups:
            g.pop("lars")
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return LARS(groups, lr=cfg.lr, momentum=cfg.momentum)


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up from ~0 over `warmup` steps, then half-cosine to 0 at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return base * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


# ----------------------------------------------------------------------------- checkpoints


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` atomically (see `harness.atomic`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def rng_state() -> dict:
    s = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def non_finite_tensors(module: nn.Module) -> list[str]:
    """Names of parameters and buffers (BN statistics included) holding NaN or inf."""
    return [k for k, v in module.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]


def set_rng_state(s: dict) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


# ----------------------------------------------------------------------------- the loop


@dataclass
class TrainStats:
    """What a training run cost and how it ended; goes into the run record."""

    steps: int = 0
    total_steps: int = 0
    seconds: float = 0.0
    clips_per_s: float = 0.0
    final_loss: float = float("nan")
    resumed_from_step: int = 0
    peak_memory_gb: float = 0.0
    precision: str = "fp32"
    bad_videos: dict[str, str] = field(default_factory=dict)
    loss_curve: list[tuple[int, float]] = field(default_factory=list)


def train(
    method: nn.Module,
    make_loader: Callable[[int], Iterable[dict]],
    total_steps: int,
    clips_per_sample: int,
    cfg: PretrainConfig,
    device: torch.device,
    ckpt_path: Path,
    resume: bool,
    on_bad: Callable[[list], None] = lambda bad: None,
    fingerprint: str = "",
    progress: bool = True,
    log: Callable[[str], None] = lambda msg: None,
) -> TrainStats:
    """Pre-train `method` for `total_steps`, checkpointing to `ckpt_path`.

    `make_loader(start_step)` returns one batch for each of the steps start_step..total_steps-1. A
    batch whose videos were all unreadable still counts as a step (no update), so the step count,
    the data order and `--resume` stay aligned with the sampler.
    """
    bf16 = use_bf16(cfg, device)
    prepare_model(method, device, cfg.channels_last)
    modules = method.trainable_modules()
    optimizer = build_optimizer(modules, cfg, [method.lr_scale(m) for m in modules])
    params = [p for g in optimizer.param_groups for p in g["params"]]
    stats = TrainStats(total_steps=total_steps, precision="bf16" if bf16 else "fp32")
    per_epoch_hint = max(total_steps // max(cfg.epochs, 1), 1)
    warmup = int(round(cfg.warmup_epochs * per_epoch_hint))
    step = 0
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != fingerprint:
            raise ConfigError(f"{ckpt_path} belongs to another configuration; delete it or drop --resume")
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        step = state["step"]
        stats.bad_videos = state.get("bad_videos", {})
        stats.loss_curve = [tuple(x) for x in state.get("loss_curve", [])]
        stats.resumed_from_step = step
        log(f"resuming from step {step} of {total_steps} ({ckpt_path})")
    elif resume:
        log(f"--resume: no unfinished pre-training of this configuration at {ckpt_path}; starting at step 0")
    forward = torch.compile(method.losses) if cfg.compile else method.losses
    last_good = ckpt_path if ckpt_path.exists() and resume else None

    def where() -> str:
        return f"Last good checkpoint: {last_good or 'none yet'}"

    def save(at: int) -> None:
        nonlocal last_good
        bad = non_finite_tensors(method)
        if bad:  # never leave a "last good" checkpoint that cannot be resumed
            raise NonFiniteLossError(f"non-finite values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} "
                                     f"after step {at}; training stopped without saving them. {where()}. "
                                     "Lower pretrain.lr or enable pretrain.grad_clip.")
        atomic_save({
            "method": method.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": {"step": at, "total": total_steps, "warmup": warmup},
            "rng": rng_state(), "step": at, "fingerprint": fingerprint,
            "bad_videos": stats.bad_videos, "loss_curve": stats.loss_curve,
        }, ckpt_path)
        last_good = ckpt_path

    bar = progress_bar(total_steps, step, "pretrain", "step", progress)
    method.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_start, timed_clips, t_timed = time.perf_counter(), 0, None
    loss_sum, loss_n, loss = 0.0, 0, float("nan")
    try:
        for batch in make_loader(step):
            if batch.get("bad"):
                on_bad(batch["bad"])
                stats.bad_videos.update(dict(batch["bad"]))
            lr = lr_at(step, total_steps, warmup, cfg.lr)
            if "clips" in batch:
                loss = _step(method, forward, optimizer, params, batch, lr, bf16, device, cfg, step, where)
                loss_sum += loss
                loss_n += 1
                n_clips = batch["clips"].shape[0] * clips_per_sample
                if t_timed is None:  # the first step pays for warm-up and caches; time from the second
                    t_timed = time.perf_counter()
                else:
                    timed_clips += n_clips
            method.after_step(step / max(total_steps - 1, 1))
            step += 1
            if loss_n and (step % cfg.log_every == 0 or step == total_steps):
                stats.loss_curve.append((step, loss_sum / loss_n))
                loss_sum, loss_n = 0.0, 0
            if step % cfg.checkpoint_every == 0 or step == total_steps:
                save(step)
            rate = timed_clips / max(time.perf_counter() - t_timed, 1e-9) if timed_clips else 0.0
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", clips_s=f"{rate:.0f}", refresh=False)
            bar.update()
            if bar.n == stats.resumed_from_step + 1:
                bar.restart_clock()  # the first step paid for warm-up: estimates count from the second
    finally:
        bar.close()
    stats.steps = step
    stats.seconds = time.perf_counter() - t_start
    stats.clips_per_s = timed_clips / max(time.perf_counter() - t_timed, 1e-9) if t_timed and timed_clips else 0.0
    stats.final_loss = stats.loss_curve[-1][1] if stats.loss_curve else float("nan")
    if device.type == "cuda":
        stats.peak_memory_gb = torch.cuda.max_memory_allocated() / 2**30
    return stats


def _step(method, forward, optimizer, params, batch, lr, bf16, device, cfg, step, where) -> float:
    """One optimiser step on a batch; stops on a non-finite loss or gradient before anything is updated."""
    batch["clips"] = batch["clips"].to(device, non_blocking=True)
    for g in optimizer.param_groups:
        g["lr"] = lr * g["lr_scale"]
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        out = forward(batch)
    loss = out["loss"].float()
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"loss is {loss.item()} at step {step} (lr {lr:.3g}); training stopped. "
                                 f"{where()}. Lower pretrain.lr or enable pretrain.grad_clip.")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        if not torch.isfinite(norm):
            raise NonFiniteLossError(f"gradient norm is {norm.item()} at step {step}; training stopped. {where()}")
    optimizer.step()
    return loss.item()
