"""Clip samplers: which frame indices each clip of a video reads."""
from __future__ import annotations

import numpy as np


def clip_span(frames: int, stride: int) -> int:
    """Number of raw frames one clip covers (8x8 -> 57, first to last frame inclusive)."""
    return (frames - 1) * stride + 1


def clip_indices(start: int, frames: int, stride: int, num_frames: int) -> np.ndarray:
    """Frame indices of one clip starting at `start`, clamped to the video (short videos repeat the end)."""
    idx = start + stride * np.arange(frames)
    return np.minimum(idx, max(num_frames - 1, 0))


def random_clip_starts(num_frames: int, frames: int, stride: int, count: int, rng: np.random.Generator) -> list[int]:
    """ρ-style global temporal sampling: `count` independent starts uniform over the whole video."""
    last = max(num_frames - clip_span(frames, stride), 0)
    return [int(s) for s in rng.integers(0, last + 1, size=count)]


def uniform_clip_starts(num_frames: int, frames: int, stride: int, count: int) -> list[int]:
    """`count` test clips centred in equal segments of the video (count=1: the centre clip).

    SlowFast starts clip i at i/count of the free range; centring in segments keeps the single-view
    clip in the middle and the ten-view set symmetric. The difference is at most half a segment.
    """
    free = max(num_frames - clip_span(frames, stride), 0)
    return [int(round(free * (i + 0.5) / count)) for i in range(count)]
