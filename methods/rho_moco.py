"""ρMoCo (Feichtenhofer et al., CVPR 2021): MoCo v2 with ρ clips per video as positives.

Queries come from the encoder + projection MLP, keys from their momentum copies (m annealed from
0.994 to 1 by a half cosine). Each query clip is contrasted with the keys of the other clips of its
video against a FIFO queue of past keys (`moco_loss`, τ = 0.1); after each step the keys of all ρ
clips, gathered over processes, are enqueued. The queue and its pointer are buffers, so checkpoints
hold them and `--resume` continues with the same negatives. Settings and sources: docs/methods.md.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from harness import distributed as dist
from methods.base import ProjectedMethod, StepInfo, views_first
from methods.configs import RhoMocoConfig
from methods.losses import moco_loss
from methods.momentum import cosine_momentum, ema_update, frozen_copy


class RhoMoco(ProjectedMethod):
    """Queries against momentum keys of the video's other clips, with a queue of negatives."""

    def __init__(self, encoder, cfg: RhoMocoConfig):
        super().__init__(encoder, cfg)
        self.key_encoder = frozen_copy(encoder)
        self.key_projector = frozen_copy(self.projector)
        self.register_buffer("queue", F.normalize(torch.randn(cfg.queue_size, cfg.proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        # a tensor, changed in place each step: a float attribute read in `losses` would make torch.compile
        # guard on its value and recompile the step every time it moves (not saved: a function of progress)
        self.register_buffer("momentum", torch.tensor(float(cfg.momentum)), persistent=False)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x, v = views_first(batch["clips"])
        q = self.embed(x, v)
        with torch.no_grad():
            xs, perm = dist.shuffle_batch(x) if self.cfg.shuffle_bn else (x, None)
            k = self.key_projector(self.key_encoder(xs))
            k = F.normalize(dist.unshuffle_batch(k, perm) if perm is not None else k, dim=1).float()
        loss = moco_loss(q, list(k.chunk(v)), self.queue, self.cfg.temperature)
        if self.cfg.reduction == "sum":  # the released code's one backward per query clip: the sub-losses add
            loss = loss * v
        return {"loss": loss, "momentum": self.momentum.clone(), "keys": k}

    def queue_fill_steps(self, batch_videos: int) -> int:
        """Steps the released code spends filling the queue before the first update (`queue_warmup`)."""
        return math.ceil(self.cfg.queue_size / batch_videos) if self.cfg.queue_warmup else 0

    def before_optimizer_step(self, info: StepInfo) -> None:
        keys = info.outputs["keys"]
        batch_videos = keys.shape[0] // max(self.cfg.rho, 2) * dist.world_size()
        if info.epoch == 0 and info.step < self.queue_fill_steps(batch_videos):
            for p in self.parameters():  # the queue still holds random keys: take no step yet
                p.grad = None

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write `keys` over the oldest entries of the queue (FIFO, wrapping around)."""
        keys = keys[-len(self.queue):].to(self.queue.dtype)
        idx = (self.queue_ptr + torch.arange(len(keys), device=keys.device)) % len(self.queue)
        self.queue[idx] = keys
        self.queue_ptr.copy_((self.queue_ptr + len(keys)) % len(self.queue))

    def after_step(self, info: StepInfo) -> None:
        if "keys" in info.outputs:
            self.enqueue(dist.gather(info.outputs["keys"]))
        m = cosine_momentum(self.cfg.momentum, info.progress)
        self.momentum.fill_(m)
        ema_update(self.key_encoder, self.encoder, m)
        ema_update(self.key_projector, self.projector, m)
