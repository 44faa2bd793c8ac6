"""The protocols that score a method's video-text space (`Method.exports()["video-text"]`, VATT's):
`zeroshot` classifies test videos by class-name prompts, `retrieval-text` ranks test videos by their
own captions and captions by their videos. Nothing is trained. Test videos are read as every other
protocol reads them (all views, each video decoded once) and embedded in the shared space; a video's
embedding is the normalised mean of its views' (VATT averages its test clips' embeddings).
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn

from harness.data.datasets import LabelledViews
from harness.engine import use_bf16
from harness.errors import ConfigError
from protocols.base import EvalContext, TaskResult, bootstrap_ci, topk
from protocols.configs import RetrievalTextConfig, ZeroshotConfig
from protocols.frozen import TaskProtocol, task_groups, test_layout, video_embedding
from protocols.multiview import extract


class _VideoSide(nn.Module):
    """Clips -> embeddings in the video-text space, as `extract` calls an encoder."""

    def __init__(self, scorer: nn.Module):
        super().__init__()
        self.scorer = scorer

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.scorer.video(clips)


def dual_scorer(exports: dict, protocol: str) -> nn.Module:
    scorer = exports["video-text"]
    if getattr(scorer, "kind", "") != "dual":
        raise ConfigError(f"protocol {protocol!r} compares separate video and text embeddings; this method's "
                          f"video-text scorer is {getattr(scorer, 'kind', '?')!r}")
    return scorer


class VideoTextProtocol(TaskProtocol):
    needs = ("video-text",)
    aggregation = "the mean of the L2-normalised view embeddings, normalised"

    def groups(self, exports: dict, ctx: EvalContext):
        """Per group of tasks over the same test videos: (group, test embeddings, their entries, seconds)."""
        cfg, c = ctx.cfg, self.cfg
        scorer = dual_scorer(exports, c.section)
        side = _VideoSide(scorer).to(ctx.device).eval()
        for g in task_groups(ctx, c):
            t0 = time.perf_counter()
            videos = g.test
            if getattr(g.cfg, "max_videos", 0):
                videos.entries = videos.entries[:g.cfg.max_videos]
            bad = g.bad_counters(cfg)["test"]
            ds = LabelledViews(videos, cfg.backbone.clip, test_layout(g.cfg), g.label_keys)
            with torch.no_grad():
                feats = extract(side, ds, ctx.device, g.cfg.feature_batch, cfg.data.num_workers, bad,
                                bf16=use_bf16(cfg.pretrain, ctx.device), desc="test embeddings",
                                progress=ctx.progress, clip_batch=g.cfg.clip_batch)
            yield g, feats, [videos.entries[i] for i in feats.index.tolist()], bad, time.perf_counter() - t0


class Zeroshot(VideoTextProtocol):
    """Top-1/5 of test videos against prompt embeddings of each class; nothing is trained."""

    cfg: ZeroshotConfig
    mode = "no training: test videos against the text embeddings of each class's prompts (cosine similarity)"

    def evaluate(self, exports: dict[str, nn.Module], ctx: EvalContext) -> list[TaskResult]:
        scorer = dual_scorer(exports, "zeroshot")
        results = []
        for g, feats, _, bad, seconds in self.groups(exports, ctx):
            lay = test_layout(g.cfg)
            videos = {"": video_embedding(feats.feats[:, :lay.grid]),
                      "_1view": video_embedding(feats.feats[:, lay.centre][:, None])}
            for t in g.tasks:
                with torch.no_grad():
                    classes = torch.stack([nn.functional.normalize(scorer.text(list(p)).float().mean(0), dim=0)
                                           for p in t.class_prompts()]).cpu()
                y = feats.labels[t.label]
                metrics, ci = {}, {}
                for suffix, v in videos.items():
                    s = v @ classes.T
                    metrics[f"top1{suffix}"], metrics[f"top5{suffix}"] = topk(s, y, 1), topk(s, y, 5)
                    ci[f"top1{suffix}"] = bootstrap_ci(s.argmax(1) == y)
                results.append(TaskResult(
                    task=t.name, metrics=metrics, costs={"feature_seconds": seconds,
                                                         "test_clips_per_s": feats.clips_per_s},
                    counts={"train_videos": 0, "test_videos": len(y), "views": lay.grid,
                            "temporal_views": g.cfg.temporal_views, "spatial_views": g.cfg.spatial_views},
                    bad_videos=dict(bad.failed), ci95=ci,
                    extra={"prompts": [list(p) for p in t.class_prompts()]}))
        return results


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
    mode = "no training: each test caption ranks the test videos, each video the captions (cosine similarity)"

    def evaluate(self, exports: dict[str, nn.Module], ctx: EvalContext) -> list[TaskResult]:
        scorer = dual_scorer(exports, "retrieval-text")
        results = []
        for g, feats, entries, bad, seconds in self.groups(exports, ctx):
            lay = test_layout(g.cfg)
            captions = [e.get("caption") or "" for e in entries]
            if not any(captions):
                raise ConfigError(f"retrieval-text: the test videos of {g.tasks[0].dataset!r} have no captions")
            t0 = time.perf_counter()
            with torch.no_grad():
                text = torch.cat([scorer.text(captions[i:i + 256]).float().cpu() for i in range(0, len(captions), 256)])
            metrics, ci = {}, {}
            for suffix, v in (("", video_embedding(feats.feats[:, :lay.grid])),
                              ("_1view", video_embedding(feats.feats[:, lay.centre][:, None]))):
                sim = text @ v.T  # captions x videos
                for prefix, s in (("t2v", sim), ("v2t", sim.T)):
                    m, c = recall_metrics(s, g.cfg.recall_at, prefix, suffix)
                    metrics.update(m)
                    ci.update(c)
            n = len(captions)
            results.append(TaskResult(
                task=g.tasks[0].name, metrics=metrics,
                costs={"feature_seconds": seconds, "text_seconds": time.perf_counter() - t0,
                       "test_clips_per_s": feats.clips_per_s},
                counts={"train_videos": 0, "test_videos": n, "views": lay.grid,
                        "temporal_views": g.cfg.temporal_views, "spatial_views": g.cfg.spatial_views},
                bad_videos=dict(bad.failed), ci95=ci,
                extra={"chance": {f"R@{k}": 100.0 * min(k, n) / n for k in g.cfg.recall_at} | {"MedR": (n + 1) / 2},
                       "repeated_captions": n - len(set(captions))}))
        return results
