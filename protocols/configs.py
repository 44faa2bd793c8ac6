"""Config schemas of the protocols: one dataclass per protocol, typed and validated, with no torch import.

`bookkeeping` names the fields that do not change what a protocol measures (which tasks it runs,
how many videos go through the encoder at once); everything else identifies the protocol's
variant in the leaderboard. The sources of the defaults are in docs/protocols.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.errors import ConfigError


@dataclass
class LinearConfig:
    """Paper: 60 epochs, cosine, warm-up 8 epochs, wd 0, 10 temporal x 3 spatial test views."""

    bookkeeping: ClassVar[tuple[str, ...]] = ("tasks", "feature_batch")

    tasks: list[str]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: int
    train_views: int  # temporal clips per training video (centre crop) used as training features
    temporal_views: int
    spatial_views: int
    recompute_bn: bool
    standardize: bool
    feature_batch: int  # videos per encoder call during extraction

    def validate(self) -> None:
        if self.spatial_views not in (1, 3):
            raise ConfigError(f"protocols.linear.spatial_views: 1 or 3, got {self.spatial_views}")
        for k in ("epochs", "batch_size", "train_views", "temporal_views", "feature_batch"):
            if getattr(self, k) < 1:
                raise ConfigError(f"protocols.linear.{k}: must be >= 1, got {getattr(self, k)}")
        for k in ("lr",):
            if not getattr(self, k) > 0:
                raise ConfigError(f"protocols.linear.{k}: must be > 0, got {getattr(self, k)}")
        for k in ("weight_decay", "warmup_epochs"):
            if getattr(self, k) < 0:
                raise ConfigError(f"protocols.linear.{k}: must be >= 0, got {getattr(self, k)}")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"protocols.linear.warmup_epochs ({self.warmup_epochs}) must be <= epochs ({self.epochs})")
        if not self.tasks:
            raise ConfigError("protocols.linear.tasks: name at least one task")
