"""Processes and collectives: one training run over several processes started by `torchrun`.

`setup()` joins the process group that `torchrun` (or Slurm through submitit) describes in the
environment (gloo on CPU, NCCL on GPU) and picks this process's device. The collective helpers the
losses use make one loss correct in one process and under `torchrun`.

Every helper is the identity when `torch.distributed` is not initialised (or has one process), so
the single-process path pays nothing. Gathering *with* gradient is a small autograd function: its
backward sends each rank the gradient of its own rows, summed over ranks, which is what a loss over
the global batch needs once DDP averages the gradients (see docs/methods.md, "Distributed losses").
It is written here because torch's public differentiable gather
(`torch.distributed.nn.functional.all_gather`) is deprecated in torch 2.14 in favour of a private module.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


def die_with_parent() -> None:
    """Have the kernel kill this process when the process that started it dies (Linux `PR_SET_PDEATHSIG`).

    torchrun starts each worker in a session of its own, so a SIGKILL of the launcher's process group
    reaches no worker: without this they train on as orphans and write a record after `bench` has died.
    Elsewhere (no prctl) nothing is done."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def launched() -> bool:
    """Whether this process was started as one of several (`torchrun` sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the process group of a multi-process launch once; return this process's device (its own GPU).

    The default of 30 minutes for a collective is kept: rank 0 alone may prepare a dataset meanwhile."""
    if not launched():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        local = local if torch.cuda.device_count() > 1 else 0  # a launcher that shows each process its one GPU
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=30))
    return device


def is_main() -> bool:
    """Rank 0: the process that writes checkpoints, logs and run records."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's `obj` on every rank (a decision, an exception message, a path)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj) -> list:
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(out, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every rank's loss may depend on these rows
        return grad[rank() * ctx.rows:(rank() + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `x` along dim 0 (rank order); gradients flow back to each owner."""
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `x` along dim 0 without gradient (keys for a queue, features to score)."""
    if world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


@torch.no_grad()
def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of `x` over ranks, in place, returned for chaining (Sinkhorn's column sums)."""
    if world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


@torch.no_grad()
def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Maximum of `x` over ranks, in place, returned for chaining."""
    if world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


@torch.no_grad()
def shuffle_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MoCo's shuffle-BN: this rank's share of the global batch in a random order shared by all ranks.

    Returns the shuffled local batch and the permutation `unshuffle_batch` needs. In one process
    it returns `x` unchanged: the BN batch is the whole batch, so a shuffle would change nothing.
    """
    n = world_size()
    if n == 1:
        return x, torch.arange(len(x), device=x.device)
    full = gather(x)
    perm = torch.randperm(len(full), device=x.device)
    dist.broadcast(perm, src=0)
    return full[perm.view(n, -1)[rank()]], perm


@torch.no_grad()
def unshuffle_batch(y: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Undo `shuffle_batch` on its outputs: this rank's rows of the global batch, in the original order."""
    n = world_size()
    if n == 1:
        return y
    full = gather(y)
    restored = torch.empty_like(full)
    restored[perm] = full
    return restored.view(n, -1, *full.shape[1:])[rank()]


@torch.no_grad()
def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over ranks, in place (logged loss terms: each rank's mean over its equal share)."""
    if world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= world_size()
    return x


class _SumWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every rank's loss depends on the global sum
        return grad


def sum_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum of `x` over ranks; gradients flow back to every rank's share."""
    return x if world_size() == 1 else _SumWithGrad.apply(x)


_SYNC = {"on": False, "shard": False}


class sharded:
    """Within this context the frozen-encoder protocols split their videos over the processes
    (`protocols.multiview`) and gather the features, so every process holds the whole extraction."""

    def __enter__(self):
        self.before, _SYNC["shard"] = _SYNC["shard"], world_size() > 1

    def __exit__(self, *exc):
        _SYNC["shard"] = self.before


def sharding() -> bool:
    return _SYNC["shard"] and world_size() > 1


class synchronised:
    """Within this context, `GlobalBatchNorm` layers normalise over every process's share of the batch;
    outside it (the protocols, which rank 0 runs alone) they are plain BatchNorm."""

    def __enter__(self):
        self.before, _SYNC["on"] = _SYNC["on"], True

    def __exit__(self, *exc):
        _SYNC["on"] = self.before


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch, on any device.

    torch's `SyncBatchNorm` runs on GPUs only and syncs whenever a process group exists; this computes
    every rank's per-channel sum, sum of squares and count with one differentiable all-reduce, so a CPU
    run over N processes normalises as one process over the whole batch (the test of `torchrun` runs
    relies on it), and only inside `synchronised()`. Running statistics use the global unbiased variance."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1 or not _SYNC["on"]:
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=torch.float32)
        stats = sum_with_grad(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1].detach()
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp(min=1), alpha=m)
                self.num_batches_tracked.add_(1)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, only: type = nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """Replace every BatchNorm of `module` (of class `only`) by a `GlobalBatchNorm` holding the same
    parameters and running statistics; returns `module` (or its replacement when it is one itself)."""
    if isinstance(module, only) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.load_state_dict(module.state_dict())
        for mine, theirs in zip(new.parameters(), module.parameters()):
            mine.requires_grad_(theirs.requires_grad)  # a momentum target's BN stays out of the optimiser
        return new.train(module.training)
    for name, child in module.named_children():
        setattr(module, name, sync_batchnorm(child, only))
    return module
