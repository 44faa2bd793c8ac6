"""VATT's transformers (Akbari et al. 2021): a video tower over 3-D tubelets, an audio tower over raw
waveform patches and, for the modality-agnostic variant, a text tower, all of one shape: an
aggregation token ([AGG]) before the modality's tokens plus their learned positions, DropToken in
pre-training, then pre-LN transformer blocks (timm's `Block`: the maintained ViT layer) and a final
LayerNorm; the [AGG] output is the feature. Sizes: docs/methods.md (VATT's table 7, plus `tiny`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.models.configs import VattNetConfig
from harness.models.encoder import ClipSpec, Encoder


@dataclass(frozen=True)
class Shape:
    layers: int
    dim: int
    mlp: int
    heads: int


SIZES = {  # VATT's table 7 (Small .. Large) and a CPU size
    "tiny": Shape(4, 128, 512, 4),
    "small": Shape(6, 512, 2048, 8),
    "base": Shape(12, 768, 3072, 12),
    "medium": Shape(12, 1024, 4096, 16),
    "large": Shape(24, 1024, 4096, 16),
}


def drop_tokens(x: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """DropToken: keep ⌊(1 - rate)·N⌋ of the N tokens of (B, N, D), the same random positions for the whole
    batch (as the reference code draws one permutation per batch); rate 0 keeps all."""
    n = x.shape[1]
    keep = int((1 - rate) * n)
    if rate <= 0 or keep >= n:
        return x
    order = torch.randperm(n, generator=generator)[:max(keep, 1)].to(x.device)
    return x[:, order]


class Stack(nn.Module):
    """[AGG] + tokens -> pre-LN blocks -> LayerNorm -> the [AGG] output (B, D)."""

    def __init__(self, shape: Shape, dropout: float = 0.1):
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            [_Block(shape.dim, shape.heads, shape.mlp / shape.dim, dropout, norm) for _ in range(shape.layers)])
        self.norm = norm(shape.dim)
        self.dim = shape.dim

    def forward(self, x: torch.Tensor, agg: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """`x` (B, N, D) tokens with their positions, `agg` (D,) the aggregation token, `keep` (B, N) bool
        for padded inputs (text): padding is never attended to."""
        x = torch.cat([agg.expand(len(x), 1, -1), x], dim=1)
        mask = None
        if keep is not None:
            keep = torch.cat([keep.new_ones(len(x), 1), keep], dim=1)
            # (B, 1, 1, N+1) additive: -inf where attention may not look (a float mask means the same to
            # every timm release and to both of its attention paths)
            mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(~keep, float("-inf"))
            mask = mask[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x[:, 0])


class _Block(nn.Module):
    """timm's pre-LN ViT block; the attention mask is passed only when there is one (its older releases
    take none)."""

    def __init__(self, dim, heads, mlp_ratio, dropout, norm):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.block = Block(dim, heads, mlp_ratio, qkv_bias=True, proj_drop=dropout, norm_layer=norm)

    def forward(self, x, mask=None):
        return self.block(x) if mask is None else self.block(x, attn_mask=mask)


def _interpolate(table: torch.Tensor, n: int) -> torch.Tensor:
    """A (N0, D) table of learned positions, linearly resized to n rows (other clip shapes, longer audio)."""
    if table.shape[0] == n:
        return table
    return F.interpolate(table.T[None], size=n, mode="linear", align_corners=False)[0].T


def conv_stem(dim: int, patch: tuple[int, int, int]) -> nn.Sequential:
    """A convolutional stem in place of the tubelet projection: log2(patch height) 3x3 convolutions per
    frame, each halving the frame (widths doubling up to dim / 2, BatchNorm, ReLU), then a (patch frames)
    x 1 x 1 convolution to `dim` that makes the temporal patch. Same token grid as the tubelet."""
    pt, ph, _ = patch
    layers: list[nn.Module] = []
    width, c_in = max(dim // 2 ** (ph.bit_length() - 1), 16), 3
    for _ in range(ph.bit_length() - 1):
        layers += [nn.Conv3d(c_in, width, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
                   nn.BatchNorm3d(width), nn.ReLU(inplace=True)]
        c_in, width = width, min(width * 2, dim)
    layers.append(nn.Conv3d(c_in, dim, (pt, 1, 1), stride=(pt, 1, 1)))
    return nn.Sequential(*layers)


def hybrid_stem(dim: int, patch: tuple[int, int, int], width: int = 16) -> nn.Sequential:
    """A small 3-D CNN that makes the tokens, as the ViT paper's hybrid models take theirs from a ResNet's
    feature map (Dosovitskiy et al. 2021, section 3.1): a 1x5x5 convolution and log2(patch height) - 1
    3x3x3 ones, each halving the frame (widths `width`, 2 x `width`, ...; BatchNorm, ReLU; the last one also
    strides time by the temporal patch), one residual 3x3x3 block, then a 1x1x1 convolution to `dim`. With an
    8x8 patch it is `small3d`'s stem and first stages. Same token grid as the tubelet."""
    from harness.models.backbones import _conv_bn, _Res

    pt, ph, _ = patch
    n = ph.bit_length() - 1
    layers: list[nn.Module] = []
    c_in = 3
    for i in range(n):
        kt, st = (1 if i == 0 else 3), (pt if i == n - 1 else 1)
        k = 5 if i == 0 else 3
        layers.append(_conv_bn(c_in, width * 2 ** i, (kt, k, k), (st, 2, 2), (kt // 2, k // 2, k // 2)))
        c_in = width * 2 ** i
    layers += [_Res(c_in), nn.Conv3d(c_in, dim, 1)]
    return nn.Sequential(*layers)


STEMS = {"conv": conv_stem, "hybrid": hybrid_stem}


class VattVideo(Encoder):
    """Clips (B, 3, T, H, W) -> tubelets (t x h x w, a strided Conv3d) + e_T[i] + e_H[j] + e_W[k] ->
    [DropToken] -> Stack -> [AGG] feature. `features(x, drop)` drops tokens only when asked (the
    method's pre-training); protocols never do."""

    feature_layer = "the video transformer's [AGG] output after the final LayerNorm"

    def __init__(self, cfg: VattNetConfig, clip: ClipSpec):
        super().__init__()
        self.cfg, self.clip_spec = cfg, clip
        pt, ph, pw = cfg.patch
        if clip.frames % pt or clip.crop_size % ph or clip.crop_size % pw:
            raise ValueError(f"backbone.clip {clip.frames}x{clip.crop_size}px does not split into "
                             f"{pt}x{ph}x{pw} tubelets (backbones.vatt.patch)")
        shape = SIZES[cfg.size]
        self.grid = (clip.frames // pt, clip.crop_size // ph, clip.crop_size // pw)
        self.embed = STEMS[cfg.stem](shape.dim, cfg.patch) if cfg.stem in STEMS else \
            nn.Conv3d(3, shape.dim, kernel_size=cfg.patch, stride=cfg.patch)
        self.pos = nn.ParameterList([nn.Parameter(torch.randn(n, shape.dim) * 0.02) for n in self.grid])
        self.agg = nn.Parameter(torch.zeros(shape.dim))
        self.stack = Stack(shape, cfg.dropout)
        self.feature_dim = shape.dim

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, t*h*w, D) tubelet embeddings with their positions."""
        y = self.embed(x)  # (B, D, t, h, w)
        t, h, w = y.shape[2:]
        pos = (_interpolate(self.pos[0], t)[:, None, None] + _interpolate(self.pos[1], h)[None, :, None]
               + _interpolate(self.pos[2], w)[None, None, :])
        return (y.permute(0, 2, 3, 4, 1) + pos).flatten(1, 3)

    def features(self, x: torch.Tensor, drop: float = 0.0) -> torch.Tensor:
        return self.stack(drop_tokens(self.tokens(x), drop), self.agg)

    def layers(self) -> list[nn.Module]:
        return [self.embed, *self.stack.blocks]


class WaveformTower(nn.Module):
    """Raw audio (B, S) in [-1, 1] -> patches of `patch` samples -> Linear + learned positions ->
    [DropToken] -> Stack -> [AGG] feature. A `stack` may be shared with the other towers (VATT-MA)."""

    feature_layer = "the audio transformer's [AGG] output after the final LayerNorm"

    def __init__(self, shape: Shape, patch: int, samples: int, dropout: float, stack: Stack | None = None):
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(patch, shape.dim)
        self.pos = nn.Parameter(torch.randn(max(samples // patch, 1), shape.dim) * 0.02)
        self.agg = nn.Parameter(torch.zeros(shape.dim))
        self.stack = stack or Stack(shape, dropout)
        self.feature_dim = shape.dim

    def features(self, wave: torch.Tensor, drop: float = 0.0) -> torch.Tensor:
        n = wave.shape[-1] // self.patch
        x = self.embed(wave[..., :n * self.patch].reshape(len(wave), n, self.patch))
        return self.stack(drop_tokens(x + _interpolate(self.pos, n), drop), self.agg)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.features(wave)


class WordTower(nn.Module):
    """Token ids (B, L) + mask -> word embedding + learned positions -> Stack -> [AGG] feature: VATT-MA's
    text path through the shared transformer (the modality-specific model uses a T5 encoder instead)."""

    def __init__(self, shape: Shape, vocab: int, max_len: int, dropout: float, stack: Stack | None = None):
        super().__init__()
        self.words = nn.Embedding(vocab, shape.dim)
        self.pos = nn.Parameter(torch.randn(max_len, shape.dim) * 0.02)
        self.agg = nn.Parameter(torch.zeros(shape.dim))
        self.stack = stack or Stack(shape, dropout)
        self.feature_dim = shape.dim

    def features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.words(ids) + _interpolate(self.pos, ids.shape[1])
        return self.stack(x, self.agg, keep=mask.bool())
