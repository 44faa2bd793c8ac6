"""Projection and prediction MLPs shared by the methods (SlowFast's MLPHead pattern), and momentum copies."""
from __future__ import annotations

import torch.nn as nn


def mlp(dim_in: int, hidden: int, dim_out: int, layers: int = 2, bn: bool = True) -> nn.Sequential:
    """Linear -> [BN] -> ReLU, repeated `layers - 1` times, then a plain Linear (no BN on the output).

    Hidden linears drop their bias when BN follows, as in the reference heads.
    """
    mods: list[nn.Module] = []
    d = dim_in
    for _ in range(layers - 1):
        mods.append(nn.Linear(d, hidden, bias=not bn))
        if bn:
            mods.append(nn.BatchNorm1d(hidden))
        mods.append(nn.ReLU(inplace=True))
        d = hidden
    mods.append(nn.Linear(d, dim_out))
    return nn.Sequential(*mods)
