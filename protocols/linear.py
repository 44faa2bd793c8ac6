"""`linear`: the ρ study's linear protocol, with the backbone in the loop.

As the paper (§4, B.2) and its reference code: the encoder's weights stay frozen and a linear layer
(N(0, 0.01) init, no dropout) on its pooled features is trained with SGD (Nesterov 0.9), warm-up and
cosine LR, on a fresh random-crop/flip clip of every training video each epoch; the backbone's
BatchNorm runs in train mode meanwhile (`bn = "train"`: the code's model.train() with FROZEN_BN off,
so running statistics are re-estimated on the task's training clips), or keeps its pre-training
statistics (`bn = "frozen"`). Test: every temporal x spatial view, softmax scores averaged.
Tasks over the same videos train their layers side by side on the same clips (independent
gradients, one backbone pass). `linear-cached` is the fast variant on features extracted once.
"""
from __future__ import annotations

import torch.nn as nn

from harness.data.task import Task
from protocols.trained import Classifier, TrainedProtocol


class Linear(TrainedProtocol):
    name = "linear"

    @property
    def mode(self) -> str:
        bn = ("backbone BN in train mode (running statistics re-estimated on the training clips)"
              if self.cfg.bn == "train" else "backbone BN frozen at its pre-training statistics")
        return f"online: frozen weights, backbone in the loop on augmented clips; {bn}"

    def classifier(self, encoder: nn.Module, tasks: list[Task], seed: int, c=None) -> Classifier:
        c = c or self.cfg
        return Classifier(encoder, tasks, frozen=True, bn_train=c.bn == "train", feature_norm=c.feature_norm,
                          label_smoothing=c.label_smoothing, seed=seed)
