"""VIMPAC: block masking against the paper's table, the attention layouts, [CLS] averaging, the tied
decoder, the tokenizer stage (VQ-VAE and DALL-E's dVAE) and the method's data needs."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness import catalog
from harness.builders import build_encoder
from harness.config import load_config
from harness.data import sampling
from harness.errors import ConfigError
from harness.models.configs import VIMPAC_LAYOUTS, VimpacNetConfig
from harness.models.encoder import ClipSpec
from harness.models.vimpac import LAYOUTS, AxisAttention, TokenTransformer, Vimpac, line_attention
from harness.models.vq import FrameVQVAE, luma_normalised, train_vqvae
from methods.vimpac import block_limits, block_mask, blocks_for_ratio, expected_block_ratio, iid_mask

# VIMPAC-pdf table 2: the masking ratio (%) that 4..8 blocks induce
PAPER_RATIOS = {(5, 16, 16): [11.9, 14.5, 17.0, 19.4, 21.7], (5, 32, 32): [10.6, 13.1, 15.2, 17.5, 19.5],
                (10, 16, 16): [10.4, 12.8, 15.0, 17.1, 19.2], (10, 32, 32): [9.3, 11.4, 13.4, 15.4, 17.2]}


@pytest.mark.parametrize("shape", list(PAPER_RATIOS))
def test_expected_block_ratio_matches_the_paper(shape):
    ours = [100 * expected_block_ratio(shape, k) for k in range(4, 9)]
    assert np.allclose(ours, PAPER_RATIOS[shape], atol=0.25)  # the paper's are sampled, to one decimal


def test_block_count_for_fifteen_percent():
    assert blocks_for_ratio((5, 16, 16), 0.15) == 5
    assert blocks_for_ratio((5, 32, 32), 0.15) == 6
    assert blocks_for_ratio((10, 32, 32), 0.15) == 7


@pytest.mark.parametrize("shape, blocks, paper", [((5, 16, 16), 5, 14.5), ((5, 32, 32), 6, 15.2)])
def test_sampled_block_masks_reach_the_papers_ratio(shape, blocks, paper):
    g = torch.Generator().manual_seed(0)
    ratios = block_mask(3000, shape, blocks, generator=g).float().mean(dim=(1, 2, 3)) * 100
    sem = ratios.std().item() / len(ratios) ** 0.5
    assert abs(ratios.mean().item() - paper) < max(4 * sem, 0.3)


def test_block_lengths_respect_their_bounds():
    shape = (5, 8, 12)
    limits = block_limits(shape)
    assert limits == (3, 4, 6)
    masks = block_mask(2000, shape, 1, generator=torch.Generator().manual_seed(1))
    seen = [set(), set(), set()]
    for m in masks:
        idx = m.nonzero()
        extent = (idx.max(0).values - idx.min(0).values + 1).tolist()
        assert m.sum().item() == np.prod(extent)  # one block is a box
        for axis, (n, limit) in enumerate(zip(extent, limits)):
            assert 1 <= n <= limit
            seen[axis].add(n)
    assert [max(s) for s in seen] == list(limits) and [min(s) for s in seen] == [1, 1, 1]  # inclusive bounds


def test_iid_masking_ratio():
    m = iid_mask(500, (5, 16, 16), 0.15, generator=torch.Generator().manual_seed(2))
    assert abs(m.float().mean().item() - 0.15) < 0.005


def _net(layout: str, grid=(3, 4, 5), dim=16, heads=4) -> TokenTransformer:
    cfg = VimpacNetConfig(layers=2, dim=dim, heads=heads, head_dim=4, mlp=32, layout=layout, dropout=0.0)
    return TokenTransformer(20, grid, cfg)


@pytest.mark.parametrize("layout", VIMPAC_LAYOUTS)
def test_layout_output_shapes(layout):
    torch.manual_seed(0)
    net = _net(layout)
    states, cls = net(torch.randint(0, 20, (2, 3, 4, 5)))
    assert states.shape == (2, 3, 4, 5, 16) and cls.shape == (2, 16)
    assert torch.isfinite(states).all()


def _on_time_line(t, r, c, tt, rr, cc):
    return (rr == r) & (cc == c)


def _on_row_or_column(t, r, c, tt, rr, cc):
    return (tt == t) & ((rr == r) | (cc == c))


def _on_any_line(t, r, c, tt, rr, cc):
    return _on_time_line(t, r, c, tt, rr, cc) | _on_row_or_column(t, r, c, tt, rr, cc)


@pytest.mark.parametrize("groups, allowed", [(((1,),), _on_time_line), (((2,), (3,)), _on_row_or_column),
                                             (((1,), (2,), (3,)), _on_any_line)])
def test_attention_stays_on_its_lines(groups, allowed):
    """Within one attention block a token's output does not depend on a token off its 1-D lines
    (T: its time line; H|W: its column and row in its frame)."""
    torch.manual_seed(0)
    att = AxisAttention(16, 6 if len(groups) == 3 else 4, 4, groups, 0.0)
    x = torch.randn(1, 3, 4, 5, 16, requires_grad=True)
    cls = torch.randn(1, 16)
    t, r, c = 1, 2, 3
    att(x, cls)[0][0, t, r, c].sum().backward()
    depends = x.grad[0].abs().sum(-1) > 0
    tt, rr, cc = torch.meshgrid(torch.arange(3), torch.arange(4), torch.arange(5), indexing="ij")
    assert torch.equal(depends, allowed(t, r, c, tt, rr, cc))


def test_cls_is_the_mean_over_lines():
    """[CLS] joins every line of the block; its output is the average of its per-line outputs."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, 5, 8) for _ in range(3))
    cq, ck, cv = (torch.randn(2, 8) for _ in range(3))
    out, cls = line_attention(q, k, v, cq, ck, cv, (2,), heads=2, dropout=0.0)
    per_line = []

    def seq(x, c, t, j):
        return torch.cat([c[:, None], x[:, t, :, j]], 1).unflatten(-1, (2, 4)).transpose(1, 2)

    for t in range(3):
        for j in range(5):
            o = F.scaled_dot_product_attention(seq(q, cq, t, j), seq(k, ck, t, j), seq(v, cv, t, j))
            o = o.transpose(1, 2).flatten(2)
            per_line.append(o[:, 0])
            assert torch.allclose(out[:, t, :, j], o[:, 1:], atol=1e-6)
    assert torch.allclose(cls, torch.stack(per_line, 1).mean(1), atol=1e-6)


def _vimpac_method(*overrides: str):
    cfg = load_config("ci", list(overrides), method="vimpac")
    torch.manual_seed(0)
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    return catalog.METHODS.get("vimpac")(enc, cfg.method_cfg), cfg


def test_token_decoder_is_tied_to_the_embedding():
    method, _ = _vimpac_method()
    emb = method.encoder.net.embed.tokens.weight
    h = torch.randn(7, emb.shape[1])
    expected = method.token_transform(h) @ emb.T + method.token_bias
    assert torch.allclose(method.token_logits(h), expected)
    own = [n for n, p in method.named_parameters() if p.shape == emb.shape and p is not emb]
    assert not own  # no second output matrix
    with torch.no_grad():
        emb[3] += 1.0
    assert not torch.allclose(method.token_logits(h)[:, 3], expected[:, 3])


def test_losses_and_what_the_method_asks_of_the_data():
    method, cfg = _vimpac_method()
    spec = method.sample_spec()
    assert spec.clips == 2 and spec.views == 2 and not spec.augment
    c = method.encoder.clip_spec
    out = method.losses({"clips": torch.randn(4, 2, 3, c.frames, c.crop_size, c.crop_size)})
    assert {"loss", "mask_loss", "mask_acc", "cl_loss"} <= set(out)
    want = out["mask_loss"] + cfg.method_cfg.temperature * out["cl_loss"]
    assert torch.allclose(out["loss"], want)
    mp_only, _ = _vimpac_method("methods.vimpac.contrastive_weight=0")
    assert mp_only.sample_spec().views == 1
    assert "cl_loss" not in mp_only.losses({"clips": torch.randn(4, 1, 3, c.frames, c.crop_size, c.crop_size)})


def test_vimpac_refuses_another_backbone():
    with pytest.raises(ConfigError, match="vimpac.*backbone"):
        _vimpac_method("backbone.name=small3d")


def test_random_init_of_the_vimpac_backbone_gets_its_clip_shape():
    cfg = load_config("embedded", ["backbone.name=vimpac"], method="random_init")
    assert (cfg.backbone.clip.frames, cfg.backbone.clip.crop_size) == (5, 32)
    assert load_config("embedded", [], method="random_init").backbone.clip.frames == 8
    with pytest.raises(ConfigError, match="unknown backbone"):
        from harness.config.load import _by_backbone
        _by_backbone({}, {"vimpak": {}}, "vimpac")


def test_position_tables_are_interpolated_for_other_shapes():
    torch.manual_seed(0)
    clip = ClipSpec(frames=5, stride=1, crop_size=16, test_short_side=16, mean=(0.0,) * 3, std=(1.0,) * 3)
    enc = Vimpac(VimpacNetConfig(codebook=16, downsample=4, vq_width=8, vq_dim=8, dropout=0.0), clip).eval()
    assert enc.grid == (5, 4, 4)
    assert enc(torch.rand(2, 3, 5, 16, 16)).shape == (2, enc.feature_dim)
    assert enc(torch.rand(2, 3, 8, 24, 24)).shape == (2, enc.feature_dim)  # 8 x 6 x 6 codes
    pos = enc.net.embed.position(1, 7)
    assert pos.shape == (7, enc.feature_dim)
    assert torch.equal(enc.net.embed.position(1, 4), enc.net.embed.pos[1])


def _frames(n: int = 256, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Frames with structure: a bright square at a random place on a dark random-coloured ground."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, size, size).clone() * 0.4
    for k in range(n):
        r, c = torch.randint(0, size - 6, (2,), generator=g).tolist()
        x[k, :, r:r + 6, c:c + 6] = 0.9
    return x


def test_vqvae_reconstructs_better_than_a_constant_image():
    model = FrameVQVAE(codebook=32, downsample=4, width=16, dim=8)
    report = train_vqvae(model, _frames(), steps=150, batch=64, lr=3e-3, seed=0, log=lambda m: None)
    assert report["mse"] < 0.5 * report["constant_mse"], report
    assert report["codes_used"] > 4
    ids = model.tokens(_frames(4))
    assert ids.shape == (4, 4, 4) and ids.dtype == torch.long


def test_luma_normalised_frames_forget_colour_and_brightness():
    x = _frames(8)
    grey = x.mean(1, keepdim=True).expand_as(x)  # the same picture in grey, darker and offset
    assert torch.allclose(luma_normalised(0.5 * grey + 0.2), luma_normalised(grey), atol=3e-3)
    assert not torch.allclose(luma_normalised(grey), luma_normalised(grey.flip(-1)), atol=1e-2)
    model = FrameVQVAE(codebook=16, downsample=4, width=8, dim=8, frame_input="luma-norm")
    train_vqvae(model, model.prepare(x), steps=2, batch=4, lr=1e-3, seed=0, log=lambda m: None)
    assert (model.tokens(0.5 * grey + 0.2) == model.tokens(grey)).float().mean() > 0.95


def test_tokenizer_stage_is_trained_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    cfg = load_config("ci", ["backbones.vimpac.vq_steps=3", "backbones.vimpac.vq_frames=64"], method="vimpac")
    from harness.pretraining import stage_for

    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    logs: list[str] = []
    report = enc.prepare(replace(stage_for(cfg, progress=False), log=logs.append))
    assert report["tokenizer"] == "vqvae" and any("training the VQ-VAE" in m for m in logs)
    again = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    assert again.prepare(replace(stage_for(cfg, progress=False), log=logs.append)) == report and "reusing" in logs[-1]
    x = torch.rand(2, 3, 5, 32, 32)
    assert torch.equal(enc.tokens(x), again.tokens(x))
    assert not any(p.requires_grad for p in again.tokenizer.parameters())
    again.train()
    assert not again.tokenizer.training


def test_tokenizer_depends_on_its_settings_only_and_leaves_the_run_random_state_alone(tmp_path, monkeypatch):
    """Whichever seed trains the shared tokenizer first, it is the same; and training or loading it does not
    move the run's random stream, so a seed's result does not depend on what the cache holds."""
    from types import SimpleNamespace

    from harness.pretraining import prepare_stages, stage_for

    tokens, draws = [], []
    for run_seed, cache in ((1, "a"), (2, "b"), (2, "b")):  # the last one loads what the second trained
        monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / cache))
        cfg = load_config("ci", ["backbones.vimpac.vq_steps=3", "backbones.vimpac.vq_frames=64"], method="vimpac")
        torch.manual_seed(run_seed)
        enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
        expected = torch.get_rng_state()
        prepare_stages(SimpleNamespace(encoder=enc, prepare=lambda stage: None), stage_for(cfg, progress=False))
        assert torch.equal(torch.get_rng_state(), expected)
        tokens.append(enc.tokens(torch.rand(2, 3, 5, 32, 32, generator=torch.Generator().manual_seed(0))))
        draws.append(torch.rand(3))
    assert torch.equal(tokens[0], tokens[1]) and torch.equal(tokens[1], tokens[2])
    assert torch.equal(draws[1], draws[2]) and not torch.equal(draws[0], draws[1])


def test_dalle_dvae_loading_path(tmp_path):
    """An encoder of the dall-e package's own class, pickled as its encoder.pkl is, tokenises frames."""
    from dall_e.encoder import Encoder as DalleEncoder

    torch.manual_seed(0)
    dvae = DalleEncoder(n_hid=64, n_blk_per_group=1, vocab_size=512)
    torch.save(dvae, tmp_path / "encoder.pkl")
    cfg = VimpacNetConfig(dvae_path=str(tmp_path / "encoder.pkl"), layers=1, dim=16, heads=2, head_dim=8, mlp=16)
    clip = ClipSpec(frames=2, stride=1, crop_size=16, test_short_side=16, mean=(0.0,) * 3, std=(1.0,) * 3)
    enc = Vimpac(cfg, clip)
    assert enc.codes == 512 and enc.grid == (2, 2, 2)
    x = torch.rand(1, 3, 2, 16, 16)
    frames = x.transpose(1, 2).flatten(0, 1)
    with torch.no_grad():
        want = dvae((1 - 2 * 0.1) * frames + 0.1).argmax(1).unflatten(0, (1, 2))
    assert torch.equal(enc.tokens(x), want)
    assert enc(x).shape == (1, 16)
    torch.save({"not": "a model"}, tmp_path / "bad.pkl")
    with pytest.raises(ConfigError, match="not DALL-E"):
        Vimpac(VimpacNetConfig(dvae_path=str(tmp_path / "bad.pkl")), clip)


def test_bad_vimpac_settings_are_named():
    for setting, words in (("backbones.vimpac.layout=TxW", "layout"), ("backbones.vimpac.downsample=3", "power of two"),
                           ("methods.vimpac.mask_ratio=1.5", "mask_ratio"), ("backbones.vimpac.size=huge", "size"),
                           ("pretrain.adam_betas=[0.9]", "adam_betas"),
                           ("backbones.vimpac.vq_input=hsv", "vq_input")):
        with pytest.raises(ConfigError, match=words):
            load_config("ci", [setting], method="vimpac")


def test_clips_within_a_maximum_distance():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = sampling.random_clip_starts(100, 5, 3, 2, rng, max_distance=6)
        assert abs(s[1] - s[0]) <= 6 and 0 <= min(s) and max(s) <= 100 - 13
    assert len(set(sampling.random_clip_starts(100, 5, 3, 2, rng, max_distance=0))) == 1


def test_layouts_cover_the_papers_ablation():
    assert set(LAYOUTS) == set(VIMPAC_LAYOUTS) == {"T,H|W", "TxHxW", "T,HxW", "T,H,W"}
