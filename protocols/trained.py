"""What the protocols that train on augmented clips share (`linear`, `finetune`): a classifier around
the encoder, its training through the harness's one training loop, its cache, and multi-view test.

Training goes through `harness.engine.train`, the loop pre-training uses, so these protocols get its
precision handling, non-finite checks, atomic checkpoints and resume for free: a killed fine-tuning
continues where it stopped. A finished fit is stored under a key made of the scored encoder's key,
the protocol, its settings, the tasks, the seed, the device and the code version, so a re-run of
the same cell reuses it instead of training again.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from typing import Callable

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from harness import code_version
from harness.config import resolved_precision, to_plain
from harness.config.sections import when_set
from harness.data.datasets import LabelledViews, PretrainClips
from harness.data.manifest import labels_checksum
from harness.data.sampling import EpochBatches
from harness.data.task import Task
from harness.engine import derived_seed, isolated_rng, train, use_bf16
from harness.errors import TrainingError
from harness.optim import lr_at
from harness.storage import atomic_json, atomic_save, content_key, read_verified
from protocols.base import AGGREGATION_TEXT, EvalContext, TaskResult, score_views, video_outputs, view_outputs
from protocols.configs import TrainedConfig
from protocols.frozen import TaskGroup, TaskProtocol, row_ids, task_groups, test_layout
from protocols.multiview import extract


class Classifier(nn.Module):
    """The encoder, then (optionally) a feature BatchNorm without affine and dropout, then one linear
    layer per task. It speaks the engine's method interface (`losses`, the hooks, `trainable_modules`).

    `frozen`: the encoder's weights are not trained and its forward runs without autograd; `bn_train`
    then says whether its BatchNorm layers follow the training batches (train mode, running
    statistics re-estimated) or keep their pre-training statistics (eval mode).
    """

    def __init__(self, encoder: nn.Module, tasks: list[Task], *, frozen: bool, bn_train: bool = True,
                 dropout: float = 0.0, feature_norm: bool = False, head_init: str = "normal",
                 layer_decay: float = 1.0, label_smoothing: float = 0.0, seed: int = 0):
        super().__init__()
        dim = encoder.feature_dim
        self.encoder, self.frozen, self.bn_train = encoder, frozen, bn_train
        self.norm = nn.BatchNorm1d(dim, affine=False) if feature_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(dim, len(t.classes)) for t in tasks)
        self.labels = [t.label for t in tasks]
        self.label_smoothing = label_smoothing
        g = torch.Generator().manual_seed(seed)
        for h in self.heads:
            if head_init == "zero":
                nn.init.zeros_(h.weight)
            else:
                nn.init.normal_(h.weight, std=0.01, generator=g)
            nn.init.zeros_(h.bias)
        self._lr_scales: dict[int, float] = {}
        if not frozen and layer_decay < 1:
            layers = encoder.layers()
            for i, m in enumerate(layers):  # the head counts as layer L+1 (scale 1), the stem as layer 1
                self._lr_scales[id(m)] = layer_decay ** (len(layers) - i)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                return self.encoder(x)
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of all heads, concatenated in task order."""
        f = self.dropout(self.norm(self.features(x)))
        return torch.cat([h(f) for h in self.heads], dim=-1)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        f = self.dropout(self.norm(self.features(batch["clips"][:, 0])))
        terms = {f"loss_{k}": nn.functional.cross_entropy(h(f), batch["labels"][k], label_smoothing=self.label_smoothing)
                 for h, k in zip(self.heads, self.labels)}
        return {"loss": sum(terms.values()), **(terms if len(terms) > 1 else {})}

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.frozen and not self.bn_train:
            self.encoder.eval()
        return self

    def trainable_modules(self) -> list[nn.Module]:
        if self.frozen:
            return [self.heads]
        return [*(self.encoder.layers() if self._lr_scales else [self.encoder]), self.heads]

    def lr_scale(self, module: nn.Module) -> float:
        return self._lr_scales.get(id(module), 1.0)

    def before_step(self, info) -> None:
        pass

    def before_optimizer_step(self, info) -> None:
        pass

    def after_step(self, info) -> None:
        pass


def lr_schedule(c: TrainedConfig, batch: int, per_epoch: int) -> Callable[[int], float]:
    """The LR of each step: linear warm-up, then the cosine of the pre-training schedules or a x0.1
    step decay at each of `lr_steps` (epochs), as the ρ study's UCF101/HMDB51 fine-tuning."""
    base = c.lr * batch / c.lr_batch if c.lr_batch else c.lr
    total, warmup = c.epochs * per_epoch, int(round(c.warmup_epochs * per_epoch))
    if c.schedule != "steps":
        return lambda step: lr_at(step, total, warmup, base, c.schedule)
    bounds = [int(round(e * per_epoch)) for e in c.lr_steps]

    def stepped(step: int) -> float:
        lr = base * 0.1 ** sum(step >= b for b in bounds)
        return lr * (step + 1) / warmup if step < warmup else lr

    return stepped


def fit_key(ctx: EvalContext, protocol: str, tasks: list[Task], c: TrainedConfig, train: list[dict] = ()) -> str:
    """Names a fit: the scored encoder, the settings it trained with (`c`, a task's overrides included) and
    the protocol's code, the tasks and their data (with the training videos' labels), seed, device, precision."""
    cfg = ctx.cfg
    settings = {k: v for k, v in when_set(c).items() if k not in type(c).bookkeeping}
    payload = {"encoder": ctx.encoder_key, "protocol": protocol, "code": code_version.protocol_version(protocol),
               "tasks": [t.name for t in tasks], "data": [to_plain(cfg.datasets[t.dataset]) for t in tasks],
               "labels": labels_checksum(list(train)),
               "settings": settings,
               "clip": to_plain(cfg.backbone.clip), "augment": when_set(cfg.augment), "seed": cfg.run.seed,
               "device": ctx.device.type, "precision": resolved_precision(cfg.pretrain.precision, ctx.device.type)}
    return content_key(payload)


def check_converged(final_loss: float, classes: list[int], protocol: str) -> None:
    """A fit whose last logged loss is far above guessing (cross-entropy ln C per task; 10x that) diverged:
    its scores would sit at chance and read as a real result. Stop with exit 4, naming the protocol's lr."""
    chance = sum(math.log(max(c, 2)) for c in classes)
    if not math.isfinite(final_loss) or final_loss > 10 * chance:
        raise TrainingError(f"{protocol}: the fit diverged (final loss {final_loss:.3g}, guessing gives {chance:.3g}); "
                            f"lower protocols.{protocol}.lr")


def fit(model: Classifier, g: TaskGroup, c: TrainedConfig, ctx: EvalContext, protocol: str, bad) -> dict:
    """Train `model` on random augmented clips of `g`'s training videos, or load the stored result of
    the same fit; returns what happened (for the record)."""
    cfg, dev = ctx.cfg, ctx.device
    key = fit_key(ctx, protocol, g.tasks, c, g.train.entries)
    out = cfg.cache_root() / "protocols" / f"{protocol}-{key}"
    done, info_path = out / "model.pt", out / "fit.json"
    info = read_verified(info_path, lambda p: json.loads(p.read_text()), f"cached {protocol} fit report", ctx.log)
    state = None if info is None else read_verified(done, lambda p: torch.load(p, map_location="cpu", weights_only=True),
                                                    f"cached {protocol} model", ctx.log)
    if state is not None:
        model.load_state_dict(state)
        ctx.log(f"{protocol}: reusing the trained classifier {done} ({', '.join(t.name for t in g.tasks)})")
        return {**info, "reused": True}
    aug = dataclasses.replace(cfg.augment, crop_scale=c.crop_scale, crop_ratio=c.crop_ratio, flip_p=c.flip_p,
                              crop_mode=c.crop_mode, jitter_scales=c.jitter_scales,
                              **({} if c.colour else {"jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": 0.0}))
    targets = {k: [int(e["labels"][k]) for e in g.train.entries] for k in g.label_keys}
    g.train.preload(f"decoding {protocol} training videos", ctx.progress)
    data = PretrainClips(g.train, cfg.backbone.clip, aug, 1, cfg.run.seed, views=1, labels=targets, sampler=c.sampler)
    batch = min(c.batch_size, len(g.train))  # a low-shot subset smaller than one batch still trains
    steps = EpochBatches(len(g.train), batch, c.epochs, cfg.run.seed)
    pcfg = dataclasses.replace(cfg.pretrain, epochs=c.epochs, batch_size=batch, optimizer=c.optimizer, lr=c.lr,
                               lr_batch=c.lr_batch, weight_decay=c.weight_decay, momentum=c.momentum,
                               warmup_epochs=c.warmup_epochs, grad_clip=c.grad_clip, steps=0, warmup_steps=0)

    def make_loader(start: int):
        sampler = EpochBatches(len(g.train), batch, c.epochs, cfg.run.seed, start)
        return DataLoader(data, batch_sampler=sampler, collate_fn=data.collate, num_workers=cfg.data.num_workers,
                          pin_memory=dev.type == "cuda", persistent_workers=False)

    def on_bad(items):
        for path, err in items:
            bad.add(path, err)

    ctx.log(f"{protocol}: training on {len(g.train)} videos of {', '.join(t.name for t in g.tasks)} "
            f"({steps.total_steps} steps of {batch}) -> {out}")
    # the fit's own random stream (dropout, the loader's seeds): exact whether an earlier task's fit trained,
    # resumed or was reused, and the next fit's stream does not depend on this one
    with isolated_rng(derived_seed(cfg.run.seed, protocol, *(t.name for t in g.tasks))):
        stats = train(model, make_loader, steps.total_steps, 1, pcfg, dev, out / "last.pt",
                      resume=(out / "last.pt").exists(), on_bad=on_bad,
                      fingerprint=key, progress=ctx.progress, log=ctx.log,
                      schedule=lr_schedule(c, batch, steps.per_epoch), desc=protocol, settings=f"protocols.{protocol}")
    check_converged(stats.final_loss, [len(t.classes) for t in g.tasks], protocol)
    info = {"key": key, "steps": stats.steps, "batch": batch, "seconds": stats.seconds,
            "clips_per_s": stats.clips_per_s, "final_loss": stats.final_loss, "peak_memory_gb": stats.peak_memory_gb,
            "resumed_from_step": stats.resumed_from_step, "loss_curve": stats.loss_curve, "checkpoint": str(done)}
    atomic_save(model.state_dict(), done)
    atomic_json(info_path, info, digest=True)
    (out / "last.pt").unlink(missing_ok=True)  # the finished model supersedes the resumable state
    return {**info, "reused": False}


class TrainedProtocol(TaskProtocol):
    """The loop of `linear` and `finetune`: per group of tasks, build a `Classifier` around a copy of
    the encoder (`classifier`), fit it, and score every test view; tasks over the same videos share
    one fit when `share_tasks` (the frozen probe trains their heads side by side)."""

    name = ""
    share_tasks = True

    @property
    def aggregation(self) -> str:
        return AGGREGATION_TEXT[self.cfg.aggregate]

    def classifier(self, encoder: nn.Module, tasks: list[Task], seed: int, c=None) -> Classifier:
        """The model to fit, under settings `c` (default: the protocol's own)."""
        raise NotImplementedError

    def card(self, cfg, results: list[TaskResult]) -> dict:
        c = self.cfg
        steps = f", x0.1 at epochs {c.lr_steps}" if c.schedule == "steps" else ""
        crops = f"random resized crop (area {c.crop_scale}, ratio {c.crop_ratio}), flip p={c.flip_p:g}" + \
            (", colour augmentation of [augment]" if c.colour else "")
        return {**super().card(cfg, results),
                "training": f"{c.epochs} epochs of one random clip per video, batch {c.batch_size}, {c.optimizer} "
                            f"lr {c.lr:g}{f' per {c.lr_batch}' if c.lr_batch else ''}, {c.schedule} schedule{steps}, "
                            f"warm-up {c.warmup_epochs:g} epochs, weight decay {c.weight_decay:g}; {crops}"}

    def evaluate(self, exports: dict[str, nn.Module], ctx: EvalContext) -> list[TaskResult]:
        cfg, dev = ctx.cfg, ctx.device
        results = []
        for g in task_groups(ctx, self.cfg, share=self.share_tasks):
            c, lay = g.cfg, test_layout(g.cfg)
            bad = g.bad_counters(cfg)
            model = self.classifier(copy.deepcopy(exports["video"]), g.tasks, cfg.run.seed, c)
            t0 = time.perf_counter()
            info = fit(model, g, c, ctx, self.name, bad["train"])
            t1 = time.perf_counter()
            test_ds = LabelledViews(g.test, cfg.backbone.clip, lay, g.label_keys)
            te = extract(model.to(dev), test_ds, dev, c.feature_batch, cfg.data.num_workers, bad["test"],
                         use_bf16(cfg.pretrain, dev), "test views", ctx.progress, c.clip_batch)
            logits = te.feats.split([len(t.classes) for t in g.tasks], dim=-1)
            for t, lg in zip(g.tasks, logits):
                metrics, ci = score_views(lg, te.labels[t.label], lay, c.aggregate)
                results.append(TaskResult(
                    task=t.name, metrics=metrics,
                    costs={"fit_seconds": t1 - t0, "test_seconds": te.seconds, "train_clips_per_s": info["clips_per_s"],
                           "test_clips_per_s": te.clips_per_s, "peak_memory_gb": info["peak_memory_gb"]},
                    counts={"train_videos": len(g.train), "test_videos": len(lg), "views": lay.grid,
                            "temporal_views": c.temporal_views, "spatial_views": c.spatial_views,
                            "train_steps": info["steps"]},
                    bad_videos={**bad["train"].failed, **bad["test"].failed}, ci95=ci,
                    extra={"fit": {k: v for k, v in info.items() if k != "loss_curve"},
                           "loss_curve": info["loss_curve"],
                           **({"train_ids": g.train_ids} if g.train_ids is not None else {})},
                    outputs=video_outputs(row_ids(g.test, te), te.labels[t.label],
                                          view_outputs(lg, te.labels[t.label], lay, c.aggregate))))
        return results
