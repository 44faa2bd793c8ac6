"""`finetune`: the whole pre-trained encoder and a new linear layer, trained end to end on a task.

As the ρ study's UCF101/HMDB51 protocol (B.6): dropout before the new layer (0.8 there), SGD with a
x0.1 step decay (epochs 60, 120, 180 of 200), the pre-training's spatial augmentation, 30-view test;
the released config's cosine variant and VIMPAC/VATT's layer-wise LR decay and zero-initialised head
are options. Each task gets its own copy of the encoder; the fine-tuned model is stored under the
pre-training key and the task (`protocols.trained`), so a re-run scores it without training again.
"""
from __future__ import annotations

import torch.nn as nn

from harness.data.task import Task
from protocols.trained import Classifier, TrainedProtocol


class Finetune(TrainedProtocol):
    name = "finetune"
    share_tasks = False  # the encoder changes: one fit per task

    @property
    def mode(self) -> str:
        c = self.cfg
        decay = f", layer-wise LR decay {c.layer_decay:g}" if c.layer_decay < 1 else ""
        return f"end to end: all encoder weights and a new linear layer (dropout {c.dropout:g}){decay}"

    def classifier(self, encoder: nn.Module, tasks: list[Task], seed: int, c=None) -> Classifier:
        c = c or self.cfg
        return Classifier(encoder, tasks, frozen=False, dropout=c.dropout, head_init=c.head_init,
                          layer_decay=c.layer_decay, label_smoothing=c.label_smoothing, seed=seed)
