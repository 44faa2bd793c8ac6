"""Retrieval: each test video queries the training videos by cosine similarity of frozen features.

Recall@k is the share of queries with at least one video of their own class among the k nearest
training videos, the number the video SSL literature reports for UCF101/HMDB51 (test split querying
the training split). Embeddings as in `knn`: normalised mean of normalised views.
"""
from __future__ import annotations

import torch

from protocols.base import bootstrap_ci
from protocols.configs import RetrievalConfig
from protocols.frozen import EmbeddingProtocol


@torch.no_grad()
def first_hits(query: torch.Tensor, bank: torch.Tensor, query_labels: torch.Tensor, bank_labels: torch.Tensor,
               kmax: int, chunk: int = 1024) -> torch.Tensor:
    """Per query, the rank (1-based) of the most similar bank row of its class among its `kmax` nearest;
    0 when none of them is."""
    kmax = min(kmax, len(bank))
    ranked = torch.cat([(q @ bank.T).topk(kmax, dim=1).indices for q in query.split(chunk)])
    same = bank_labels[ranked] == query_labels[:, None]  # (Q, kmax)
    return torch.where(same.any(1), same.float().argmax(1) + 1, torch.zeros(len(same), dtype=torch.long))


def recall_hits(query: torch.Tensor, bank: torch.Tensor, query_labels: torch.Tensor, bank_labels: torch.Tensor,
                ks: list[int], chunk: int = 1024) -> dict[int, torch.Tensor]:
    """Per query and per k: whether a bank row of the query's class is among its k most similar rows."""
    first = first_hits(query, bank, query_labels, bank_labels, max(ks), chunk)
    return {k: (first > 0) & (first <= k) for k in ks}


class Retrieval(EmbeddingProtocol):
    """Recall@k of test videos querying training videos with frozen, normalised embeddings."""

    cfg: RetrievalConfig
    mode = "frozen encoder, no training: test videos query training videos by cosine similarity"

    def score(self, task, bank, bank_labels, queries, labels, c):
        metrics, ci, views = {}, {}, {}
        for suffix, q in queries.items():
            first = first_hits(q, bank, labels, bank_labels, max(c.recall_at))
            for k in c.recall_at:
                hits = (first > 0) & (first <= k)
                metrics[f"R@{k}{suffix}"] = 100.0 * hits.float().mean().item()
                ci[f"R@{k}{suffix}"] = bootstrap_ci(hits)
            views[suffix.lstrip("_") or "all"] = {"first_hit": first.tolist()}
        return metrics, ci, views
