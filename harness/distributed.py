"""Collective helpers the losses use, so one loss is correct in one process and under `torchrun`.

Every helper is the identity when `torch.distributed` is not initialised (or has one process), so
the single-process path pays nothing. Gathering *with* gradient is a small autograd function: its
backward sends each rank the gradient of its own rows, summed over ranks, which is what a loss over
the global batch needs once DDP averages the gradients (see docs/methods.md, "Distributed losses").
It is written here because torch's public differentiable gather
(`torch.distributed.nn.functional.all_gather`) is deprecated in torch 2.14 in favour of a private module.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


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
