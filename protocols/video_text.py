"""The protocols that score a method's video-text space (`Method.exports()["video-text"]`): `zeroshot`
classifies test videos by class-name prompts, `retrieval-text` ranks test videos by their own captions
and captions by their videos. Nothing is trained.

Test videos are read as every other protocol reads them (all views, each video decoded once). A dual
encoder (VATT) embeds views and captions apart: a video is the normalised mean of its views'
embeddings (VATT averages its test clips'), and a pair scores their cosine similarity. A cross-encoder
(ClipBERT) reads each caption with each view: a pair scores the mean over the views of its match
probability, one forward per (caption, view) pair on visual tokens computed once per view.
"""
from __future__ import annotations

import time
from functools import partial

import torch
import torch.nn as nn

from harness.data.datasets import LabelledViews
from harness.engine import use_bf16
from harness.errors import ConfigError
from protocols.base import EvalContext, TaskResult, bootstrap_ci, class_outputs, topk, video_outputs
from protocols.configs import RetrievalTextConfig, ZeroshotConfig
from protocols.frozen import TaskProtocol, task_groups, test_layout, video_embedding
from protocols.multiview import extract

KINDS = ("dual", "cross")


class _Side(nn.Module):
    """Clips -> what the scorer keeps of a view (`video` embeddings, or `visual` tokens), as `extract` calls
    an encoder."""

    def __init__(self, scorer: nn.Module):
        super().__init__()
        self.scorer = scorer

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.scorer.video(clips) if self.scorer.kind == "dual" else self.scorer.visual(clips)


def scorer_of(exports: dict, protocol: str) -> nn.Module:
    scorer = exports["video-text"]
    if getattr(scorer, "kind", None) not in KINDS:
        raise ConfigError(f"protocol {protocol!r}: the method's video-text scorer is of kind "
                          f"{getattr(scorer, 'kind', None)!r}, not one of {KINDS}")
    return scorer


@torch.no_grad()
def pair_scores(scorer: nn.Module, views: torch.Tensor, texts: list[str], device: torch.device,
                chunk: int = 512) -> torch.Tensor:
    """(len(texts), N) scores of every text against every video whose views are `views` (N, V, F).

    dual: cosine of the text's embedding with the normalised mean of the video's view embeddings;
    cross: the mean over the views of the match probability of (text, view)."""
    if scorer.kind == "dual":
        text = torch.cat([scorer.text(texts[i:i + chunk]).float().cpu() for i in range(0, len(texts), chunk)])
        return text @ video_embedding(views).T
    n, v, f = views.shape
    flat = views.reshape(n * v, f)
    rows = []
    for t in texts:
        logits = torch.cat([scorer.match(part.to(device), [t] * len(part)).float().cpu() for part in flat.split(chunk)])
        rows.append(logits.sigmoid().view(n, v).mean(1))
    return torch.stack(rows)


class VideoTextProtocol(TaskProtocol):
    needs = ("video-text",)
    aggregation = ("dual encoders: the normalised mean of the L2-normalised view embeddings; cross-encoders: the "
                   "mean over the views of the match probability")

    def groups(self, exports: dict, ctx: EvalContext):
        """Per group of tasks over the same test videos: (group, per-view outputs, their entries, the bad-video
        counter, seconds)."""
        cfg, c = ctx.cfg, self.cfg
        side = _Side(scorer_of(exports, c.section)).to(ctx.device).eval()
        for g in task_groups(ctx, c):
            t0 = time.perf_counter()
            videos = g.test
            if getattr(g.cfg, "max_videos", 0):
                videos.entries = videos.entries[:g.cfg.max_videos]
            bad = g.bad_counters(cfg)["test"]
            ds = LabelledViews(videos, cfg.backbone.clip, test_layout(g.cfg), g.label_keys)
            with torch.no_grad():
                feats = extract(side, ds, ctx.device, g.cfg.feature_batch, cfg.data.num_workers, bad,
                                bf16=use_bf16(cfg.pretrain, ctx.device), desc="test views",
                                progress=ctx.progress, clip_batch=g.cfg.clip_batch)
            yield g, feats, [videos.entries[i] for i in feats.index.tolist()], bad, time.perf_counter() - t0

    @staticmethod
    def scored_views(feats, lay, score) -> dict[str, torch.Tensor]:
        """`score` of the views each number reads: all grid views (""), the centre view alone ("_1view").
        When the grid is that one view, it is scored once and serves both."""
        grid = feats.feats[:, :lay.grid]
        whole = score(grid)
        return {"": whole, "_1view": whole if lay.grid == 1 and lay.centre == 0 else score(feats.feats[:, lay.centre][:, None])}

    @staticmethod
    def counts(g, lay, test_videos: int) -> dict[str, int]:
        """The record's counts: nothing trained, the test videos and their views."""
        return {"train_videos": 0, "test_videos": test_videos, "views": lay.grid,
                "temporal_views": g.cfg.temporal_views, "spatial_views": g.cfg.spatial_views}


class Zeroshot(VideoTextProtocol):
    """Top-1/5 of test videos against each class's prompts; nothing is trained."""

    cfg: ZeroshotConfig
    mode = "no training: test videos scored against each class's prompts in the method's video-text space"

    def evaluate(self, exports: dict[str, nn.Module], ctx: EvalContext) -> list[TaskResult]:
        scorer = scorer_of(exports, "zeroshot")
        results = []
        for g, feats, entries, bad, seconds in self.groups(exports, ctx):
            lay = test_layout(g.cfg)
            for t in g.tasks:
                t1 = time.perf_counter()
                prompts = t.class_prompts()
                y = feats.labels[t.label]
                metrics, ci, views = {}, {}, {}
                scored = self.scored_views(feats, lay, partial(self.class_scores, scorer, prompts=prompts, device=ctx.device))
                for suffix, s in scored.items():  # s: (N, classes)
                    metrics[f"top1{suffix}"], metrics[f"top5{suffix}"] = topk(s, y, 1), topk(s, y, 5)
                    ci[f"top1{suffix}"] = bootstrap_ci(s.argmax(1) == y)
                    views[suffix.lstrip("_") or "all"] = class_outputs(s, y)
                results.append(TaskResult(
                    task=t.name, metrics=metrics,
                    costs={"feature_seconds": seconds, "fit_seconds": time.perf_counter() - t1,
                           "test_clips_per_s": feats.clips_per_s},
                    counts=self.counts(g, lay, len(y)), bad_videos=dict(bad.failed), ci95=ci,
                    extra={"prompts": [list(p) for p in prompts]},
                    outputs=video_outputs([str(e.get("id", e["path"])) for e in entries], y, views)))
        return results

    @staticmethod
    @torch.no_grad()
    def class_scores(scorer, views: torch.Tensor, prompts: list[tuple[str, ...]], device) -> torch.Tensor:
        """(N, classes): a dual encoder's cosine with each class's normalised mean prompt embedding (CLIP's
        prompt ensemble); a cross-encoder's mean match probability over the class's prompts."""
        if scorer.kind == "dual":
            classes = torch.stack([nn.functional.normalize(scorer.text(list(p)).float().mean(0), dim=0)
                                   for p in prompts]).cpu()
            return video_embedding(views) @ classes.T
        flat = [p for ps in prompts for p in ps]
        s = pair_scores(scorer, views, flat, device)  # (prompts, N)
        owner = torch.tensor([c for c, ps in enumerate(prompts) for _ in ps])
        return torch.stack([s[owner == c].mean(0) for c in range(len(prompts))], dim=1)


def pair_ranks(sim: torch.Tensor) -> torch.Tensor:
    """Rank (1 = first) of the true pair (the diagonal) in each row of a square similarity matrix; ties
    with the true pair count in its favour."""
    own = sim.diagonal()[:, None]
    return 1 + (sim > own).sum(dim=1)


def recall_metrics(sim: torch.Tensor, ks: list[int], prefix: str, suffix: str = ""
                   ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """R@k (%) and the median rank of the true pairs, rows querying columns; bootstrap CIs of the R@k.
    Named `<prefix>_R@k<suffix>` and `<prefix>_MedR<suffix>`."""
    ranks = pair_ranks(sim)
    metrics = {f"{prefix}_R@{k}{suffix}": 100.0 * (ranks <= k).float().mean().item() for k in ks}
    metrics[f"{prefix}_MedR{suffix}"] = float(ranks.float().median().item())
    ci = {f"{prefix}_R@{k}{suffix}": bootstrap_ci(ranks <= k) for k in ks}
    return metrics, ci


class RetrievalText(VideoTextProtocol):
    """Text-to-video and video-to-text retrieval among a test split's videos and their own captions."""

    cfg: RetrievalTextConfig
    mode = "no training: each test caption ranks the test videos, each video the captions"

    def evaluate(self, exports: dict[str, nn.Module], ctx: EvalContext) -> list[TaskResult]:
        scorer = scorer_of(exports, "retrieval-text")
        results = []
        for g, feats, entries, bad, seconds in self.groups(exports, ctx):
            lay = test_layout(g.cfg)
            captions = [e.get("caption") or "" for e in entries]
            if not any(captions):
                raise ConfigError(f"retrieval-text: the test videos of {g.tasks[0].dataset!r} have no captions")
            t0 = time.perf_counter()
            metrics, ci, views = {}, {}, {}
            scored = self.scored_views(feats, lay, partial(pair_scores, scorer, texts=captions, device=ctx.device))
            for suffix, sim in scored.items():  # sim: captions x videos
                for prefix, s in (("t2v", sim), ("v2t", sim.T)):
                    m, c = recall_metrics(s, g.cfg.recall_at, prefix, suffix)
                    metrics.update(m)
                    ci.update(c)
                    # per query (a caption, or a video): the rank of its own pair
                    views.setdefault(suffix.lstrip("_") or "all", {})[f"{prefix}_rank"] = pair_ranks(s).tolist()
            n = len(captions)
            results.append(TaskResult(
                task=g.tasks[0].name, metrics=metrics,
                costs={"feature_seconds": seconds, "fit_seconds": time.perf_counter() - t0,
                       "test_clips_per_s": feats.clips_per_s},
                counts=self.counts(g, lay, n), bad_videos=dict(bad.failed), ci95=ci,
                extra={"chance": {f"R@{k}": 100.0 * min(k, n) / n for k in g.cfg.recall_at} | {"MedR": (n + 1) / 2},
                       "repeated_captions": n - len(set(captions)), "scorer": scorer.kind},
                outputs=video_outputs([str(e.get("id", e["path"])) for e in entries],
                                      feats.labels[g.tasks[0].label], views)))
        return results
