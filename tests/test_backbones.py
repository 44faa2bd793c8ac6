"""Every registered backbone maps (B, C, T, H, W) to (B, feature_dim) and carries its ClipSpec."""
from __future__ import annotations

import pytest
import torch

from harness import catalog
from harness.backbones import build_encoder
from harness.config import load_config

SHAPES = {"small3d": (8, 32), "r3d_18": (4, 32), "r2plus1d_18": (4, 32), "slow_r50": (4, 64)}


@pytest.mark.parametrize("name", catalog.BACKBONES.names())
def test_backbone_features(name):
    cfg = load_config("ci", [f"backbone.name={name!r}"])
    enc = build_encoder(name, cfg.backbone_cfg, cfg.backbone.clip).eval()
    t, s = SHAPES[name]
    with torch.no_grad():
        y = enc(torch.randn(2, 3, t, s, s))
    assert y.shape == (2, enc.feature_dim) and torch.isfinite(y).all()
    assert enc.clip_spec.frames == cfg.backbone.clip.frames


def test_paper_backbone_is_slow_r50_at_paper_size():
    cfg = load_config("paper")
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    assert enc.feature_dim == 2048
    n = sum(p.numel() for p in enc.parameters())
    assert 31e6 < n < 33e6  # Slow R-50 has 32.45M parameters with its 400-way head; 31.6M without
    assert (enc.clip_spec.frames, enc.clip_spec.stride, enc.clip_spec.crop_size) == (8, 8, 224)


@pytest.mark.parametrize("zero_init", [True, False])
def test_small3d_residual_block_starts_as_identity_when_zero_initialised(zero_init):
    cfg = load_config("ci", [f"backbones.small3d.zero_init_residual={str(zero_init).lower()}"])
    enc = build_encoder("small3d", cfg.backbone_cfg, cfg.backbone.clip).eval()
    res = enc.trunk[3]
    x = torch.randn(2, res.body[0][0].in_channels, 4, 4, 4)
    with torch.no_grad():
        same = torch.allclose(res(x), torch.relu(x))
    assert same == zero_init
