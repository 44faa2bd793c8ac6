"""`supervised`: the paper's supervised reference rows — the same encoder trained with labels.

Cross-entropy of a linear classifier (after dropout) on a label of the pre-training data, for each
of the ρ clips of a video (ρ = 1: one clip per video per step, the usual recipe). Only the encoder
is handed to the protocols, exactly as for the self-supervised methods. On moving-digits the label
is the digit of each pre-training video (its images are disjoint from the test clips').
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from methods.base import Method, SampleSpec, views_first
from methods.configs import SupervisedConfig


class Supervised(Method):
    """Encoder + dropout + linear classifier, trained with cross-entropy on every clip."""

    def __init__(self, encoder, cfg: SupervisedConfig):
        super().__init__(encoder, cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier: nn.Linear | None = None  # sized by setup_labels, from the data's classes

    def sample_spec(self) -> SampleSpec:
        return SampleSpec(clips=self.cfg.rho, pair_single_clip=False, label=self.cfg.label)

    def setup_labels(self, classes: tuple[str, ...]) -> None:
        self.classes = tuple(classes)
        self.classifier = nn.Linear(self.encoder.feature_dim, len(classes))
        nn.init.normal_(self.classifier.weight, std=0.01)  # SlowFast's head initialisation
        nn.init.zeros_(self.classifier.bias)
        self.classifier.to(next(self.encoder.parameters()).device)

    def trainable_modules(self) -> list[nn.Module]:
        if self.classifier is None:
            raise RuntimeError("supervised: setup_labels() must run before training (it sizes the classifier)")
        return [self.encoder, self.classifier]

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x, v = views_first(batch["clips"])
        logits = self.classifier(self.dropout(self.encoder(x)))
        labels = batch["label"].repeat(v)  # views_first groups clip-major: clip w of video b at w*B + b
        loss = F.cross_entropy(logits.float(), labels)
        acc = (logits.argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "train_top1": acc * 100}
