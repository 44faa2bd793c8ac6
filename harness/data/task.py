"""A labelled evaluation task: which dataset, which splits, which label, which classes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """`label` is the key of a manifest entry's `labels` that the task predicts; `classes` name its values."""

    name: str
    dataset: str
    label: str
    classes: tuple[str, ...]
    train_split: str = "train"
    test_split: str = "test"
    description: str = ""
    emphasis: str = ""  # "spatial" (one frame tells the class: K400, UCF101) or "temporal" (SSv2, Diving48)
    # zero-shot: per class, sentences that describe it (their text embeddings are averaged); () reads
    # "a video of <class>."
    prompts: tuple[tuple[str, ...], ...] = ()

    def class_prompts(self) -> list[tuple[str, ...]]:
        if self.prompts:
            return list(self.prompts)
        return [(f"a video of {c.replace('_', ' ')}.",) for c in self.classes]
