"""The Protocol contract: take what a method exports (its video encoder, later its text or audio
towers), the tasks and the config; return metrics, CIs and costs per task. Also what every protocol
scores with: top-k, view aggregation, bootstrap intervals over test videos."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from harness.catalog import BACKBONES, TASKS
from harness.config import Config


@dataclass
class EvalContext:
    """What a protocol may use besides the exports: the resolved config, the device, progress display,
    and a key naming the encoder it scores (the pre-training key, or the untrained encoder's identity),
    under which the protocols that train cache their results."""

    cfg: Config
    device: torch.device
    progress: bool = True
    encoder_key: str = ""
    log: Callable[[str], None] = field(default=lambda msg: None)
    # what the protocol read, for the record's protocol card: per task and split, how many videos are
    # shorter than one clip (filled as the splits are opened: `protocols.frozen.task_groups`)
    short_videos: dict[str, dict[str, int]] = field(default_factory=dict)


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
    # per test video (or query): {"ids", "label", "views": {"all" | "1view": {"pred", "true_rank", "true_score"} or
    # {"first_hit"}}}; written beside the record (`report.outputs`), not in it; what paired tests compare
    outputs: dict[str, Any] = field(default_factory=dict)


class Protocol:
    """Base class: subclasses implement `evaluate`; the catalog names the class, its schema and description.

    `needs` names the exports it scores (`Method.exports()`: "video" for every method so far);
    `mode` and `aggregation` say in words how the protocol measures; they go into every record's
    protocol card (`card`), next to the views, resolutions and splits it used. `check` runs before
    any pre-training, so a setting the data cannot satisfy fails in seconds, not after hours.
    """

    mode = ""
    aggregation = ""
    needs: tuple[str, ...] = ("video",)
    # under torchrun, whether every process takes part, each reading a share of the videos; a protocol that
    # trains (linear, finetune) runs on rank 0 alone
    shards: bool = False

    def __init__(self, cfg):
        self.cfg = cfg

    def check(self, ctx: EvalContext) -> None:
        """Raise ConfigError for what only the data can tell (e.g. a low-shot count above a class's size)."""

    def evaluate(self, exports: dict[str, torch.nn.Module], ctx: EvalContext) -> list[TaskResult]:
        raise NotImplementedError

    def card(self, cfg: Config, results: list[TaskResult]) -> dict[str, Any]:
        """What a reader needs to compare this number with a paper's: how it was measured, on what."""
        c, clip = self.cfg, cfg.backbone.clip
        return {
            "mode": self.mode, "aggregation": self.aggregation,
            "clip": f"{clip.frames}x{clip.stride} (frames x stride, in source frames)",
            "fps": "as decoded (no resampling)",
            "train_resolution": clip.crop_size, "test_short_side": clip.test_short_side,
            "views": _views_text(getattr(c, "temporal_views", 1), getattr(c, "spatial_views", 1)),
            "feature_layer": getattr(BACKBONES.get(cfg.backbone.name), "feature_layer", "the encoder's output"),
            "tasks": {r.task: {"train_split": _task(r.task).train_split, "test_split": _task(r.task).test_split,
                               "train_videos": r.counts.get("train_videos"), "test_videos": r.counts.get("test_videos"),
                               "unreadable_videos": len(r.bad_videos)} for r in results},
        }


def _task(name: str):
    """The task of a result, also of one official split's result (`ucf101@split2`)."""
    return TASKS.get(name.split("@", 1)[0])


def _views_text(temporal: int, spatial: int) -> str:
    extra = "; the single view is an extra clip at the centre" if temporal % 2 == 0 else ""
    return f"{temporal}x{spatial} (temporal x spatial{extra})"


def topk(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Percentage of rows whose label is among the k highest scores."""
    k = min(k, scores.shape[1])
    hit = (scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return 100.0 * hit.float().mean().item()


def bootstrap_ci(hits: torch.Tensor, resamples: int = 1000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval (in %) of the mean of per-video 0/1 `hits`, resampling test videos."""
    h = hits.float().flatten()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(h), (resamples, len(h)), generator=g)
    means = h[idx].mean(dim=1) * 100
    return [round(float(means.quantile(0.025)), 2), round(float(means.quantile(0.975)), 2)]


AGGREGATION_TEXT = {"softmax-mean": "mean of the softmax over all views", "logit-mean": "mean of the logits over all views",
                    "max": "per-class maximum of the softmax over all views"}


def aggregate_views(logits: torch.Tensor, how: str) -> torch.Tensor:
    """(N, V, C) per-view logits -> (N, C) video scores (their ranking is what top-k reads)."""
    if how == "logit-mean":
        return logits.mean(1)
    probs = logits.softmax(-1)
    return probs.amax(1) if how == "max" else probs.mean(1)


def class_outputs(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, list]:
    """Per video of (N, C) `scores`: the predicted class, the rank of the true class (1: a top-1 hit) and
    the true class's score."""
    scores = scores.float()
    true = scores.gather(1, labels[:, None])
    rank = (scores > true).sum(1) + 1  # ties count in the video's favour, as topk's order among equals
    return {"pred": scores.argmax(1).tolist(), "true_rank": rank.tolist(),
            "true_score": [round(float(x), 6) for x in true[:, 0]]}


def video_outputs(ids: list[str], labels: torch.Tensor, views: dict[str, dict[str, list]]) -> dict[str, Any]:
    """A task's per-video outputs: the videos' ids and true labels, and per aggregation ("all" views, the
    centre "1view") what each video's metric is read from (`class_outputs`, or retrieval's `first_hit`)."""
    return {"ids": list(ids), "label": labels.tolist(), "views": views}


def view_outputs(logits: torch.Tensor, y: torch.Tensor, layout, how: str) -> dict[str, dict[str, list]]:
    """`class_outputs` of (N, V, C) per-view logits, aggregated as `score_views` scores them."""
    return {"all": class_outputs(aggregate_views(logits[:, :layout.grid], how), y),
            "1view": class_outputs(logits[:, layout.centre], y)}


def score_views(logits: torch.Tensor, y: torch.Tensor, layout, how: str) -> tuple[dict[str, float], dict]:
    """Top-1/5 of (N, V, C) per-view logits laid out by `layout` (a `ViewLayout`): all grid views
    aggregated by `how`, and the single centre view; with bootstrap CIs of both top-1s."""
    allv = aggregate_views(logits[:, :layout.grid], how)
    one = logits[:, layout.centre]
    metrics = {"top1": topk(allv, y, 1), "top5": topk(allv, y, 5),
               "top1_1view": topk(one, y, 1), "top5_1view": topk(one, y, 5)}
    return metrics, {"top1": bootstrap_ci(allv.argmax(1) == y), "top1_1view": bootstrap_ci(one.argmax(1) == y)}
