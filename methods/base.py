"""The Method contract: built from an encoder and its config section, it says what a training
sample holds, turns a batch into a dict of losses, does its per-step updates and hands back
its encoder. The engine owns everything else (optimiser, schedule, precision, checkpoints)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from harness.backbones import Encoder
from harness.config import method_pretrains


@dataclass(frozen=True)
class SampleSpec:
    """What one pre-training sample must hold: `clips` video clips per video, plus extra streams."""

    clips: int
    streams: tuple[str, ...] = ("video",)


class Method(nn.Module):
    """Base class: subclasses implement `losses` (and the hooks below they need). The catalog names the
    class, its config schema and its description; a schema with `pretrains = False` marks a method
    whose encoder is used as initialised."""

    def __init__(self, encoder: Encoder, cfg):
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg

    @property
    def needs_pretraining(self) -> bool:
        return method_pretrains(self.cfg)

    def sample_spec(self) -> SampleSpec:
        return SampleSpec(clips=1)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Loss terms of one batch; the engine backpropagates `loss` and logs the rest."""
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Per-step updates after the optimiser step (momentum encoders, queues); progress in [0, 1]."""

    def trainable_modules(self) -> list[nn.Module]:
        """Modules whose parameters the optimiser updates (targets updated by EMA are excluded)."""
        return [self]

    def lr_scale(self, module: nn.Module) -> float:
        """Multiplier on the scheduled LR for one of `trainable_modules()`; 1 unless the method says otherwise."""
        return 1.0


def views_first(clips: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, V, C, T, H, W) -> (V*B, C, T, H, W) grouped by view, and V: one encoder call for all views."""
    b, v = clips.shape[:2]
    return clips.transpose(0, 1).reshape(v * b, *clips.shape[2:]), v
