"""ρBYOL (Feichtenhofer et al., CVPR 2021): BYOL with ρ clips per video as positives.

Online = encoder + projector + predictor; target = momentum copy of encoder + projector with
m annealed from `momentum` to 1 by a half cosine. Every clip predicts the target embedding of
every other clip of the same video (ρ=1: two augmentations of one clip). Settings and sources
are in shared/spec/rho_methods.md.

One deliberate difference: all clips go through the encoder in one batched call (BN statistics
over ρ·B clips) rather than ρ sequential calls; it is faster and the loss is the paper's average
over ρ sub-losses (the released code sums their gradients, which only rescales the LR).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from harness.catalog import METHODS
from methods.base import Method, SampleSpec, views_first
from methods.heads import mlp
from methods.losses import cosine_momentum, ema_update, rho_byol_loss


@dataclass
class RhoByolConfig:
    """Paper: projector 2048-4096-256 and predictor 256-4096-256, both with BN; m_base 0.996.

    `pred_lr_scale` multiplies the predictor's LR (1 = the paper). A predictor that adapts faster
    than the encoder speeds up BYOL's bootstrapping (DirectPred, Tian et al. 2021; SimSiam keeps
    its predictor LR fixed for the same reason), which matters on schedules of a few thousand steps.
    """

    rho: int = 2
    proj_hidden: int = 4096
    proj_dim: int = 256
    pred_hidden: int = 4096
    momentum: float = 0.996
    pred_lr_scale: float = 1.0

    def validate(self) -> None:
        from harness.config import ConfigError

        if self.rho < 1:
            raise ConfigError(f"methods.rho_byol.rho: need rho >= 1, got {self.rho}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"methods.rho_byol.momentum: need 0 <= m < 1, got {self.momentum}")
        if not self.pred_lr_scale > 0:
            raise ConfigError(f"methods.rho_byol.pred_lr_scale: must be > 0, got {self.pred_lr_scale}")
        for k in ("proj_hidden", "proj_dim", "pred_hidden"):
            if getattr(self, k) < 1:
                raise ConfigError(f"methods.rho_byol.{k}: must be positive")


@METHODS.register("rho_byol")
class RhoByol(Method):
    config_class = RhoByolConfig
    description = "ρBYOL: momentum target, predictor, ρ clips per video as positives"

    def __init__(self, encoder, cfg: RhoByolConfig):
        super().__init__(encoder, cfg)
        self.projector = mlp(encoder.feature_dim, cfg.proj_hidden, cfg.proj_dim)
        self.predictor = mlp(cfg.proj_dim, cfg.pred_hidden, cfg.proj_dim)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in [*self.target_encoder.parameters(), *self.target_projector.parameters()]:
            p.requires_grad_(False)
        self.momentum = cfg.momentum

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
        return {"loss": loss, "momentum": torch.tensor(self.momentum)}

    def after_step(self, progress: float) -> None:
        # m is a function of progress alone, so a resumed run continues the schedule exactly
        self.momentum = cosine_momentum(self.cfg.momentum, progress)
        ema_update(self.target_encoder, self.encoder, self.momentum)
        ema_update(self.target_projector, self.projector, self.momentum)
