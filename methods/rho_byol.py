"""ρBYOL (Feichtenhofer et al., CVPR 2021): BYOL with ρ clips per video as positives.

Online = encoder + projector + predictor; target = momentum copy of encoder + projector with
m annealed from `momentum` to 1 by a half cosine. Every clip predicts the target embedding of
every other clip of the same video (ρ=1: two augmentations of one clip). Settings and their
sources are in docs/methods.md.

One deliberate difference: all clips go through the encoder in one batched call (BN statistics
over ρ·B clips) rather than ρ sequential calls; it is faster and the loss is the paper's average
over ρ sub-losses (the released code sums their gradients, which only rescales the LR).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from methods.base import Method, SampleSpec, StepInfo, views_first
from methods.configs import RhoByolConfig
from methods.heads import mlp
from methods.losses import rho_byol_loss
from methods.momentum import cosine_momentum, ema_update, frozen_copy


class RhoByol(Method):
    """Online encoder + projector + predictor regress the momentum target's embeddings of the other clips."""

    def __init__(self, encoder, cfg: RhoByolConfig):
        super().__init__(encoder, cfg)
        self.projector = mlp(encoder.feature_dim, cfg.proj_hidden, cfg.proj_dim)
        self.predictor = mlp(cfg.proj_dim, cfg.pred_hidden, cfg.proj_dim)
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(self.projector)
        # a tensor, changed in place each step: a float attribute read in `losses` would make torch.compile
        # guard on its value and recompile the step every time it moves (not saved: a function of progress)
        self.register_buffer("momentum", torch.tensor(float(cfg.momentum)), persistent=False)

    def sample_spec(self) -> SampleSpec:
        return SampleSpec(clips=self.cfg.rho)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.encoder, self.projector, self.predictor]

    def lr_scale(self, module: nn.Module) -> float:
        return self.cfg.pred_lr_scale if module is self.predictor else 1.0

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x, v = views_first(batch["clips"])
        preds = self.predictor(self.projector(self.encoder(x))).chunk(v)
        with torch.no_grad():
            targets = self.target_projector(self.target_encoder(x)).chunk(v)
        loss = rho_byol_loss(list(preds), list(targets))
        if self.cfg.reduction == "sum":  # the released code's one backward per query clip: the sub-losses add
            loss = loss * v
        return {"loss": loss, "momentum": self.momentum.clone()}

    def after_step(self, info: StepInfo) -> None:
        # m is a function of progress alone, so a resumed run continues the schedule exactly
        m = cosine_momentum(self.cfg.momentum, info.progress)
        self.momentum.fill_(m)
        ema_update(self.target_encoder, self.encoder, m)
        ema_update(self.target_projector, self.projector, m)
