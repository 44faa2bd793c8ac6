"""The Protocol contract: take an encoder, its tasks and config; return metrics and costs per task."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

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
    """Base class: subclasses implement `evaluate`; the catalog names the class, its schema and description."""

    def __init__(self, cfg):
        self.cfg = cfg

    def evaluate(self, encoder: torch.nn.Module, ctx: EvalContext) -> list[TaskResult]:
        raise NotImplementedError


def topk(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Percentage of rows whose label is among the k highest scores."""
    k = min(k, scores.shape[1])
    hit = (scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return 100.0 * hit.float().mean().item()
