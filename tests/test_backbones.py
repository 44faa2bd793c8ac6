"""Every registered backbone maps (B, C, T, H, W) to (B, feature_dim) and carries its ClipSpec."""
from __future__ import annotations

import pytest
import torch

from harness import catalog
from harness.builders import build_encoder
from harness.config import load_config

SHAPES = {"small3d": (8, 32), "r3d_18": (4, 32), "r2plus1d_18": (4, 32), "slow_r50": (4, 64), "vimpac": (5, 32),
          "vatt": (8, 16), "clipbert": (2, 32)}


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


def test_paper_vimpac_is_the_small_model():
    """The paper profile's VIMPAC: the Small transformer (6 x 512, 8192 codes + [MASK]) has the 29.4M
    parameters of the paper's table 3, reads 5 frames at 2 fps and 128 px, 16 x 16 codes per frame."""
    cfg = load_config("paper", method="vimpac")
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    assert sum(p.numel() for p in enc.net.parameters()) / 1e6 == pytest.approx(29.4, abs=0.15)
    assert enc.grid == (5, 16, 16) and cfg.backbone.clip.fps == 2 and enc.feature_dim == 512
    p = cfg.pretrain  # VIMPAC's optimiser, not the profile's LARS
    assert (p.optimizer, p.lr, p.lr_schedule, p.adam_betas, p.weight_decay) == ("adamw", 1e-3, "linear", [0.9, 0.98], 0.05)


@pytest.mark.parametrize("zero_init", [True, False])
def test_small3d_residual_block_starts_as_identity_when_zero_initialised(zero_init):
    cfg = load_config("ci", [f"backbones.small3d.zero_init_residual={str(zero_init).lower()}"])
    enc = build_encoder("small3d", cfg.backbone_cfg, cfg.backbone.clip).eval()
    res = enc.trunk[3]
    x = torch.randn(2, res.body[0][0].in_channels, 4, 4, 4)
    with torch.no_grad():
        same = torch.allclose(res(x), torch.relu(x))
    assert same == zero_init


def test_paper_vatt_is_bbs_at_paper_shapes():
    """The paper profile's VATT: a Base video transformer (87.4M parameters; the paper's table 7 gives
    87.9M for Base) over 8 x 14 x 14 tubelets of 32 x 224 px at 10 fps, and 3.2 s of 48 kHz audio in 1,200
    patches of 128 samples for a Base audio transformer."""
    from harness import catalog

    cfg = load_config("paper", method="vatt")
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    assert sum(p.numel() for p in enc.parameters()) / 1e6 == pytest.approx(87.9, rel=0.01)
    assert enc.grid == (8, 14, 14) and enc.feature_dim == 768
    method = catalog.METHODS.get("vatt")(enc, cfg.method_cfg)
    assert method.samples == 153_600 and method.audio.pos.shape == (1200, 768)
    assert method.text_tower.feature_dim == 512  # T5-small
