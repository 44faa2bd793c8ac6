"""VATT (Akbari et al. 2021): video, audio and text transformers trained from scratch, without labels, by
contrasting the modalities of the same clip.

Each clip comes with the raw audio under it and the captions nearest it in time. DropToken keeps half
of the video and audio tokens during pre-training. The video's [AGG] feature goes into a video-audio
space (512-d; the audio's feature by one Linear) and, from there, into a video-text space (256-d; the
text's by one Linear). The losses are NCE between a clip's video and audio embeddings and MIL-NCE
between its video and its nearest captions, both over the global batch at τ = 0.07, averaged.
`towers = "shared"` is VATT-MA: one transformer for the three modalities. Settings and sources:
docs/methods.md.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from harness.errors import ConfigError
from harness.models.stage import Stage
from harness.models.text import T5Tower, TextEncoder, stage_tokenizer
from harness.models.vatt import SIZES, VattVideo, WaveformTower, WordTower
from methods.base import Method, SampleSpec, require_backbone
from methods.configs import VattConfig
from methods.losses import mil_nce_loss


class CommonSpaces(nn.Module):
    """VATT's hierarchical "FAC" heads: video -> S_va -> S_vt, audio -> S_va, text -> S_vt."""

    def __init__(self, video_dim: int, audio_dim: int, text_dim: int, va: int, vt: int):
        super().__init__()
        self.video_va = nn.Sequential(nn.Linear(video_dim, va, bias=False), nn.BatchNorm1d(va), nn.ReLU(),
                                      nn.Linear(va, va, bias=False), nn.BatchNorm1d(va))
        self.audio_va = nn.Linear(audio_dim, va)
        self.va_vt = nn.Sequential(nn.ReLU(), nn.Linear(va, vt, bias=False), nn.BatchNorm1d(vt))
        self.text_vt = nn.Linear(text_dim, vt)


class DualVideoText(nn.Module):
    """The "video-text" export of a dual encoder: clips and captions embedded apart into one space
    (L2-normalised), compared by cosine similarity."""

    kind = "dual"

    def __init__(self, video: nn.Module, to_va: nn.Module, va_vt: nn.Module, text: TextEncoder, text_vt: nn.Module):
        super().__init__()
        self.video_tower, self.to_va, self.va_vt, self.text_tower, self.text_vt = video, to_va, va_vt, text, text_vt

    def video(self, clips: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.va_vt(self.to_va(self.video_tower.features(clips))), dim=-1)

    def text(self, texts: list[str]) -> torch.Tensor:
        return nn.functional.normalize(self.text_vt(self.text_tower(texts)), dim=-1)


class AudioEncoder(nn.Module):
    """The "audio" export: raw waveforms (B, S) at `rate` Hz, `samples` per clip -> features."""

    feature_layer = WaveformTower.feature_layer

    def __init__(self, tower: WaveformTower, rate: int, samples: int):
        super().__init__()
        self.tower, self.rate, self.samples = tower, rate, samples
        self.feature_dim = tower.feature_dim

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        return self.tower.features(wave)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.features(wave)


class Vatt(Method):
    """NCE(video, audio) + MIL-NCE(video, captions) through the hierarchical common spaces."""

    def __init__(self, encoder, cfg: VattConfig):
        super().__init__(encoder, cfg)
        require_backbone(encoder, VattVideo, "vatt", "vatt", "its video transformer")
        clip = encoder.clip_spec
        if not clip.fps:
            raise ConfigError("method vatt cuts audio by time: set backbone.clip.fps (the rate clips are read at)")
        seconds = ((clip.frames - 1) * clip.stride + 1) / clip.fps
        self.samples = int(round(seconds * cfg.audio_rate))
        shared = encoder.stack if cfg.towers == "shared" else None
        audio_shape = SIZES[encoder.cfg.size] if shared else SIZES[cfg.audio_size]
        self.audio = WaveformTower(audio_shape, cfg.audio_patch, self.samples, cfg.dropout, shared)
        if shared:
            self.text_tower = WordTower(audio_shape, cfg.text.vocab_size, cfg.text.max_len, cfg.dropout, shared)
        else:
            self.text_tower = T5Tower(cfg.text_size, cfg.text.vocab_size, cfg.dropout, cfg.text_model)
        self.heads = CommonSpaces(encoder.feature_dim, self.audio.feature_dim, self.text_tower.feature_dim,
                                  cfg.va_dim, cfg.vt_dim)
        self.tokenizer = None  # set by `prepare`

    def prepare(self, stage: Stage) -> dict:
        self.tokenizer, report = stage_tokenizer(stage, self.cfg.text, "vatt")
        return report

    def sample_spec(self) -> SampleSpec:
        if self.tokenizer is None:
            raise RuntimeError("vatt: prepare() builds the text tokenizer before training")
        return SampleSpec(clips=1, pair_single_clip=False, streams=("video", "audio", "text"),
                          captions=self.cfg.captions, audio_rate=self.cfg.audio_rate, tokenizer=self.tokenizer)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        c = self.cfg
        drop = c.drop_token if self.training else 0.0
        clips = batch["clips"][:, 0]  # one clip per video
        wave = batch["audio"][:, 0]
        if self.training and c.audio_noise > 0:
            wave = wave + torch.randn_like(wave) * c.audio_noise * wave.abs().amax(dim=1, keepdim=True)
        ids, mask, valid = batch["text_ids"][:, 0], batch["text_mask"][:, 0], batch["text_valid"][:, 0]
        b, k, length = ids.shape
        video_va = self.heads.video_va(self.encoder.features(clips, drop))
        audio_va = self.heads.audio_va(self.audio.features(wave, drop))
        video_vt = self.heads.va_vt(video_va)
        text_vt = self.heads.text_vt(self.text_tower.features(ids.reshape(b * k, length),
                                                              mask.reshape(b * k, length))).view(b, k, -1)
        va = mil_nce_loss(video_va, audio_va[:, None], batch["audio_valid"][:, None], c.temperature)
        vt = mil_nce_loss(video_vt, text_vt, valid, c.temperature)
        loss = (c.va_weight * va + c.vt_weight * vt) / (c.va_weight + c.vt_weight)
        return {"loss": loss, "nce_va": va.detach(), "milnce_vt": vt.detach()}

    def exports(self) -> dict[str, nn.Module]:
        """The three towers and the video-text space (its text side works once `prepare` has run)."""
        text = TextEncoder(self.tokenizer, self.text_tower)
        return {"video": self.encoder, "audio": AudioEncoder(self.audio, self.cfg.audio_rate, self.samples),
                "text": text,
                "video-text": DualVideoText(self.encoder, self.heads.video_va, self.heads.va_vt, text, self.heads.text_vt)}
