"""Config schemas of the methods: one dataclass per method, typed and validated, with no torch import.

They live apart from the method modules so that `bench config show` and config validation stay
instant: a method module builds networks and imports torch, its settings do not need to. The
defaults are the paper's values; the sources are in docs/methods.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.errors import ConfigError


@dataclass
class RandomInitConfig:
    """No options: the encoder's own initialisation under the run's seed."""

    pretrains: ClassVar[bool] = False  # the encoder is scored as initialised


@dataclass
class RhoByolConfig:
    """ρBYOL. Paper: projector 2048-4096-256 and predictor 256-4096-256, both with BN; m_base 0.996.

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
        if self.rho < 1:
            raise ConfigError(f"methods.rho_byol.rho: need rho >= 1, got {self.rho}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"methods.rho_byol.momentum: need 0 <= m < 1, got {self.momentum}")
        if not self.pred_lr_scale > 0:
            raise ConfigError(f"methods.rho_byol.pred_lr_scale: must be > 0, got {self.pred_lr_scale}")
        for k in ("proj_hidden", "proj_dim", "pred_hidden"):
            if getattr(self, k) < 1:
                raise ConfigError(f"methods.rho_byol.{k}: must be >= 1, got {getattr(self, k)}")
