"""The Method contract: built from an encoder and its config section, it says what a training
sample holds, turns a batch into a dict of losses, does its per-step updates and hands back
its encoder. The engine owns everything else (optimiser, schedule, precision, checkpoints).

A batch is a dict on the method's device: `clips` (B, V, C, T, H, W), `index` (B,) and `label` (B,)
when the sample spec asks for one. Where training stands reaches the method through its hooks
(`StepInfo`), not through the batch, so a compiled `losses` sees the same inputs every step. Anything
a method keeps across steps (queues, pointers) is a registered buffer, so checkpoints save it and
`--resume` restores it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from harness.config import method_pretrains
from harness.engine import StepInfo
from harness.errors import ConfigError
from harness.models.encoder import Encoder
from harness.models.stage import Stage
from methods.heads import mlp

__all__ = ["Method", "ProjectedMethod", "SampleSpec", "StepInfo", "require_backbone", "views_first"]


@dataclass(frozen=True)
class SampleSpec:
    """What one pre-training sample must hold.

    `clips` clips per video at independent times (the ρ of the study); with `pair_single_clip` a
    single clip comes as two augmentations of the same time (ρ = 1 of the SSL methods, which need a
    positive). `label` names a label of the pre-training data the method trains on (`supervised`).
    `augment = False` gives centre crops without flips or colour changes (VIMPAC pre-trains on them);
    `max_distance` >= 0 keeps the clips of a video within that many frames of the first one.
    `streams` adds, per clip, "audio" (the samples under it at `audio_rate` Hz) and "text" (the
    `captions` narrations nearest it, or the video's `whole_caption`, tokenised by `tokenizer`); see
    `PretrainClips`.
    """

    clips: int
    streams: tuple[str, ...] = ("video",)
    pair_single_clip: bool = True
    label: str | None = None
    augment: bool = True
    max_distance: int = -1
    captions: int = 1
    audio_rate: int = 0
    tokenizer: Any = None
    whole_caption: bool = False

    @property
    def views(self) -> int:
        """Clips per sample as the data path delivers them."""
        return max(self.clips, 2) if self.pair_single_clip else self.clips


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

    def setup_labels(self, classes: tuple[str, ...]) -> None:
        """Called before training when `sample_spec().label` is set, with that label's classes in index order."""

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Loss terms of one batch. The engine backpropagates `loss` and logs every other scalar
        entry; non-scalar entries (MoCo's keys) reach the hooks as `StepInfo.outputs`."""
        raise NotImplementedError

    def before_step(self, info: StepInfo) -> None:
        """Before the forward pass of a step (its `outputs` are still empty): schedules that switch by epoch."""

    def before_optimizer_step(self, info: StepInfo) -> None:
        """After backward, before the update: gradients can be changed or dropped (SwAV's prototype freeze)."""

    def after_step(self, info: StepInfo) -> None:
        """After the update (and on steps with no usable batch): momentum encoders, queues, renormalisation."""

    def trainable_modules(self) -> list[nn.Module]:
        """Modules whose parameters the optimiser updates (targets updated by EMA are excluded)."""
        return [self]

    def exports(self) -> dict[str, nn.Module]:
        """What protocols may score, by name: the video encoder for every method; a method that also
        learns a text or audio tower adds it here, and a protocol names what it needs (`Protocol.needs`).
        Names in use: "video", "audio" (an audio encoder), "text" (a text encoder), "video-text" (a
        scorer of clips against captions whose `kind` is "dual" or "cross": `protocols.video_text`). A
        method that exports more than its video encoder has its whole state saved with the encoder, so a
        reused checkpoint brings every tower."""
        return {"video": self.encoder}

    def prepare(self, stage: Stage) -> dict | None:
        """The method's own stage before training or scoring (a text tokenizer trained on the captions the
        `stage` lists); what it reports goes into the run record as `text_tokenizer`. Runs after every
        check and after the encoder's own `prepare`, on a forked random state."""
        return None

    def lr_scale(self, module: nn.Module) -> float:
        """Multiplier on the scheduled LR for one of `trainable_modules()`; 1 unless the method says otherwise."""
        return 1.0


class ProjectedMethod(Method):
    """What ρSimCLR, ρMoCo and ρSwAV share: ρ clips per video and an encoder + projection MLP, built
    from the config's `rho`, `proj_layers`, `proj_hidden`, `proj_dim` and `proj_bn`."""

    def __init__(self, encoder: Encoder, cfg):
        super().__init__(encoder, cfg)
        self.projector = mlp(encoder.feature_dim, cfg.proj_hidden, cfg.proj_dim, cfg.proj_layers, cfg.proj_bn)

    def sample_spec(self) -> SampleSpec:
        return SampleSpec(clips=self.cfg.rho)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.encoder, self.projector]

    def embed(self, x: torch.Tensor, views: int) -> list[torch.Tensor]:
        """Projected embeddings of clips batched by `views_first`: one (B, D) tensor per clip index."""
        return list(self.projector(self.encoder(x)).chunk(views))


def require_backbone(encoder: Encoder, cls: type, method: str, backbone: str, what: str) -> None:
    """A method built for one backbone refuses another with the setting that selects it."""
    if not isinstance(encoder, cls):
        raise ConfigError(f"method {method} needs the {backbone!r} backbone ({what}), got {type(encoder).__name__}; "
                          f"select it with --set backbone.name={backbone}")


def views_first(clips: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, V, C, T, H, W) -> (V*B, C, T, H, W) grouped by view, and V: one encoder call for all views."""
    b, v = clips.shape[:2]
    return clips.transpose(0, 1).reshape(v * b, *clips.shape[2:]), v
