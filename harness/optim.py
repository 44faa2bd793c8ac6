"""Optimisation: parameter groups (no decay and no LARS scaling for biases and norms), LARS (timm's), the
optimiser a config names, and the learning-rate schedules. Used by pre-training and by the protocols
that train (probes, fine-tuning)."""
from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn as nn

from harness.config.sections import PretrainConfig


def param_groups(modules: Iterable[nn.Module], weight_decay: float,
                 lr_scales: Iterable[float] | None = None) -> list[dict]:
    """Weights decay and get LARS scaling; biases and norm parameters (ndim <= 1) get neither.

    `lr_scales` (one per module, default 1) multiply the scheduled LR of that module's groups:
    the way a method asks for a faster head, e.g. BYOL's predictor (Method.lr_scale).
    """
    modules = list(modules)
    scales = list(lr_scales) if lr_scales is not None else [1.0] * len(modules)
    groups: dict[tuple[float, bool], dict] = {}
    seen: set[int] = set()
    for m, scale in zip(modules, scales, strict=True):
        for p in m.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            decay = p.ndim > 1
            g = groups.setdefault((float(scale), decay), {
                "params": [], "weight_decay": weight_decay if decay else 0.0, "lars": decay, "lr_scale": float(scale)})
            g["params"].append(p)
    return sorted(groups.values(), key=lambda g: (g["lr_scale"] != 1.0, not g["lars"]))


def LARS(params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, trust: float = 0.001,
         nesterov: bool = True) -> torch.optim.Optimizer:
    """SGD with momentum and layer-wise adaptive rate scaling (You et al., 2017), as the ρ study uses: timm's
    `Lars`. Per tensor of a group with `lars=True` (weights) the step is (g + wd w) scaled by
    trust * |w| / (|g| + wd |w|), then Nesterov momentum; groups with `lars=False` (biases, norms: no weight
    decay) take plain SGD steps. timm adapts a group only when its weight decay is set unless `always_adapt`,
    so each group's `lars` flag becomes its `always_adapt` (weights adapt even with no decay, as the harness's
    own LARS did; `tests/test_engine.py` checks it against a hand computation)."""
    from timm.optim import Lars

    groups = [dict(g) for g in params] if params and isinstance(params[0], dict) else [{"params": list(params)}]
    for g in groups:
        g["always_adapt"] = bool(g.get("lars", True))
        if not g["always_adapt"] and g.get("weight_decay", weight_decay):
            raise ValueError("a LARS group without adaptation must not decay (timm would adapt it)")
    return Lars(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov and momentum > 0,
                trust_coeff=trust,
                eps=1e-12)


def build_optimizer(modules: Iterable[nn.Module], cfg: PretrainConfig,
                    lr_scales: Iterable[float] | None = None) -> torch.optim.Optimizer:
    groups = param_groups(modules, cfg.weight_decay, lr_scales)
    if cfg.optimizer == "sgd":
        for g in groups:
            g.pop("lars")
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        for g in groups:
            g.pop("lars")
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps)
    return LARS(groups, lr=cfg.lr, momentum=cfg.momentum)


LR_SCHEDULES = ("cosine", "cosine-after-warmup", "linear")


def lr_at(step: int, total: int, warmup: int, base: float, shape: str = "cosine-after-warmup") -> float:
    """The learning rate of `step` (0-based) under a linear warm-up and a half-cosine decay to 0 at `total`.

    - `cosine` (the ρ configs, PySlowFast's COSINE_AFTER_WARMUP=False): one cosine over the whole run;
      the warm-up ramps linearly up to the cosine's value at its last step, so the curve joins it.
    - `cosine-after-warmup`: the warm-up ramps to `base`, then a cosine over the remaining steps.
    - `linear`: the warm-up ramps to `base`, then a straight line to 0 (BERT's; VIMPAC pre-trains with it).
    """
    if shape == "cosine":
        curve = base * 0.5 * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0)))
        if step < warmup:
            return base * 0.5 * (1 + math.cos(math.pi * warmup / max(total, 1))) * (step + 1) / warmup
        return curve
    if shape == "linear":
        if step < warmup:
            return base * (step + 1) / warmup
        return base * max(0.0, 1 - (step - warmup) / max(total - warmup, 1))
    if shape != "cosine-after-warmup":
        raise ValueError(f"unknown LR schedule {shape!r}; known: {', '.join(LR_SCHEDULES)}")
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return base * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def scaled_lr(cfg: PretrainConfig) -> float:
    """`pretrain.lr` under the linear scaling rule (Goyal et al. 2017): lr x batch_size / lr_batch.

    `batch_size` is the global batch (videos per step over all processes); `lr_batch` = 0 takes `lr`
    as the rate of this run's batch, whatever its size.
    """
    return cfg.lr * cfg.batch_size / cfg.lr_batch if cfg.lr_batch else cfg.lr
