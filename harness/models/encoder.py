"""The Encoder contract: clips (B, C, T, H, W), float and normalised -> features (B, D). An encoder declares
`feature_dim` and its `ClipSpec` (what it reads), and may have a stage of its own before training and
scoring (`prepare`). Every network of `harness.models` that protocols score subclasses `Encoder`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn as nn

from harness.config.sections import ClipConfig

if TYPE_CHECKING:
    from harness.models.stage import Stage


@dataclass(frozen=True)
class ClipSpec:
    """What an encoder reads: frames x stride at crop size, its normalisation and extra streams."""

    frames: int
    stride: int
    crop_size: int
    test_short_side: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    streams: tuple[str, ...] = ("video",)
    fps: float = 0.0  # the rate the stride is counted at (0: each video's own frames)

    @classmethod
    def from_config(cls, c: ClipConfig, streams: tuple[str, ...] = ("video",)) -> ClipSpec:
        return cls(c.frames, c.stride, c.crop_size, c.test_short_side, tuple(c.mean), tuple(c.std), streams, c.fps)


class Encoder(nn.Module):
    """Base class of every encoder: subclasses set `trunk` (-> (B, D, t, h, w) or (B, D)) and `feature_dim`."""

    feature_dim: int
    clip_spec: ClipSpec
    channels_last: bool = False  # set by the engine on CUDA: inputs go channels_last_3d
    feature_layer = "the encoder's output: global average pool of its last stage"  # for the protocol card
    # how a frozen stage the encoder learns itself (`prepare`) is made; part of an untrained encoder's key,
    # bumped when that changes (VIMPAC's tokenizer). None: the encoder has no such stage
    state_version: ClassVar[int | None] = None

    def prepare(self, stage: Stage) -> dict[str, Any] | None:
        """The encoder's own stage before training and scoring (VIMPAC trains its frozen tokenizer here, or
        loads the one cached under the same settings and data); what it returns goes into the run record
        as `tokenizer`. The runner calls it once the encoder is built, on a forked random state."""
        return None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        y = self.trunk(x)
        return y.mean(dim=(2, 3, 4)) if y.dim() == 5 else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def layers(self) -> list[nn.Module]:
        """The trunk's blocks from input to output (stem, stages): the depth order layer-wise LR decay
        follows. pytorchvideo nets keep them in `blocks`; the others are the trunk's children."""
        blocks = getattr(self.trunk, "blocks", None)
        out = [m for m in (blocks if blocks is not None else self.trunk.children())
               if any(True for _ in m.parameters())]
        n_out, n_all = sum(p.numel() for m in out for p in m.parameters()), sum(p.numel() for p in self.parameters())
        if n_out != n_all:
            raise RuntimeError(f"{type(self).__name__}.layers() covers {n_out} of {n_all} parameters; override it")
        return out


def load_encoder_weights(encoder: Encoder, path: str | Path) -> None:
    """Load an encoder state dict saved by this harness (`encoder.pt` or a checkpoint's `encoder`), exactly."""
    from harness.models.weights import load_exactly, read_state

    load_exactly(encoder, read_state(path, ("encoder",)), str(path), f"the {type(encoder).__name__} encoder", optional=())
