"""Loss functions as pure functions of embeddings, testable against hand-computed values."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def byol_pair_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's normalised MSE, 2 - 2 cos(p, z), averaged over the batch; no gradient into z."""
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1).mean()


def rho_byol_loss(preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """ρBYOL: every clip's prediction regresses every *other* clip's target, averaged over the
    ρ(ρ-1) ordered pairs ("the symmetric loss is the average over all ρ sub-losses", §3.2)."""
    v = len(preds)
    if v < 2 or len(targets) != v:
        raise ValueError(f"need >= 2 views with matching targets, got {v} and {len(targets)}")
    terms = [byol_pair_loss(preds[i], targets[j]) for i in range(v) for j in range(v) if i != j]
    return torch.stack(terms).mean()


def cosine_momentum(base: float, progress: float) -> float:
    """Target momentum annealed from `base` to 1 along a half cosine: 1 - (1-base)(cos(pi p)+1)/2."""
    return 1 - (1 - base) * (math.cos(math.pi * min(max(progress, 0.0), 1.0)) + 1) / 2


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, m: float) -> None:
    """target <- m * target + (1 - m) * online, over parameters only (BN buffers keep their own stats)."""
    t = [p for p in target.parameters()]
    o = [p.detach() for p in online.parameters()]
    torch._foreach_mul_(t, m)
    torch._foreach_add_(t, o, alpha=1 - m)
