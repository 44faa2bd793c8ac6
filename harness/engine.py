"""The one training loop: optimiser, warm-up + cosine LR, clipping, precision, atomic checkpoints, resume.

A checkpoint holds the method (encoder, heads, momentum targets), the optimiser, the schedule
position, the RNG states and the step. The data order is a function of (seed, step), so a run
killed at any point and resumed from its last checkpoint reaches the same weights as one that
was never interrupted.
"""
from __future__ import annotations

import contextlib
import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn

from harness import distributed as dist
from harness.config.sections import PretrainConfig, RunConfig, resolved_precision
from harness.errors import ConfigError, NonFiniteLossError
from harness.optim import build_optimizer, lr_at, scaled_lr
from harness.progress import progress_bar
from harness.runlog import NoLog, ScalarLog
from harness.storage import atomic_save, read_verified

__all__ = ["NonFiniteLossError", "resolve_device", "seed_everything", "derived_seed", "isolated_rng", "use_bf16", "train",
           "TrainStats", "StepInfo", "to_device"]


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


# ----------------------------------------------------------------------------- checkpoints


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


def derived_seed(seed: int, *names: str) -> int:
    """A 31-bit seed for one part of a run (a protocol's fit of some tasks), fixed by the run's seed and the
    part's names: the same whatever ran, resumed or was reused from the cache before it."""
    digest = hashlib.sha256("/".join([str(seed), *names]).encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


@contextlib.contextmanager
def isolated_rng(seed: int):
    """Run a block on its own random stream, seeded with `seed` (Python, NumPy, torch and CUDA), and give the
    caller back its own stream afterwards, as if the block had not drawn from it. A part that trains
    (a protocol's fit, a parent pre-training) is then exact whether an earlier part trained, resumed or was
    loaded from the cache, and the parts after it do not depend on that either."""
    saved = rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        set_rng_state(saved)


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
    term_curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # the other logged terms


@dataclass
class StepInfo:
    """Where training stands, as the method's hooks see it: the step (0-based), its epoch and the
    outputs of its forward pass (the `losses` dict, including non-scalar entries such as MoCo's keys)."""

    step: int
    total_steps: int
    steps_per_epoch: int
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    @property
    def progress(self) -> float:
        """In [0, 1]: 0 at the first step, 1 at the last (momentum schedules are functions of it)."""
        return self.step / max(self.total_steps - 1, 1)


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor of a batch (nested dicts, lists and tuples) to `device`; other values stay."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


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
    schedule: Callable[[int], float] | None = None,
    desc: str = "pretrain",
    distributed: bool = False,
    steps_per_epoch: int = 0,
    settings: str = "pretrain",
) -> TrainStats:
    """Train `method` for `total_steps`, checkpointing to `ckpt_path` (pre-training, and the protocols
    that train: `linear`, `finetune`). `schedule(step)` overrides the LR of `cfg`'s warm-up + cosine.
    `steps_per_epoch` (0: total_steps / cfg.epochs) places the epochs of the warm-up and the hooks' `epoch`;
    `cfg.warmup_steps`, when set, counts the warm-up in updates instead.

    `make_loader(start_step)` returns one batch for each of the steps start_step..total_steps-1. A
    batch whose videos were all unreadable still counts as a step (no update), so the step count,
    the data order and `--resume` stay aligned with the sampler.

    `distributed`: this process is one of several (`torchrun`), `make_loader` yields its share of each
    step's global batch, and the method is wrapped in DistributedDataParallel (gradients averaged over
    processes), its BatchNorms synchronised as `cfg.sync_bn` says. Logged terms are means over processes;
    only rank 0 writes the checkpoint; every rank reads it to resume.
    `settings` names the section whose `lr` and `grad_clip` a diverging run should change (`pretrain`, or a
    protocol's `protocols.finetune`).
    """
    bf16 = use_bf16(cfg, device)
    distributed = distributed and dist.world_size() > 1
    if distributed and cfg.sync_bn != "none":
        _sync_bn(method, cfg.sync_bn)
    prepare_model(method, device, cfg.channels_last)
    modules = method.trainable_modules()
    optimizer = build_optimizer(modules, cfg, [method.lr_scale(m) for m in modules])
    params = [p for g in optimizer.param_groups for p in g["params"]]
    stats = TrainStats(total_steps=total_steps, precision="bf16" if bf16 else "fp32")
    per_epoch = steps_per_epoch or max(total_steps // max(cfg.epochs, 1), 1)
    warmup = cfg.warmup_steps or int(round(cfg.warmup_epochs * per_epoch))
    base_lr = scaled_lr(cfg)
    step = 0
    state = read_verified(ckpt_path, lambda p: torch.load(p, map_location="cpu", weights_only=False), "checkpoint",
                          log) if resume else None
    if state is not None:
        if state.get("fingerprint") != fingerprint:
            raise ConfigError(f"{ckpt_path} belongs to another configuration; delete it or drop --resume")
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        stats.bad_videos = state.get("bad_videos", {})
        stats.loss_curve = [tuple(x) for x in state.get("loss_curve", [])]
        stats.term_curves = {k: [tuple(x) for x in v] for k, v in state.get("term_curves", {}).items()}
        stats.resumed_from_step = step
        log(f"resuming from step {step} of {total_steps} ({ckpt_path})")
    elif resume:
        log(f"--resume: no unfinished pre-training of this configuration at {ckpt_path}; starting at step 0")
    forward = method.losses
    if distributed:
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # buffers (BN statistics, MoCo's queue) stay each process's own: they agree by construction.
        # torch 2.14 renamed the switch; 2.11 knows the old name only
        quiet = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                 inspect.signature(DistributedDataParallel).parameters else {"broadcast_buffers": False})
        forward = DistributedDataParallel(_Losses(method), device_ids=[device.index] if device.type == "cuda" else None,
                                          **quiet)
    forward = torch.compile(forward) if cfg.compile else forward
    last_good = ckpt_path if ckpt_path.exists() and resume else None

    def where() -> str:
        return (f"Last good checkpoint: {last_good or 'none yet'}. Lower {settings}.lr or enable "
                f"{settings}.grad_clip")

    def save(at: int) -> None:
        nonlocal last_good
        bad = non_finite_tensors(method)
        if bad:  # never leave a "last good" checkpoint that cannot be resumed
            raise NonFiniteLossError(f"non-finite values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} "
                                     f"after step {at}; training stopped without saving them. {where()}.")
        if distributed:
            stats.bad_videos = {k: v for part in dist.all_gather_object(stats.bad_videos) for k, v in part.items()}
            if not dist.is_main():
                last_good = ckpt_path
                return
        atomic_save({
            "method": method.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": {"step": at, "total": total_steps, "warmup": warmup},
            "rng": rng_state(), "step": at, "fingerprint": fingerprint,
            "bad_videos": stats.bad_videos, "loss_curve": stats.loss_curve, "term_curves": stats.term_curves,
        }, ckpt_path)
        last_good = ckpt_path

    bar = progress_bar(total_steps, step, desc, "step", progress and dist.is_main())
    method.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_start, timed_clips, t_timed = time.perf_counter(), 0, None
    sums: dict[str, float] = {}  # every scalar term of `losses`, averaged over the steps of a log interval
    loss_n, loss = 0, float("nan")
    scalars_log = ScalarLog(ckpt_path.parent, step) if dist.is_main() else NoLog()
    t_interval, wait, clips_interval = time.perf_counter(), 0.0, 0
    batches = iter(make_loader(step))  # a DataLoader's iterator draws its base seed from the global RNG here
    if state is not None:  # so the state saved after step `step` is restored after that draw, as a fresh run has it
        set_rng_state(state["rng"])
    try:
        while True:
            t_ask = time.perf_counter()
            batch = next(batches, None)
            wait += time.perf_counter() - t_ask  # the step waits for data this long
            if batch is None:
                break
            if batch.get("bad"):
                on_bad(batch["bad"])
                stats.bad_videos.update(dict(batch["bad"]))
            lr = schedule(step) if schedule else lr_at(step, total_steps, warmup, base_lr, cfg.lr_schedule)
            info = StepInfo(step, total_steps, per_epoch)
            has_clips = "clips" in batch
            if distributed:  # every process steps, or none does: one whose share was all unreadable would hang
                has_clips = dist.all_reduce_mean(torch.tensor([float(has_clips)], device=device)).item() == 1.0
            if has_clips:
                batch = to_device(batch, device)
                method.before_step(info)
                with dist.synchronised() if distributed else contextlib.nullcontext():
                    info.outputs = optimizer_step(method, forward, optimizer, params, batch, lr, bf16, cfg, info, where,
                                         distributed)
                scalars = {k: v for k, v in info.outputs.items() if isinstance(v, torch.Tensor) and v.ndim == 0}
                # one device-to-host copy for all logged terms: a .item() each would synchronise once per term
                stacked = torch.stack([v.float().to(device) for v in scalars.values()])
                terms = dict(zip(scalars, (dist.all_reduce_mean(stacked) if distributed else stacked).tolist()))
                loss = terms["loss"]
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                loss_n += 1
                n_clips = batch["clips"].shape[0] * clips_per_sample * (dist.world_size() if distributed else 1)
                clips_interval += n_clips
                if t_timed is None:  # the first step pays for warm-up and caches; time from the second
                    t_timed = time.perf_counter()
                else:
                    timed_clips += n_clips
            method.after_step(info)
            step += 1
            if loss_n and (step % cfg.log_every == 0 or step == total_steps):
                now = time.perf_counter()
                scalars_log.add(step, {**{k if k == "loss" else f"term/{k}": v / loss_n for k, v in sums.items()},
                                       "lr": lr, "clips_per_s": clips_interval / max(now - t_interval, 1e-9),
                                       "data_wait_fraction": wait / max(now - t_interval, 1e-9)})
                t_interval, wait, clips_interval = now, 0.0, 0
                stats.loss_curve.append((step, sums.pop("loss") / loss_n))
                for k, v in sums.items():
                    stats.term_curves.setdefault(k, []).append((step, v / loss_n))
                sums, loss_n = {}, 0
            if step % cfg.checkpoint_every == 0 or step == total_steps:
                save(step)
            rate = timed_clips / max(time.perf_counter() - t_timed, 1e-9) if timed_clips else 0.0
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", clips_s=f"{rate:.0f}", refresh=False)
            bar.update()
            if bar.n == stats.resumed_from_step + 1:
                bar.restart_clock()  # the first step paid for warm-up: estimates count from the second
    finally:
        bar.close()
        scalars_log.close()
    stats.steps = step
    stats.seconds = time.perf_counter() - t_start
    stats.clips_per_s = timed_clips / max(time.perf_counter() - t_timed, 1e-9) if t_timed and timed_clips else 0.0
    stats.final_loss = stats.loss_curve[-1][1] if stats.loss_curve else float("nan")
    if device.type == "cuda":
        stats.peak_memory_gb = torch.cuda.max_memory_allocated() / 2**30
    return stats


class _Losses(nn.Module):
    """The method's `losses` as a module's forward, which is what DistributedDataParallel wraps."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, batch: dict) -> dict:
        return self.method.losses(batch)


def _sync_bn(method: nn.Module, which: str) -> None:
    """Synchronise the method's BatchNorms over processes: "all" of them, or "heads" (the MLP heads'
    BatchNorm1d layers; the backbones normalise with BatchNorm3d)."""
    dist.sync_batchnorm(method, nn.modules.batchnorm._BatchNorm if which == "all" else nn.BatchNorm1d)


def optimizer_step(method, forward, optimizer, params, batch, lr, bf16, cfg, info: StepInfo, where, distributed=False) -> dict:
    """One optimiser step on a batch already on the device; returns the method's outputs (loss detached).

    Stops on a non-finite loss or gradient before anything is updated. The method's
    `before_optimizer_step` hook runs between backward and the update (SwAV freezes its prototypes there).
    """
    for g in optimizer.param_groups:
        g["lr"] = lr * g["lr_scale"]
    with torch.autocast(batch["clips"].device.type, dtype=torch.bfloat16, enabled=bf16):
        out = forward(batch)
    loss = out["loss"].float()
    seen = dist.all_reduce_mean(loss.detach().clone()) if distributed else loss  # all processes stop together
    if not torch.isfinite(seen):
        raise NonFiniteLossError(f"loss is {seen.item()} at step {info.step} (lr {lr:.3g}); training stopped. "
                                 f"{where()}.")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        if not torch.isfinite(norm):
            raise NonFiniteLossError(f"gradient norm is {norm.item()} at step {info.step}; training stopped. {where()}.")
    info.outputs = out
    method.before_optimizer_step(info)
    optimizer.step()
    return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in out.items()}

