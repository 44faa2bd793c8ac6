"""Config schemas of the backbones, with no torch import (the encoders are in `harness.backbones`)."""
from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ConfigError


@dataclass
class Small3DConfig:
    """Width of the first stage; stages double it (w, 2w, 4w, 8w); features are 8w-dimensional.

    `zero_init_residual` starts the residual block's last BN at gamma 0, so the block begins as an
    identity (Goyal et al. 2017; pySlowFast's ZERO_INIT_FINAL_BN, which its supervised configs turn
    on and the released ρ pre-training configs leave off). It made ρBYOL's embedded-profile result
    much less seed-dependent (docs/tuning.md); it applies to small3d only.
    """

    width: int = 16
    zero_init_residual: bool = True

    def validate(self) -> None:
        if self.width < 1:
            raise ConfigError(f"backbones.small3d.width: must be >= 1, got {self.width}")


@dataclass
class NoOptions:
    """This backbone has no options of its own."""


@dataclass
class SlowR50Config:
    """`zero_init_residual`: pytorchvideo's builder starts the last BN of every bottleneck at gamma 0;
    the released ρ pre-training configs do not (PySlowFast's ZERO_INIT_FINAL_BN is off), so the
    default is off. Turn it on to get the builder's initialisation (PySlowFast's supervised and AVA
    configs use it)."""

    zero_init_residual: bool = False
