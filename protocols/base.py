"""The Protocol contract: take an encoder, its tasks and config; return metrics and costs per task."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from harness.catalog import TASKS
from harness.config import Config


@dataclass
class EvalContext:
    """What a protocol may use besides the encoder: the resolved config, the device, progress display."""

    cfg: Config
    device: torch.device
    progress: bool = True


@dataclass
class TaskResult:
    """One task's scores (percentages) and what it cost."""

    task: str
    metrics: dict[str, float]
    costs: dict[str, float]
    counts: dict[str, int]
    bad_videos: dict[str, str] = field(default_factory=dict)
    ci95: dict[str, list[float]] = field(default_factory=dict)  # bootstrap over test videos: metric -> [low, high]
    extra: dict[str, Any] = field(default_factory=dict)


class Protocol:
    """Base class: subclasses implement `evaluate`; the catalog names the class, its schema and description.

    `mode` and `aggregation` say in words how the protocol measures; they go into every record's
    protocol card (`card`), next to the views, resolutions and splits it used.
    """

    mode = ""
    aggregation = ""

    def __init__(self, cfg):
        self.cfg = cfg

    def evaluate(self, encoder: torch.nn.Module, ctx: EvalContext) -> list[TaskResult]:
        raise NotImplementedError

    def card(self, cfg: Config, results: list[TaskResult]) -> dict[str, Any]:
        """What a reader needs to compare this number with a paper's: how it was measured, on what."""
        c, clip = self.cfg, cfg.backbone.clip
        return {
            "mode": self.mode, "aggregation": self.aggregation,
            "clip": f"{clip.frames}x{clip.stride} (frames x stride, in source frames)",
            "train_resolution": clip.crop_size, "test_short_side": clip.test_short_side,
            "views": f"{getattr(c, 'temporal_views', 1)}x{getattr(c, 'spatial_views', 1)} (temporal x spatial)",
            "feature_layer": "the encoder's output: global average pool of its last stage",
            "tasks": {r.task: {"train_split": TASKS.get(r.task).train_split, "test_split": TASKS.get(r.task).test_split,
                               "train_videos": r.counts.get("train_videos"), "test_videos": r.counts.get("test_videos"),
                               "unreadable_videos": len(r.bad_videos)} for r in results},
        }


def topk(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Percentage of rows whose label is among the k highest scores."""
    k = min(k, scores.shape[1])
    hit = (scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return 100.0 * hit.float().mean().item()
