"""ρSwAV (Feichtenhofer et al., CVPR 2021): SwAV's swapped prediction with ρ clips per video.

Each clip's projected, L2-normalised embedding is scored against K prototypes; the codes of a clip
(Sinkhorn-Knopp over the batch, no gradient) are predicted from the scores of every other clip of
its video (`swav_loss`). The prototypes are renormalised to unit length after every update and
stay frozen for the first epoch. Settings, sources and the released code's variants: docs/methods.md.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from methods.base import ProjectedMethod, StepInfo, views_first
from methods.configs import RhoSwavConfig
from methods.losses import swav_loss


class RhoSwav(ProjectedMethod):
    """Clips of one video predict each other's prototype assignments."""

    def __init__(self, encoder, cfg: RhoSwavConfig):
        super().__init__(encoder, cfg)
        self.prototypes = nn.Linear(cfg.proj_dim, cfg.prototypes, bias=False)
        self.normalize_prototypes()
        views = max(cfg.rho, 2)
        self.targets = list(range(cfg.assign_clips or views))
        # SwAV's queue: past embeddings of each target clip, newest first; all-zero rows are unfilled
        self.register_buffer("queue", torch.zeros(len(self.targets), cfg.queue_size, cfg.proj_dim))
        self.queue_on = False  # set per step by before_step: the queue joins from `queue_start_epoch`

    def trainable_modules(self) -> list[nn.Module]:
        return [*super().trainable_modules(), self.prototypes]

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        w = self.prototypes.weight
        w.copy_(F.normalize(w, dim=1))

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x, v = views_first(batch["clips"])
        z = [F.normalize(t, dim=1) for t in self.embed(x, v)]
        scores = [self.prototypes(t) for t in z]
        queue_scores = None
        if self.queue_on:
            queue_scores = self._queue_scores()
        loss = swav_loss(scores, self.cfg.epsilon, self.cfg.sinkhorn_iters, self.cfg.temperature,
                         self.targets, queue_scores)
        out = {"loss": loss}
        if self.cfg.queue_size:
            out["embeddings"] = torch.stack([z[a].detach() for a in self.targets])
        return out

    @torch.no_grad()
    def _queue_scores(self) -> list[torch.Tensor | None]:
        """Scores of the stored embeddings under the current prototypes, once the queue is full."""
        if not torch.any(self.queue[:, -1] != 0):
            return [None] * len(self.targets)
        return [self.prototypes(q) for q in self.queue]

    def before_step(self, info: StepInfo) -> None:
        self.queue_on = bool(self.cfg.queue_size) and info.epoch >= self.cfg.queue_start_epoch

    def before_optimizer_step(self, info: StepInfo) -> None:
        if info.epoch < self.cfg.freeze_prototypes_epochs:
            self.prototypes.weight.grad = None  # SwAV: prototypes stay fixed for the first epoch

    @torch.no_grad()
    def after_step(self, info: StepInfo) -> None:
        if info.epoch >= self.cfg.freeze_prototypes_epochs:  # frozen ones were not updated: leave them bit-exact
            self.normalize_prototypes()
        emb = info.outputs.get("embeddings")
        if emb is not None and info.epoch >= self.cfg.queue_start_epoch:  # filled from its start epoch on
            b = min(emb.shape[1], self.queue.shape[1])
            self.queue[:, b:] = self.queue[:, :-b].clone()
            self.queue[:, :b] = emb[:, :b].to(self.queue.dtype)
