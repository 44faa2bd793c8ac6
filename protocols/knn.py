"""kNN: a frozen encoder's features classify each test video by its nearest training videos.

No training at all, so it measures the feature space itself (the ρ code's online monitor, and the
instance-discrimination literature's standard probe). Each video is one L2-normalised embedding: the
mean of its normalised views (training videos: `train_views` centre crops; test videos: all
temporal x spatial views, or only the centre view for the single-view number). The k most similar
training videos vote for their class with weight exp(cos/τ) (Wu et al. 2018).
"""
from __future__ import annotations

import time

import torch

from protocols.base import EvalContext, Protocol, TaskResult, topk
from protocols.configs import KnnConfig
from protocols.frozen import bootstrap_ci, centre_view, frozen_features, video_embedding


@torch.no_grad()
def knn_scores(query: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, n_classes: int, k: int,
               temperature: float, chunk: int = 1024) -> torch.Tensor:
    """(Q, C) class scores: the sum of exp(cos/τ) over each query's k nearest bank rows of that class.

    Rows of `query` and `bank` are L2-normalised; queries go in chunks so memory stays (chunk x bank).
    """
    k = min(k, len(bank))
    out = []
    for q in query.split(chunk):
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(q), n_classes, dtype=sim.dtype)
        out.append(votes.scatter_add_(1, bank_labels[idx], (sim / temperature).exp()))
    return torch.cat(out)


class Knn(Protocol):
    """Weighted k-nearest-neighbour classification on frozen, normalised video embeddings."""

    cfg: KnnConfig
    mode = "frozen encoder, no training: weighted k nearest training videos"
    aggregation = "mean of the L2-normalised view features, normalised"

    def evaluate(self, encoder, ctx: EvalContext) -> list[TaskResult]:
        c = self.cfg
        results = []
        for g in frozen_features(encoder, ctx, c):
            bank = video_embedding(g.train.feats)
            allv = video_embedding(g.test.feats)
            one = video_embedding(g.test.feats[:, centre_view(c.temporal_views, c.spatial_views)][:, None])
            for t in g.tasks:
                t1 = time.perf_counter()
                y_bank, y = g.train.labels[t.label], g.test.labels[t.label]
                s_all = knn_scores(allv, bank, y_bank, len(t.classes), c.k, c.temperature)
                s_one = knn_scores(one, bank, y_bank, len(t.classes), c.k, c.temperature)
                results.append(TaskResult(
                    task=t.name,
                    metrics={"top1": topk(s_all, y, 1), "top5": topk(s_all, y, 5),
                             "top1_1view": topk(s_one, y, 1), "top5_1view": topk(s_one, y, 5)},
                    costs={"feature_seconds": g.seconds, "fit_seconds": time.perf_counter() - t1,
                           "train_clips_per_s": g.train.clips_per_s, "test_clips_per_s": g.test.clips_per_s},
                    counts={"train_videos": len(bank), "test_videos": len(allv), "views": g.test.feats.shape[1],
                            "temporal_views": c.temporal_views, "spatial_views": c.spatial_views, "k": c.k},
                    bad_videos=dict(g.bad.failed),
                    ci95={"top1": bootstrap_ci(s_all.argmax(1) == y), "top1_1view": bootstrap_ci(s_one.argmax(1) == y)},
                    extra=g.extra(),
                ))
        return results
