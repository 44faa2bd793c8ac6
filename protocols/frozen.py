"""What the protocols over labelled tasks share: tasks grouped by the videos they read, their splits
and low-shot subsets (checked before any pre-training), and for the frozen-encoder protocols
(linear-cached, knn, retrieval) BN re-estimation and multi-view features extracted once per group."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn

from harness import code_version
from harness import distributed as dist
from harness.catalog import DATASETS, TASKS
from harness.config import resolved_precision, to_plain
from harness.data.datasets import BadVideos, LabelledViews, VideoSet
from harness.data.manifest import labels_checksum
from harness.data.sampling import ViewLayout, clip_span
from harness.data.task import Task
from harness.engine import use_bf16
from harness.errors import ConfigError
from harness.storage import atomic_save, content_key, read_verified
from protocols.base import EvalContext, Protocol, TaskResult, video_outputs
from protocols.multiview import Features, extract, recalibrate_bn


@dataclass
class TaskGroupFeatures:
    """Features of one group of tasks that read the same videos (e.g. digits-appearance and -motion)."""

    tasks: list[Task]
    train: Features  # (N, train_views, D): centre crops
    test: Features  # (M, views, D) in the order of the test ViewLayout
    bad: dict[str, str]  # the unreadable videos of both splits: path -> error
    seconds: float  # BN re-estimation and both extractions (or loading them from the feature cache)
    train_ids: list[str] | None = None  # the low-shot subset's video ids (None: every training video)
    cache: dict | None = None  # where the features are stored, whether they were reused, what extracting cost
    cfg: Any = None  # the protocol settings of this group (with its task's overrides)
    test_ids: list[str] | None = None  # the id of each row of `test` (unreadable videos are not rows)

    def extra(self) -> dict:
        """What goes into each of this group's results besides the scores: the low-shot subset, the feature cache."""
        out = {"train_ids": self.train_ids} if self.train_ids is not None else {}
        return {**out, **({"features": self.cache} if self.cache else {})}


def row_ids(videos: VideoSet, feats: Features) -> list[str]:
    """The video id of each row of `feats` (its `index` names the dataset rows; unreadable videos have none)."""
    rows = range(len(videos)) if feats.index is None else (int(i) for i in feats.index)
    return [str(videos.entries[i].get("id", videos.entries[i]["path"])) for i in rows]


def load_split(ctx: EvalContext, dataset: str, split: str) -> tuple[Path, list[dict]]:
    cfg = ctx.cfg
    if dataset not in cfg.datasets:
        raise ConfigError(f"task dataset {dataset!r} has no [datasets.{dataset}] section")
    root, entries = DATASETS.get(dataset).split(cfg.datasets[dataset], cfg.cache_root(), split, progress=ctx.progress)
    if not entries:
        raise ConfigError(f"dataset {dataset!r} has no videos in split {split!r}")
    return root, entries


def low_shot(entries: list[dict], label: str, c) -> list[dict]:
    """The fixed, class-stratified training subset of a low-shot run (all entries when it is off).

    Per class, `train_per_class` videos or a `train_fraction` share of them (at least one), drawn by
    `subset_seed` alone, so every method is scored on the same videos.
    """
    if c.train_fraction >= 1 and not c.train_per_class:
        return entries
    by_class: dict[int, list[int]] = {}
    for i, e in enumerate(entries):
        by_class.setdefault(int(e["labels"][label]), []).append(i)
    keep = []
    for cls, idx in sorted(by_class.items()):
        rng = np.random.default_rng([c.subset_seed, cls])
        n = c.train_per_class or max(1, round(c.train_fraction * len(idx)))
        if n > len(idx):
            raise ConfigError(f"train_per_class = {n}, but class {cls} of {label!r} has only {len(idx)} training videos")
        keep += rng.choice(idx, size=n, replace=False).tolist()
    return [entries[i] for i in sorted(keep)]


@dataclass
class TaskGroup:
    """Tasks that read the same training and test videos, which their protocol may score together."""

    tasks: list[Task]
    train: VideoSet
    test: VideoSet
    train_ids: list[str] | None  # the low-shot subset's video ids (None: every training video)
    label_keys: list[str]
    cfg: Any  # the protocol's settings for this group: its section with the task's `task_overrides`

    def bad_counters(self, cfg) -> dict[str, BadVideos]:
        """One counter per split: each split may lose at most `data.max_bad_fraction` of its videos."""
        ds = self.tasks[0].dataset
        return {split: BadVideos(len(videos), cfg.data.max_bad_fraction, what=f"{split} videos of {ds}")
                for split, videos in (("train", self.train), ("test", self.test))}


def group_tasks(c, share: bool = True, own: set[str] = frozenset()) -> list[tuple[tuple[str, str, str], list[Task]]]:
    """`c.tasks` grouped by (dataset, train split, test split); one task per group when `share` is off,
    a low-shot subset is drawn (it is drawn per task's label) or the task has settings of its own (`own`)."""
    groups: dict[tuple, list[Task]] = {}
    for t in (TASKS.get(name) for name in c.tasks):
        alone = not share or c.low_shot or t.name in own
        groups.setdefault((t.dataset, t.train_split, t.test_split, t.name if alone else ""), []).append(t)
    return [(k[:3], v) for k, v in groups.items()]


def group_cfg(ctx: EvalContext, c, tasks: list[Task]):
    """The protocol settings `c` with the overrides of a group's task (`task_overrides`; a task with
    overrides is alone in its group)."""
    over = ctx.cfg.task_overrides.get(tasks[0].name, {}).get(c.section) if len(tasks) == 1 else None
    return dataclasses.replace(c, **over) if over else c


def task_groups(ctx: EvalContext, c, share: bool = True) -> Iterator[TaskGroup]:
    """The videos of each group of tasks (see `group_tasks`), the low-shot subset drawn."""
    cfg = ctx.cfg
    own = {t for t, per in cfg.task_overrides.items() if per.get(c.section)}
    for (dataset, train_split, test_split), tasks in group_tasks(c, share, own):
        gc = group_cfg(ctx, c, tasks)
        if any(not t.classes for t in tasks):  # a real dataset's classes come from its annotation files
            classes = DATASETS.get(dataset).classes(cfg.datasets[dataset], cfg.cache_root())
            tasks = [t if t.classes else dataclasses.replace(t, classes=tuple(classes)) for t in tasks]
        root, entries = load_split(ctx, dataset, train_split)
        fps, span = cfg.backbone.clip.fps, clip_span(cfg.backbone.clip.frames, cfg.backbone.clip.stride)
        short = {train_split: VideoSet(root, entries, False, fps=fps).shorter_than(span)}
        entries = low_shot(entries, tasks[0].label, gc)
        ids = [e.get("id", e["path"]) for e in entries] if gc.low_shot else None
        test = VideoSet(*load_split(ctx, dataset, test_split), cfg.data.cache_frames, fps=fps)
        short[test_split] = test.shorter_than(span)
        for t in tasks:
            ctx.short_videos[t.name] = dict(short)
        yield TaskGroup(tasks, VideoSet(root, entries, cfg.data.cache_frames, fps=fps), test, ids,
                        sorted({t.label for t in tasks}), gc)


def check_tasks(ctx: EvalContext, c) -> None:
    """Read every task's splits and draw its low-shot subset now: what the data cannot satisfy fails here."""
    for _ in task_groups(ctx, c):
        pass


def test_layout(c) -> ViewLayout:
    return ViewLayout(c.temporal_views, c.spatial_views, sampler=c.sampler)


def features_key(ctx: EvalContext, c, g: TaskGroup) -> str:
    """Names one extraction: the encoder, everything that shapes its features (views, BN handling,
    batch composition, clip shape, the videos and the low-shot subset), the device, precision and code."""
    cfg = ctx.cfg
    t = g.tasks[0]
    payload = {"encoder": ctx.encoder_key, "code": code_version.version("eval"),
               "views": [c.train_views, c.temporal_views, c.spatial_views], "recompute_bn": c.recompute_bn,
               "batches": [c.feature_batch, c.clip_batch], "clip": to_plain(cfg.backbone.clip),
               "data": [t.dataset, t.train_split, t.test_split, to_plain(cfg.datasets[t.dataset])],
               "train_ids": g.train_ids, "device": ctx.device.type,
               # the labels stored with the features: edited labels (or captions) are another extraction
               "labels": labels_checksum([*g.train.entries, *g.test.entries]),
               **({"input": c.input} if c.input != "video" else {}),
               **({"sampler": c.sampler} if c.sampler != "clip" else {}),
               # BN re-estimated in shards is the mean of the processes' estimates: name their count
               **({"processes": dist.world_size()} if dist.sharding() and c.recompute_bn else {}),
               "precision": resolved_precision(cfg.pretrain.precision, ctx.device.type)}
    return content_key(payload, 16)


def _load_features(path: Path, g: TaskGroup, t0: float, log) -> TaskGroupFeatures | None:
    """The stored extraction at `path`, unless it is missing, damaged (set aside), left videos out (they may
    be readable now) or lacks a label this group scores."""
    state = read_verified(path, lambda p: torch.load(p, map_location="cpu", weights_only=False), "cached features",
                          log)
    if state is None:
        return None
    # a run that scored fewer tasks of these videos stored only their labels: extract again for the others
    if state["bad"] or not set(g.label_keys) <= set(state["train"]["labels"]):
        return None
    tr, te = Features(**state["train"]), Features(**state["test"])
    info = {"key": path.stem, "reused": True, "extraction_seconds": state["seconds"]}
    return TaskGroupFeatures(g.tasks, tr, te, {}, time.perf_counter() - t0, g.train_ids, info, g.cfg,
                             row_ids(g.test, te))


def frozen_features(encoder: nn.Module, ctx: EvalContext, c) -> Iterator[TaskGroupFeatures]:
    """For each group of `c.tasks` over the same videos: re-estimate BN on the training videos (if
    `c.recompute_bn`), then extract `c.train_views` centre-crop clips per training video and the
    `test_layout(c)` views per test video, each video decoded once.

    An extraction is stored in the cache (`features/<key>.pt`, `features_key`) when the encoder has a
    key, so the frozen-encoder protocols of one encoder (`linear-cached`, `knn`, `retrieval`, and
    re-runs with other probe settings) extract once; `cache_features = false` turns that off.
    """
    cfg, dev = ctx.cfg, ctx.device
    bf16, workers = use_bf16(cfg.pretrain, dev), cfg.data.num_workers
    for g in task_groups(ctx, c):
        c = g.cfg
        t0 = time.perf_counter()
        path = (cfg.cache_root() / "features" / f"{features_key(ctx, c, g)}.pt"
                if ctx.encoder_key and c.cache_features else None)
        stored = _load_features(path, g, t0, ctx.log) if path is not None else None
        if stored is not None:
            ctx.log(f"reusing the features of {', '.join(t.name for t in g.tasks)} from {path}")
            yield stored
            continue
        bad = g.bad_counters(cfg)
        audio = (encoder.rate, encoder.samples) if c.input == "audio" else None
        train_ds = LabelledViews(g.train, cfg.backbone.clip, ViewLayout(c.train_views, 1, False, c.sampler),
                                 g.label_keys, audio)
        test_ds = LabelledViews(g.test, cfg.backbone.clip, test_layout(c), g.label_keys, audio)
        encoder.to(dev).eval()
        opts = dict(bf16=bf16, clip_batch=c.clip_batch)
        if c.recompute_bn:
            recalibrate_bn(encoder, train_ds, dev, c.feature_batch, workers, bad["train"], **opts)
        tr = extract(encoder, train_ds, dev, c.feature_batch, workers, bad["train"], desc="train features",
                     progress=ctx.progress, **opts)
        te = extract(encoder, test_ds, dev, c.feature_batch, workers, bad["test"], desc="test features",
                     progress=ctx.progress, **opts)
        seconds, info, failed = time.perf_counter() - t0, None, {**bad["train"].failed, **bad["test"].failed}
        if path is not None and dist.is_main():
            atomic_save({"train": dataclasses.asdict(tr), "test": dataclasses.asdict(te), "bad": failed,
                         "seconds": seconds}, path)
            info = {"key": path.stem, "reused": False, "extraction_seconds": seconds}
        yield TaskGroupFeatures(g.tasks, tr, te, failed, seconds, g.train_ids, info, c, row_ids(g.test, te))


def video_embedding(feats: torch.Tensor) -> torch.Tensor:
    """(N, V, D) view features -> (N, D): the mean of the L2-normalised views, normalised again."""
    f = torch.nn.functional.normalize(feats.float(), dim=-1).mean(dim=1)
    return torch.nn.functional.normalize(f, dim=-1)


class TaskProtocol(Protocol):
    """A protocol over labelled tasks: checks their splits and low-shot subsets before pre-training."""

    def check(self, ctx: EvalContext) -> None:
        check_tasks(ctx, self.cfg)


class FrozenProtocol(TaskProtocol):
    """A protocol on features extracted once (`frozen_features`): of the video encoder, or with
    `input = "audio"` of a method's audio encoder."""

    shards = True  # under torchrun, every process extracts a share of the videos (harness.distributed.sharded)

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.cfg.input,)

    def card(self, cfg, results):
        out = super().card(cfg, results)
        if self.cfg.input == "audio":
            out["input"] = "audio: the raw waveform under each temporal clip (its spatial views repeat it)"
            out["feature_layer"] = "the audio encoder's output"
        return out


class EmbeddingProtocol(FrozenProtocol):

    """The loop `knn` and `retrieval` share: one normalised embedding per video (training videos form the
    bank; test videos query it with all their views, and with the centre view alone for the `_1view`
    numbers); a subclass scores one task with `score`."""

    aggregation = "mean of the L2-normalised view features, normalised"

    def score(self, task: Task, bank: torch.Tensor, bank_labels: torch.Tensor, queries: dict[str, torch.Tensor],
              labels: torch.Tensor, c) -> tuple[dict[str, float], dict[str, list[float]], dict[str, dict]]:
        """(metrics, ci95, per-video outputs by aggregation "all" / "1view") of one task under settings `c`;
        `queries` maps a metric suffix ("" or "_1view") to (M, D) embeddings."""
        raise NotImplementedError

    def evaluate(self, exports: dict[str, nn.Module], ctx: EvalContext) -> list[TaskResult]:
        results = []
        for g in frozen_features(exports[self.cfg.input], ctx, self.cfg):
            c, lay = g.cfg, test_layout(g.cfg)
            bank = video_embedding(g.train.feats)
            queries = {"": video_embedding(g.test.feats[:, :lay.grid]),
                       "_1view": video_embedding(g.test.feats[:, lay.centre][:, None])}
            for t in g.tasks:
                t1 = time.perf_counter()
                metrics, ci, views = self.score(t, bank, g.train.labels[t.label], queries, g.test.labels[t.label], c)
                results.append(TaskResult(
                    task=t.name, metrics=metrics,
                    costs={"feature_seconds": g.seconds, "fit_seconds": time.perf_counter() - t1,
                           "train_clips_per_s": g.train.clips_per_s, "test_clips_per_s": g.test.clips_per_s},
                    counts={"train_videos": len(bank), "test_videos": len(queries[""]), "views": lay.grid,
                            "temporal_views": c.temporal_views, "spatial_views": c.spatial_views},
                    bad_videos=dict(g.bad), ci95=ci, extra=g.extra(),
                    outputs=video_outputs(g.test_ids, g.test.labels[t.label], views)))
        return results
