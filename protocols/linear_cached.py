"""`linear-cached`: the fast linear probe, on features extracted once.

As the ρ study's protocol (`linear`): frozen weights, BatchNorm statistics re-estimated on the
task's training videos, a linear layer trained with SGD + cosine LR, the softmax scores of all
temporal x spatial test views averaged. Where it differs, and why: features of the training clips
are extracted once (centre crop, `train_views` temporal clips per video) instead of being
recomputed under random crops every epoch, which makes the probe seconds instead of hours (the
embedded profile's default); features are standardised with training statistics so encoders with
different feature scales get the same optimiser. Tasks that share videos share one extraction.
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn

from harness.optim import lr_at
from protocols.base import AGGREGATION_TEXT, EvalContext, TaskResult, score_views, video_outputs, view_outputs
from protocols.configs import LinearCachedConfig
from protocols.frozen import FrozenProtocol, frozen_features, test_layout
from protocols.multiview import Features
from protocols.trained import check_converged


def train_linear(x: torch.Tensor, y: torch.Tensor, n_classes: int, cfg: LinearCachedConfig, seed: int) -> nn.Linear:
    """SGD (Nesterov 0.9) with warm-up + cosine on fixed features; the layer starts at N(0, 0.01)."""
    g = torch.Generator().manual_seed(seed)
    fc = nn.Linear(x.shape[1], n_classes)
    nn.init.normal_(fc.weight, std=0.01, generator=g)
    nn.init.zeros_(fc.bias)
    opt = torch.optim.SGD(fc.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    per_epoch = max(len(x) // cfg.batch_size, 1)
    total = cfg.epochs * per_epoch
    step, last = 0, torch.zeros(())
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=g)
        last = torch.zeros(())
        for b in range(per_epoch):
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg.warmup_epochs * per_epoch, cfg.lr)
            loss = nn.functional.cross_entropy(fc(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            last = last + loss.detach() / per_epoch
            step += 1
    check_converged(float(last), [n_classes], "linear-cached")  # the last epoch's mean loss
    return fc


class LinearCached(FrozenProtocol):
    """Frozen encoder, BN statistics re-estimated, a linear layer on extracted features, multi-view test."""

    mode = "cached: frozen encoder, features extracted once (centre crops); linear layer trained on them"

    @property
    def aggregation(self) -> str:
        return AGGREGATION_TEXT[self.cfg.aggregate]

    def evaluate(self, exports: dict[str, nn.Module], ctx: EvalContext) -> list[TaskResult]:
        results = []
        for g in frozen_features(exports[self.cfg.input], ctx, self.cfg):  # tasks over the same videos share one extraction
            c, tr, te = g.cfg, g.train, g.test
            x_tr, x_te = tr.feats.flatten(0, 1), te.feats
            if c.standardize:
                mu, sd = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)
                x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
            for t in g.tasks:
                t1 = time.perf_counter()
                y_tr = tr.labels[t.label].repeat_interleave(tr.feats.shape[1])
                fc = train_linear(x_tr, y_tr, len(t.classes), c, ctx.cfg.run.seed)
                results.append(self._score(t, fc, x_te, te, c, time.perf_counter() - t1, g.seconds, tr, g.bad,
                                           g.test_ids))
                results[-1].extra.update(g.extra())
        return results

    @staticmethod
    @torch.no_grad()
    def _score(task, fc, x_te, te: Features, c: LinearCachedConfig, t_fit, t_feat, tr: Features, bad,
               ids: list[str]) -> TaskResult:
        n, v, _ = x_te.shape
        logits = fc(x_te.flatten(0, 1)).view(n, v, -1)
        lay = test_layout(c)
        metrics, ci = score_views(logits, te.labels[task.label], lay, c.aggregate)
        return TaskResult(
            task=task.name, metrics=metrics,
            costs={"feature_seconds": t_feat, "fit_seconds": t_fit,
                   "train_clips_per_s": tr.clips_per_s, "test_clips_per_s": te.clips_per_s},
            counts={"train_videos": len(tr.feats), "test_videos": n, "views": lay.grid,
                    "temporal_views": c.temporal_views, "spatial_views": c.spatial_views},
            bad_videos=dict(bad), ci95=ci,
            outputs=video_outputs(ids, te.labels[task.label], view_outputs(logits, te.labels[task.label], lay, c.aggregate)),
        )
