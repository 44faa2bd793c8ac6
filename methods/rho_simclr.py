"""ρSimCLR (Feichtenhofer et al., CVPR 2021): SimCLR's InfoNCE with ρ clips per video as positives.

Encoder + projection MLP; every clip of a video is a positive for every other clip of it, and
every other clip of the (global) batch is a negative (`info_nce_loss`, τ = 0.1). ρ = 1: two
augmentations of one clip. Settings, sources and the released code's variants are in docs/methods.md.
"""
from __future__ import annotations

import torch

from methods.base import ProjectedMethod, views_first
from methods.configs import RhoSimclrConfig
from methods.losses import info_nce_loss


class RhoSimclr(ProjectedMethod):
    """Projected clip embeddings contrasted across the batch; the clips of one video attract."""

    cfg: RhoSimclrConfig

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x, v = views_first(batch["clips"])
        z = self.embed(x, v)
        if self.cfg.pairs == "chain":  # released code: pairs (k, k+1) only, one NT-Xent each
            loss = torch.stack([info_nce_loss(z[k:k + 2], self.cfg.temperature) for k in range(v - 1)]).mean()
        else:
            loss = info_nce_loss(z, self.cfg.temperature)
        return {"loss": loss}
