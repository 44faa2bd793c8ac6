"""ClipBERT (Lei et al. 2021): sparse sampling of short clips, each read together with the caption by a
single-stream transformer, trained end to end.

Per step, each video gives `clips` short clips from anywhere in it; each clip is read with a caption
(the video's own, or with probability 1/2 another video's) whose tokens are masked for masked language
modelling; the clips' image-text-matching logits are combined by the consensus (mean, max or LogSumExp)
before the loss, as ClipBERT trains its downstream tasks. The paper pre-trains on image-text pairs
(COCO and Visual Genome captions); the harness has no such data and pairs the pre-training videos with
their captions instead (docs/methods.md). Settings and sources: docs/methods.md.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.errors import ConfigError
from harness.models.clipbert import ClipBertEncoder
from harness.models.stage import Stage
from harness.models.text import stage_tokenizer
from methods.base import Method, SampleSpec, require_backbone
from methods.configs import ClipBertConfig


def consensus(logits: torch.Tensor, how: str) -> torch.Tensor:
    """(B, N clips, C) -> (B, C): the clips' logits combined before the loss. `lse` is LogSumExp over the
    clips, so that cross-entropy of the result is -log(Σ_c exp s_cy / Σ_c Σ_y' exp s_cy')."""
    if how == "mean":
        return logits.mean(1)
    if how == "max":
        return logits.amax(1)
    if how == "lse":
        return logits.logsumexp(1)
    raise ValueError(f"consensus: mean, max or lse, got {how!r}")


def mask_tokens(ids: torch.Tensor, mask: torch.Tensor, prob: float, tok, vocab: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: each real word (not [CLS], [SEP], [PAD]) is a target with probability `prob`; a
    target becomes [MASK] 80%, a random word 10%, itself 10%. Returns (input ids, targets with -100 where
    nothing is predicted). At least one target per caption, so every pair has a word to predict."""
    special = (ids == tok.cls_id) | (ids == tok.sep_id) | ~mask
    draw = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
    target = (draw < prob) & ~special
    none = ~target.any(1) & (~special).any(1)
    if none.any():  # the first real word of a caption that drew no target
        first = (~special).float().argmax(1)
        target[none, first[none]] = True
    how = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
    randoms = torch.randint(0, vocab, ids.shape, generator=generator, device="cpu").to(ids.device)
    inputs = torch.where(target & (how < 0.8), torch.full_like(ids, tok.mask_id), ids)
    inputs = torch.where(target & (how >= 0.8) & (how < 0.9), randoms, inputs)
    return inputs, torch.where(target, ids, torch.full_like(ids, -100))


class CrossVideoText(nn.Module):
    """The "video-text" export of a cross-encoder: a clip and a caption are scored together (the match
    logit of the ITM head), so every pair takes one forward. Visual tokens are computed once per clip."""

    kind = "cross"

    def __init__(self, encoder: ClipBertEncoder, itm: nn.Module, tokenizer):
        super().__init__()
        self.encoder, self.itm, self.tokenizer = encoder, itm, tokenizer

    def visual(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, n * D): a clip's visual tokens, flat (as `extract` stores features)."""
        return self.encoder.visual(clips).flatten(1)

    def match(self, visual: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Match logits (B,) of B flat visual token sets against B captions, pair by pair."""
        ids, mask = self.tokenizer.encode(texts)
        dev = visual.device
        vis = visual.view(len(visual), -1, self.encoder.width)
        pooled = self.encoder.joint(vis, ids.to(dev), mask.to(dev))[1]
        logits = self.itm(pooled)
        return logits[:, 1] - logits[:, 0]


class ClipBert(Method):
    """MLM + ITM on (sparse clips of a video, a caption), ITM logits combined across clips by consensus."""

    def __init__(self, encoder, cfg: ClipBertConfig):
        super().__init__(encoder, cfg)
        require_backbone(encoder, ClipBertEncoder, "clipbert", "clipbert", "CNN + BERT")
        dim = encoder.width
        self.mlm = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim, eps=1e-12))
        self.mlm_bias = nn.Parameter(torch.zeros(encoder.bert.config.vocab_size))
        self.itm = nn.Linear(dim, 2)
        self.tokenizer = None  # set by `prepare`

    def prepare(self, stage: Stage) -> dict:
        self.tokenizer, report = stage_tokenizer(stage, self.cfg.text, "clipbert")
        rows = self.encoder.bert.config.vocab_size
        if self.tokenizer.vocab_size > rows:
            raise ConfigError(f"clipbert: the text tokenizer has {self.tokenizer.vocab_size} tokens, more than the "
                              f"{rows} word rows of backbones.clipbert.vocab_size; raise it")
        self.encoder.special.copy_(torch.tensor([self.tokenizer.cls_id, self.tokenizer.sep_id]))
        return report

    def sample_spec(self) -> SampleSpec:
        if self.tokenizer is None:
            raise RuntimeError("clipbert: prepare() builds the text tokenizer before training")
        return SampleSpec(clips=self.cfg.clips, pair_single_clip=False, streams=("video", "text"), captions=1,
                          tokenizer=self.tokenizer, whole_caption=self.cfg.whole_caption)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        c, tok = self.cfg, self.tokenizer
        clips = batch["clips"]  # (B, N, C, T, H, W)
        b, n = clips.shape[:2]
        ids, mask = batch["text_ids"][:, 0, 0], batch["text_mask"][:, 0, 0]  # the caption of the first clip
        # ITM: with probability itm_negative a caption of another video (the batch rolled by a random shift)
        shift = int(torch.randint(1, max(b, 2), ()).item()) if b > 1 else 0
        negative = (torch.rand(b) < c.itm_negative).to(ids.device) & torch.tensor(b > 1, device=ids.device)
        pair_ids = torch.where(negative[:, None], ids.roll(shift, 0), ids)
        pair_mask = torch.where(negative[:, None], mask.roll(shift, 0), mask)
        inputs, targets = mask_tokens(pair_ids, pair_mask, c.mlm_prob, tok, self.encoder.bert.config.vocab_size)
        targets[negative] = -100  # words are predicted from their own video only
        vis = self.encoder.visual(clips.flatten(0, 1))  # (B*N, n_vis, D)
        states, pooled = self.encoder.joint(vis, inputs.repeat_interleave(n, 0), pair_mask.repeat_interleave(n, 0))
        itm_logits = consensus(self.itm(pooled).view(b, n, 2).float(), c.consensus)
        itm = F.cross_entropy(itm_logits, (~negative).long())
        out = {"itm_loss": itm.detach(), "itm_acc": (itm_logits.argmax(1) == (~negative).long()).float().mean()}
        loss = c.itm_weight * itm
        words = targets.repeat_interleave(n, 0)
        chosen = words != -100
        if chosen.any():
            text_states = states[:, :ids.shape[1]][chosen]
            logits = (self.mlm(text_states) @ self.encoder.bert.get_input_embeddings().weight.T + self.mlm_bias).float()
            mlm = F.cross_entropy(logits, words[chosen])
            out.update(mlm_loss=mlm.detach(), mlm_acc=(logits.argmax(1) == words[chosen]).float().mean())
            loss = loss + c.mlm_weight * mlm
        return {"loss": loss, **out}

    def exports(self) -> dict[str, nn.Module]:
        return {"video": self.encoder, "video-text": CrossVideoText(self.encoder, self.itm, self.tokenizer)}
