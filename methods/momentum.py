"""Momentum targets (BYOL's target network, MoCo's key encoder): a frozen copy of the online network,
updated after every step as an exponential moving average whose momentum follows a half cosine to 1."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy that the optimiser never updates: the momentum (EMA) target of BYOL and MoCo."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


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
