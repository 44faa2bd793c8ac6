"""ClipBERT: the clip consensus against hand computations, BERT's token masking, the single-stream
encoder and the cross-encoder's pair scores."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness import catalog
from harness.builders import build_encoder
from harness.config import load_config
from harness.errors import ConfigError
from harness.models.text import tokenizer_for
from methods.clipbert import consensus, mask_tokens
from methods.configs import TextConfig
from protocols.video_text import pair_scores


def test_lse_consensus_is_the_cross_entropy_the_paper_writes():
    """CE(logsumexp over clips) = -log(Σ_c exp s_cy / Σ_c Σ_y' exp s_cy'), by hand for 2 clips and 3 classes."""
    s = torch.tensor([[[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]])  # (1 video, 2 clips, 3 classes)
    y = 1
    by_hand = -math.log((math.exp(2.0) + math.exp(-1.0)) /
                        sum(math.exp(v) for v in (1.0, 2.0, 0.5, 0.0, -1.0, 3.0)))
    assert F.cross_entropy(consensus(s, "lse"), torch.tensor([y])).item() == pytest.approx(by_hand, rel=1e-6)
    assert consensus(s, "mean").tolist() == [[0.5, 0.5, 1.75]]
    assert consensus(s, "max").tolist() == [[1.0, 2.0, 3.0]]
    with pytest.raises(ValueError, match="consensus"):
        consensus(s, "median")


def _tokenizer(tmp_path):
    tok, _ = tokenizer_for(TextConfig(kind="word", vocab_size=64, max_len=12),
                           ["a red 3 moves up then a blue 3 shrinks.", "the digit four, drawn in green, grows larger."],
                           {}, tmp_path, log=lambda m: None)
    return tok


def test_bert_masking_picks_real_words_and_replaces_them_80_10_10(tmp_path):
    tok = _tokenizer(tmp_path)
    ids, mask = tok.encode(["a red 3 moves up then a blue 3 shrinks."] * 4000)
    g = torch.Generator().manual_seed(0)
    inputs, targets = mask_tokens(ids, mask, 0.15, tok, 64, generator=g)
    chosen = targets != -100
    real = mask & (ids != tok.cls_id) & (ids != tok.sep_id)
    assert not (chosen & ~real).any() and chosen.any(1).all()  # never [CLS]/[SEP]/[PAD]; a word in every caption
    assert chosen.sum() / real.sum() == pytest.approx(0.15, abs=0.02)
    assert torch.equal(targets[chosen], ids[chosen])
    became = inputs[chosen]
    assert (became == tok.mask_id).float().mean() == pytest.approx(0.8, abs=0.02)
    assert (became == ids[chosen]).float().mean() == pytest.approx(0.1 + 0.1 / 64, abs=0.02)
    assert torch.equal(inputs[~chosen], ids[~chosen])


def _clipbert(tmp_path):
    cfg = load_config("ci", method="clipbert")
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    method = catalog.METHODS.get("clipbert")(enc, cfg.method_cfg)
    method.tokenizer = _tokenizer(tmp_path)
    return cfg, method


def test_the_encoder_reads_text_and_mean_pooled_frames_in_one_stream(tmp_path):
    cfg, method = _clipbert(tmp_path)
    enc = method.encoder.eval()
    c = cfg.backbone.clip
    x = torch.randn(3, 3, c.frames, c.crop_size, c.crop_size)
    vis = enc.visual(x)
    assert vis.shape == (3, enc.grid[0] * enc.grid[1], enc.feature_dim)
    # the frames of a clip are mean-pooled: their order does not matter
    assert torch.allclose(enc.visual(x.flip(2)), vis, atol=1e-5)
    ids, mask = method.tokenizer.encode(["a red 3 moves up.", "a blue 4 shrinks.", "x"])
    states, pooled = enc.joint(vis, ids, mask)
    assert states.shape == (3, ids.shape[1] + vis.shape[1], enc.feature_dim) and pooled.shape == (3, enc.feature_dim)
    # the caption changes the pooled output; padding does not
    other = enc.joint(vis, *method.tokenizer.encode(["a green 9 grows larger."] * 3))[1]
    assert not torch.allclose(other, pooled)
    ids2 = torch.cat([ids, torch.zeros(3, 4, dtype=ids.dtype)], 1)
    mask2 = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
    assert torch.allclose(enc.joint(vis, ids2, mask2)[1], pooled, atol=1e-5)
    assert enc.features(x).shape == (3, enc.feature_dim)


def test_the_cnn_readout_is_the_trunk_pooled_over_grid_and_frames_and_leaves_bert_out():
    """`readout = "cnn"` is the image-level stand-in for ClipBERT's CNN pre-training: what a `supervised` run
    teaches is the ResNet alone, read as an image classifier reads it."""
    cfg = load_config("ci", ["backbone.name=clipbert", "backbones.clipbert.readout='cnn'"], method="supervised")
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip).eval()
    c = cfg.backbone.clip
    x = torch.randn(2, 3, c.frames, c.crop_size, c.crop_size)
    by_frame = [enc.cnn(x[:, :, t]).mean((2, 3)) for t in range(c.frames)]
    assert enc.feature_dim == by_frame[0].shape[1]
    assert torch.allclose(enc.features(x), torch.stack(by_frame).mean(0), atol=1e-5)
    enc.features(x).sum().backward()
    assert all(p.grad is None for p in enc.bert.parameters()) and any(p.grad is not None for p in enc.cnn.parameters())


def test_clipbert_losses_and_the_cross_encoder_scores(tmp_path):
    cfg, method = _clipbert(tmp_path)
    c = cfg.backbone.clip
    b = 6
    g = torch.Generator().manual_seed(0)
    ids, mask = method.tokenizer.encode(["a red 3 moves up then a blue 3 shrinks."] * b)
    batch = {"clips": torch.randn(b, 2, 3, c.frames, c.crop_size, c.crop_size, generator=g),
             "text_ids": ids.view(b, 1, 1, -1), "text_mask": mask.view(b, 1, 1, -1),
             "text_valid": torch.ones(b, 1, 1, dtype=torch.bool)}
    method.train()
    torch.manual_seed(0)
    out = method.losses(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and {"itm_loss", "mlm_loss", "itm_acc", "mlm_acc"} <= set(out)
    assert method.encoder.cnn[0].weight.grad is not None  # end to end: the CNN learns too
    scorer = method.exports()["video-text"].eval()
    assert scorer.kind == "cross" and set(method.exports()) == {"video", "video-text"}
    with torch.no_grad():
        views = torch.stack([scorer.visual(batch["clips"][:, v]) for v in range(2)], dim=1)  # (6 videos, 2 views, F)
    texts = ["a red 3 moves up.", "a blue 4 shrinks.", "a green 9 grows larger."]
    s = pair_scores(scorer, views, texts, torch.device("cpu"), chunk=5)
    by_hand = torch.stack([torch.stack([scorer.match(views[:, v], [t] * b).sigmoid() for v in range(2)]).mean(0)
                           for t in texts])
    assert s.shape == (3, b) and torch.allclose(s, by_hand, atol=1e-5)


def test_clipbert_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="methods.clipbert.consensus"):
        load_config("ci", ["methods.clipbert.consensus='median'"], method="clipbert")
    with pytest.raises(ConfigError, match="backbones.clipbert.cnn_stages"):
        load_config("ci", ["backbones.clipbert.cnn_stages=5"], method="clipbert")
    with pytest.raises(ConfigError, match="backbones.clipbert.readout"):
        load_config("ci", ["backbones.clipbert.readout='mean'"], method="clipbert")
