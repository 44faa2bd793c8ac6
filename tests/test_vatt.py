"""VATT and what it brings: DropToken, the towers and common spaces, samples with audio and captions cut
to each clip's time span, the text tokenizer, and the video-text protocols' metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import harness.models.vatt as vit
from harness.builders import build_encoder
from harness.config import load_config
from harness.data import streams
from harness.data.datasets import PretrainClips, VideoSet
from harness.errors import ConfigError
from harness.models.text import TextTokenizer, load_tokenizer_file, tokenizer_for
from methods.configs import TextConfig
from protocols.video_text import pair_ranks, recall_metrics


def _vatt(towers: str = "specific"):
    from harness import catalog

    cfg = load_config("ci", [f"methods.vatt.towers={towers!r}"], method="vatt")
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    method = catalog.METHODS.get("vatt")(enc, cfg.method_cfg)
    tok, _ = tokenizer_for(cfg.method_cfg.text, ["a red 3 moves up.", "the digit two, drawn in blue, shrinks."],
                           {"name": "test"}, _tmp_cache(), log=lambda m: None)
    method.tokenizer = tok
    return cfg, method


_CACHE = {}


def _tmp_cache():
    import tempfile
    from pathlib import Path

    return _CACHE.setdefault("dir", Path(tempfile.mkdtemp()))


def _batch(cfg, method, b: int = 6, k: int = 2) -> dict:
    c = cfg.backbone.clip
    g = torch.Generator().manual_seed(0)
    ids, mask = method.tokenizer.encode(["a red 3 moves up."] * (b * k))
    return {"clips": torch.randn(b, 1, 3, c.frames, c.crop_size, c.crop_size, generator=g),
            "audio": torch.randn(b, 1, method.samples, generator=g) * 0.1,
            "audio_valid": torch.ones(b, dtype=torch.bool),
            "text_ids": ids.view(b, 1, k, -1), "text_mask": mask.view(b, 1, k, -1),
            "text_valid": torch.ones(b, 1, k, dtype=torch.bool)}


def test_drop_token_keeps_the_configured_share_in_training_and_none_at_evaluation(monkeypatch):
    x = torch.arange(2 * 10 * 3, dtype=torch.float32).view(2, 10, 3)
    kept = vit.drop_tokens(x, 0.5, torch.Generator().manual_seed(0))
    assert kept.shape == (2, 5, 3)
    assert torch.equal(kept[0] - x[0, 0, 0], kept[1] - x[1, 0, 0])  # the same positions for the whole batch
    assert vit.drop_tokens(x, 0.0) is x and vit.drop_tokens(x, 0.75).shape[1] == 2
    cfg, method = _vatt()
    seen = []
    real = vit.drop_tokens
    monkeypatch.setattr(vit, "drop_tokens", lambda t, rate, *a: seen.append((t.shape[1], rate)) or real(t, rate, *a))
    batch = _batch(cfg, method)
    method.train()
    method.losses(batch)
    video_tokens = np.prod(method.encoder.grid)
    assert seen == [(video_tokens, 0.5), (method.samples // 128, 0.5)]  # video, then audio: half of each
    seen.clear()
    method.eval()
    with torch.no_grad():
        method.losses(batch)
        method.encoder.features(batch["clips"][:, 0])  # what every protocol calls
    assert all(rate == 0 for _, rate in seen)


def test_vatt_losses_train_both_spaces_and_the_shared_variant_shares_one_transformer():
    for towers in ("specific", "shared"):
        cfg, method = _vatt(towers)
        method.train()
        out = method.losses(_batch(cfg, method))
        out["loss"].backward()
        assert torch.isfinite(out["loss"]) and out["nce_va"] > 0 and out["milnce_vt"] > 0
        assert out["loss"].item() == pytest.approx((out["nce_va"] + out["milnce_vt"]).item() / 2, rel=1e-6)
        shared = method.audio.stack is method.encoder.stack and method.text_tower.stack is method.encoder.stack
        assert shared == (towers == "shared")
        assert next(method.encoder.embed.parameters()).grad is not None and method.heads.text_vt.weight.grad is not None
    ex = method.exports()
    assert set(ex) == {"video", "audio", "text", "video-text"} and ex["video-text"].kind == "dual"
    with torch.no_grad():
        emb = ex["video-text"].text(["a red 3 moves up.", "a blue 7 shrinks."])
    assert emb.shape == (2, cfg.method_cfg.vt_dim) and torch.allclose(emb.norm(dim=1), torch.ones(2))


def test_a_clip_without_audio_or_captions_is_masked_not_dropped():
    cfg, method = _vatt()
    batch = _batch(cfg, method)
    batch["audio_valid"][1] = False
    batch["text_valid"][2] = False
    method.train()
    assert torch.isfinite(method.losses(batch)["loss"])


def test_audio_cut_covers_the_clip_time_span():
    rate = 100
    wave = np.arange(1000, dtype=np.float32)  # sample value = its index: 10 s at 100 Hz
    start, end = streams.clip_seconds(first_frame=16, frames=8, stride=2, rate=8.0)
    assert (start, end) == (2.0, 2.0 + 15 / 8)  # frames 16..30 at 8 fps: from 2 s to the end of frame 30
    cut = streams.audio_cut(wave, rate, start, int(round((end - start) * rate)))
    assert cut[0] == 200 and cut[-1] == int(round(end * rate)) - 1
    tail = streams.audio_cut(wave, rate, 9.9, 50)  # past the end: zeros, not a wrap or an error
    assert tail[:10].tolist() == list(range(990, 1000)) and not tail[10:].any()


def test_samples_carry_the_audio_and_captions_under_each_clip(ci_manifest):
    """On the ci data: each clip's audio is the track's samples over the clip's seconds, and its nearest
    caption is the sentence of the segment its middle falls in."""
    from harness.data.video import read_audio

    cfg = load_config("ci", method="vatt")
    body = json.loads(ci_manifest.read_text())
    entries = [v for v in body["videos"] if v["split"] == "pretrain"][:4]
    videos = VideoSet(ci_manifest.parent, entries, cache_frames=False, fps=8)
    tok, _ = tokenizer_for(TextConfig(vocab_size=256), [e["caption"] for e in entries], {"n": 4}, _tmp_cache(),
                           log=lambda m: None)
    data = PretrainClips(videos, cfg.backbone.clip, cfg.augment, 1, seed=0, views=1, streams=("video", "audio", "text"),
                         captions=2, audio_rate=8000, tokenizer=tok)
    item = data[(0, 1)]
    wave, rate = read_audio(videos.path(1))
    seconds = item["audio"].shape[-1] / rate
    assert seconds == pytest.approx(15 / 8, abs=1e-3)
    found = [s for s in range(len(wave) - item["audio"].shape[-1]) if np.allclose(wave[s:s + 5], item["audio"][0, :5])]
    assert found, "the clip's audio is a stretch of the track"
    clip_start = found[0] / rate
    told = streams.narrations(entries[1], 8.0)
    assert len(told) == 4 and told[1].start == 2.0 and told[1].end == 4.0
    mid = clip_start + seconds / 2
    assert item["captions"][0][0] == next(n.text for n in told if n.start <= mid < n.end)
    batch = data.collate([item, data[(0, 2)]])
    assert batch["audio"].shape == (2, 1, 15000) and batch["text_ids"].shape == (2, 1, 2, 16)
    assert batch["text_valid"].all() and batch["audio_valid"].all()


def test_nearest_narrations_put_the_clip_s_own_first_and_mask_what_is_missing():
    told = [streams.Narration(0, 2, "a"), streams.Narration(2, 4, "b"), streams.Narration(4, 6, "c")]
    assert streams.nearest_narrations(told, 2.5, 4.5, 2) == ["b", "c"]  # middle 3.5 is in b; c is nearer than a
    assert streams.nearest_narrations(told[:1], 0, 1, 3) == ["a", None, None]
    assert streams.narrations({"caption": "one sentence.", "frames": 24}, 8.0) == [streams.Narration(0, 3, "one sentence.")]
    told = {"frames": 32, "narrations": [[0, 1, "first."], [1, 4, "second."]]}
    assert streams.whole_caption(told, 8.0) == [streams.Narration(0, 4, "first. second.")]  # ClipBERT's pairing
    assert streams.whole_caption({"frames": 8}, 8.0) == []


def test_text_tokenizer_is_trained_once_and_pads_every_caption(tmp_path):
    cfg = TextConfig(kind="word", vocab_size=64, max_len=8)
    logs = []
    tok, report = tokenizer_for(cfg, ["a red 3 moves up.", "a blue 4 shrinks."], {"d": 1}, tmp_path, logs.append)
    again, report2 = tokenizer_for(cfg, [], {"d": 1}, tmp_path, logs.append)
    assert report == report2 and "reusing" in logs[-1]
    ids, mask = tok.encode(["a red 4 shrinks.", "a purple 9 moves up and then shrinks very quickly now."])
    assert ids.shape == (2, 8) and ids[:, 0].eq(tok.cls_id).all() and mask[0].sum() == 7  # [CLS] 4 words . [SEP]
    assert tok.words(ids[:1]) == ["a red 4 shrinks ."]
    assert ids[1, -1] == tok.sep_id and mask[1].all()  # cut to max_len, still closed by [SEP]
    assert (ids[1] == tok.unk_id).any()  # 'purple' was never seen


def test_a_bert_vocab_file_loads_with_its_own_special_ids(tmp_path):
    words = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "##dish"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = TextTokenizer(load_tokenizer_file(tmp_path, TextConfig()), max_len=6)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    ids, _ = tok.encode(["A reddish"])
    assert ids[0].tolist() == [101, 104, 105, 106, 102, 0]
    with pytest.raises(ConfigError, match="raise text.vocab_size"):  # more ids than the text tower embeds
        tokenizer_for(TextConfig(path=str(tmp_path), vocab_size=64), [], {}, tmp_path, lambda m: None)


def _ranks_by_hand(sim: np.ndarray) -> list[int]:
    out = []
    for i in range(len(sim)):
        order = sorted(range(len(sim)), key=lambda j: (-sim[i, j], j != i))  # ties: the true pair first
        out.append(order.index(i) + 1)
    return out


def test_retrieval_ranks_and_recalls_match_a_brute_force_reference():
    g = torch.Generator().manual_seed(3)
    sim = torch.randn(40, 40, generator=g)
    sim[5, 7] = sim[5, 5]  # a tie with the true pair
    ranks = _ranks_by_hand(sim.numpy())
    assert pair_ranks(sim).tolist() == ranks
    metrics, ci = recall_metrics(sim, [1, 5, 10], "t2v")
    for k in (1, 5, 10):
        assert metrics[f"t2v_R@{k}"] == pytest.approx(100 * np.mean([r <= k for r in ranks]))
        assert ci[f"t2v_R@{k}"][0] <= metrics[f"t2v_R@{k}"] <= ci[f"t2v_R@{k}"][1]
    assert metrics["t2v_MedR"] == float(torch.tensor(ranks).float().median())
    perfect, _ = recall_metrics(torch.eye(10), [1], "v2t", "_1view")
    assert perfect == {"v2t_R@1_1view": 100.0, "v2t_MedR_1view": 1.0}


def test_vatt_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="methods.vatt.drop_token"):
        load_config("ci", ["methods.vatt.drop_token=1.0"], method="vatt")
    with pytest.raises(ConfigError, match="methods.vatt.text.max_len"):
        load_config("ci", ["methods.vatt.text.max_len=1"], method="vatt")
    with pytest.raises(ConfigError, match="backbones.vatt.patch"):
        load_config("ci", ["backbones.vatt.patch=[2, 4]"], method="vatt")


def test_a_convolutional_stem_gives_the_tubelets_token_grid_and_names_the_encoder_only_when_set():
    base = load_config("embedded", ["backbone.name='vatt'", "backbones.vatt.stem='tubelet'",
                                    "backbones.vatt.patch=[2, 4, 4]"], method="supervised")
    conv = load_config("embedded", ["backbone.name='vatt'", "backbones.vatt.stem='conv'",
                                    "backbones.vatt.patch=[2, 4, 4]"], method="supervised")
    a, b = (build_encoder(c.backbone.name, c.backbone_cfg, c.backbone.clip) for c in (base, conv))
    x = torch.randn(2, 3, 8, 16, 16)
    assert a.tokens(x).shape == b.tokens(x).shape == (2, 64, 128) and b(x).shape == (2, 128)
    assert isinstance(b.embed, torch.nn.Sequential) and sum(isinstance(m, torch.nn.Conv3d) for m in b.embed) == 3
    assert "backbones.vatt.stem" not in base.encoder_identity(True)  # encoders keyed before the option keep their key
    assert conv.encoder_identity(True)["backbones.vatt.stem"] == "conv"
    with pytest.raises(ConfigError, match="one power of two"):
        load_config("embedded", ["backbone.name='vatt'", "backbones.vatt.stem='conv'", "backbones.vatt.patch=[2, 3, 3]"],
                    method="supervised")


def test_the_hybrid_stem_is_small3ds_first_stages_on_the_tubelets_grid():
    """With an 8x8 patch the hybrid stem is small3d's stem and first stages (the layers whose features the
    transformer can learn digits from at 16 px), then a 1x1x1 projection; its grid is the tubelet's."""
    tube, hyb = (load_config("embedded", ["backbone.name='vatt'", f"backbones.vatt.stem='{stem}'"], method="supervised")
                 for stem in ("tubelet", "hybrid"))  # the embedded default: hybrid, 2x8x8
    a, b = (build_encoder(c.backbone.name, c.backbone_cfg, c.backbone.clip) for c in (tube, hyb))
    x = torch.randn(2, 3, 8, 16, 16)
    assert a.tokens(x).shape == b.tokens(x).shape == (2, 16, 128)
    small = build_encoder("small3d", load_config("embedded").backbone_cfg, hyb.backbone.clip)
    shapes = [tuple(p.shape) for p in b.embed[:-1].parameters()]
    assert shapes == [tuple(p.shape) for p in small.trunk[:4].parameters()]
    # the default since 2026-12-05, named in the key all the same: the encoders keyed before the option were
    # tubelet towers and keep their unnamed key
    assert hyb.encoder_identity(True)["backbones.vatt.stem"] == "hybrid"
    assert "backbones.vatt.stem" not in tube.encoder_identity(True)
