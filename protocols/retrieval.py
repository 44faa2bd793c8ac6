"""Retrieval: each test video queries the training videos by cosine similarity of frozen features.

Recall@k is the share of queries with at least one video of their own class among the k nearest
training videos, the number the video SSL literature reports for UCF101/HMDB51 (test split querying
the training split). Embeddings as in `knn`: normalised mean of normalised views.
"""
from __future__ import annotations

import time

import torch

from protocols.base import EvalContext, Protocol, TaskResult
from protocols.configs import RetrievalConfig
from protocols.frozen import bootstrap_ci, centre_view, frozen_features, video_embedding


@torch.no_grad()
def recall_hits(query: torch.Tensor, bank: torch.Tensor, query_labels: torch.Tensor, bank_labels: torch.Tensor,
                ks: list[int], chunk: int = 1024) -> dict[int, torch.Tensor]:
    """Per query and per k: whether a bank row of the query's class is among its k most similar rows."""
    kmax = min(max(ks), len(bank))
    ranked = torch.cat([(q @ bank.T).topk(kmax, dim=1).indices for q in query.split(chunk)])
    same = bank_labels[ranked] == query_labels[:, None]  # (Q, kmax)
    return {k: same[:, :min(k, kmax)].any(dim=1) for k in ks}


class Retrieval(Protocol):
    """Recall@k of test videos querying training videos with frozen, normalised embeddings."""

    cfg: RetrievalConfig
    mode = "frozen encoder, no training: test videos query training videos by cosine similarity"
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
                metrics, ci = {}, {}
                for name, q in (("", allv), ("_1view", one)):
                    for k, hits in recall_hits(q, bank, y, y_bank, c.recall_at).items():
                        metrics[f"R@{k}{name}"] = 100.0 * hits.float().mean().item()
                        ci[f"R@{k}{name}"] = bootstrap_ci(hits)
                results.append(TaskResult(
                    task=t.name, metrics=metrics,
                    costs={"feature_seconds": g.seconds, "fit_seconds": time.perf_counter() - t1,
                           "train_clips_per_s": g.train.clips_per_s, "test_clips_per_s": g.test.clips_per_s},
                    counts={"train_videos": len(bank), "test_videos": len(allv), "views": g.test.feats.shape[1],
                            "temporal_views": c.temporal_views, "spatial_views": c.spatial_views},
                    bad_videos=dict(g.bad.failed), ci95=ci, extra=g.extra(),
                ))
        return results
