"""VIMPAC (Tan et al. 2021): mask-then-predict on VQ tokens of video, plus a contrastive loss.

Each frame is tokenised by the encoder's frozen tokenizer; per clip a block mask (the union of K
random 3-D blocks, K chosen for about 15% of the tokens) replaces tokens by [MASK], and the
transformer predicts the masked codes through a decoder tied to its token embedding. Two clips of a
video drawn anywhere in it, on the same masked input, are positives of an InfoNCE loss on their
[CLS] projections (τ = 0.2, both directions summed): L = L_mask + α·τ·L_cl. No spatial augmentation:
both clips are centre crops. Settings and sources: docs/methods.md.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.errors import ConfigError
from methods.base import Method, SampleSpec, views_first
from methods.configs import VimpacConfig
from methods.heads import mlp
from methods.losses import info_nce_loss


def block_limits(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Longest block per axis: ⌊2T/3⌋ x ⌊h/2⌋ x ⌊w/2⌋ (the released code floors; at least 1)."""
    t, h, w = shape
    return max(2 * t // 3, 1), max(h // 2, 1), max(w // 2, 1)


def expected_block_ratio(shape: tuple[int, int, int], blocks: int) -> float:
    """The mean fraction of tokens a union of `blocks` random blocks covers, computed exactly: per axis,
    the chance a position lies in one block (length uniform, start uniform where it fits); the axes are
    independent, and so are the blocks."""
    cover = []
    for n, longest in zip(shape, block_limits(shape)):
        x = torch.arange(n, dtype=torch.float64)
        p = torch.zeros(n, dtype=torch.float64)
        for length in range(1, longest + 1):
            starts = torch.arange(n - length + 1, dtype=torch.float64)
            inside = (x[None] >= starts[:, None]) & (x[None] < starts[:, None] + length)
            p += inside.double().mean(0)
        cover.append(p / longest)
    one = cover[0][:, None, None] * cover[1][None, :, None] * cover[2][None, None, :]
    return float((1 - (1 - one) ** blocks).mean())


def blocks_for_ratio(shape: tuple[int, int, int], ratio: float) -> int:
    """The block count whose expected masking ratio is closest to `ratio` (5 at 5x16x16 for 15%)."""
    return min(range(1, 65), key=lambda k: abs(expected_block_ratio(shape, k) - ratio))


def block_mask(batch: int, shape: tuple[int, int, int], blocks: int, device=None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch, T, h, w) bool: per sample, the union of `blocks` blocks whose lengths are uniform in
    [1, limit] on each axis (`block_limits`) and whose starts are uniform where the block fits."""
    inside = []
    for n, longest in zip(shape, block_limits(shape)):
        length = torch.randint(1, longest + 1, (batch, blocks), generator=generator)
        start = (torch.rand(batch, blocks, generator=generator) * (n - length + 1)).long()
        x = torch.arange(n)
        inside.append((x >= start[..., None]) & (x < (start + length)[..., None]))  # (B, K, n)
    t, h, w = inside
    mask = (t[:, :, :, None, None] & h[:, :, None, :, None] & w[:, :, None, None, :]).any(1)
    return mask.to(device) if device is not None else mask


def iid_mask(batch: int, shape: tuple[int, int, int], ratio: float, device=None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Each token masked with probability `ratio` (the paper's i.i.d. baseline)."""
    mask = torch.rand(batch, *shape, generator=generator) < ratio
    return mask.to(device) if device is not None else mask


class Vimpac(Method):
    """Masked-token prediction (tied decoder) + InfoNCE on the [CLS] projections of two clips."""

    def __init__(self, encoder, cfg: VimpacConfig):
        super().__init__(encoder, cfg)
        if not hasattr(encoder, "tokens") or not hasattr(encoder, "net"):
            raise ConfigError(f"method vimpac needs the 'vimpac' backbone (a transformer over VQ tokens), got "
                              f"{type(encoder).__name__}; select it with --set backbone.name=vimpac")
        dim = encoder.feature_dim
        # the token head: Dense + GELU + LayerNorm, then the token embedding's transpose and a bias of its own
        self.token_transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.token_bias = nn.Parameter(torch.zeros(encoder.net.vocab))
        self.projector = mlp(dim, cfg.proj_hidden, cfg.proj_dim, cfg.proj_layers, bn=True)
        self.projector[-1] = nn.Linear(self.projector[-1].in_features, cfg.proj_dim, bias=False)
        self.blocks = cfg.mask_blocks or blocks_for_ratio(encoder.grid, cfg.mask_ratio)

    def sample_spec(self) -> SampleSpec:
        clips = 2 if self.cfg.contrastive_weight > 0 else 1
        return SampleSpec(clips=clips, pair_single_clip=False, augment=False, max_distance=self.cfg.max_distance)

    def token_logits(self, states: torch.Tensor) -> torch.Tensor:
        """(N, D) token states -> (N, vocab) logits through the decoder tied to the token embedding."""
        return self.token_transform(states) @ self.encoder.net.embed.tokens.weight.T + self.token_bias

    def draw_mask(self, ids: torch.Tensor) -> torch.Tensor:
        shape = tuple(ids.shape[1:])
        if self.cfg.masking == "iid":
            return iid_mask(len(ids), shape, self.cfg.mask_ratio, ids.device)
        return block_mask(len(ids), shape, self.blocks, ids.device)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x, v = views_first(batch["clips"])
        ids = self.encoder.tokens(x)  # (V*B, T, h, w), frozen
        mask = self.draw_mask(ids)
        states, cls = self.encoder.net(ids.masked_fill(mask, self.encoder.mask_id))
        target = ids[mask]
        logits = self.token_logits(states[mask]).float()
        mask_loss = F.cross_entropy(logits, target)
        out = {"mask_loss": mask_loss.detach(), "mask_acc": (logits.argmax(-1) == target).float().mean(),
               "mask_ratio": mask.float().mean()}
        loss = self.cfg.mlm_weight * mask_loss
        if self.cfg.contrastive_weight > 0:
            z = self.projector(cls).chunk(v)
            cl = 2 * info_nce_loss(list(z), self.cfg.temperature)  # L_a + L_b: the mean over 2B anchors, twice
            loss = loss + self.cfg.contrastive_weight * self.cfg.temperature * cl
            out["cl_loss"] = cl.detach()
        return {"loss": loss, **out}
