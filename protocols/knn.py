"""kNN: a frozen encoder's features classify each test video by its nearest training videos.

No training at all, so it measures the feature space itself (the ρ code's online monitor, and the
instance-discrimination literature's standard probe). Each video is one L2-normalised embedding: the
mean of its normalised views (training videos: `train_views` centre crops; test videos: all
temporal x spatial views, or only the centre view for the single-view number). The k most similar
training videos vote for their class with weight exp(cos/τ) (Wu et al. 2018).
"""
from __future__ import annotations

import torch

from protocols.base import bootstrap_ci, class_outputs, topk
from protocols.configs import KnnConfig
from protocols.frozen import EmbeddingProtocol


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


class Knn(EmbeddingProtocol):
    """Weighted k-nearest-neighbour classification on frozen, normalised video embeddings."""

    cfg: KnnConfig
    mode = "frozen encoder, no training: weighted k nearest training videos"

    def score(self, task, bank, bank_labels, queries, labels, c):
        metrics, ci, views = {}, {}, {}
        for suffix, q in queries.items():
            s = knn_scores(q, bank, bank_labels, len(task.classes), c.k, c.temperature)
            metrics[f"top1{suffix}"], metrics[f"top5{suffix}"] = topk(s, labels, 1), topk(s, labels, 5)
            ci[f"top1{suffix}"] = bootstrap_ci(s.argmax(1) == labels)
            views[suffix.lstrip("_") or "all"] = class_outputs(s, labels)
        return metrics, ci, views
