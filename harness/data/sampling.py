"""Samplers: which videos each training step reads (`EpochBatches`, and one process's share of them), and which
frame indices each clip of a video reads."""
from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Sampler

from harness.errors import DataError


def clip_span(frames: int, stride: int) -> int:
    """Number of raw frames one clip covers (8x8 -> 57, first to last frame inclusive)."""
    return (frames - 1) * stride + 1


def clip_indices(start: int, frames: int, stride: int, num_frames: int) -> np.ndarray:
    """Frame indices of one clip starting at `start`, clamped to the video (short videos repeat the end)."""
    idx = start + stride * np.arange(frames)
    return np.minimum(idx, max(num_frames - 1, 0))


def random_clip_starts(num_frames: int, frames: int, stride: int, count: int, rng: np.random.Generator,
                       max_distance: int = -1) -> list[int]:
    """ρ-style global temporal sampling: `count` independent starts uniform over the whole video.

    With `max_distance` >= 0 the first start is uniform and the others uniform within that many frames
    of it (VIMPAC's limit on how far apart its positive clips may lie; 0: the same clip).
    """
    last = max(num_frames - clip_span(frames, stride), 0)
    if max_distance < 0 or count < 2:
        return [int(s) for s in rng.integers(0, last + 1, size=count)]
    first = int(rng.integers(0, last + 1))
    low, high = max(first - max_distance, 0), min(first + max_distance, last)
    return [first, *(int(s) for s in rng.integers(low, high + 1, size=count - 1))]


def uniform_clip_starts(num_frames: int, frames: int, stride: int, count: int) -> list[int]:
    """`count` test clips centred in equal segments of the video (count=1: the centre clip).

    SlowFast starts clip i at i/count of the free range; centring in segments keeps the single-view
    clip in the middle and the ten-view set symmetric. The difference is at most half a segment.
    """
    free = max(num_frames - clip_span(frames, stride), 0)
    return [int(round(free * (i + 0.5) / count)) for i in range(count)]


SAMPLERS = ("clip", "segments")


def segment_indices(num_frames: int, frames: int, rng: np.random.Generator | None = None,
                    position: float = 0.5) -> np.ndarray:
    """One frame from each of `frames` equal segments of the whole video (TSN; PySlowFast's SSv2 loader,
    `get_seq_frames`): segment i spans round(i s) .. round((i + 1) s) with s = (num_frames - 1) / frames. In
    training (`rng`) a frame uniform within the segment, bounds included; at test the frame at `position`
    of the segment (0.5: its middle, `(start + end) // 2`)."""
    seg = max(num_frames - 1, 0) / frames
    out = []
    for i in range(frames):
        start, end = int(np.round(seg * i)), int(np.round(seg * (i + 1)))
        out.append(int(rng.integers(start, end + 1)) if rng is not None else start + int((end - start) * position))
    return np.asarray(out, dtype=np.int64)


def centre_clip_start(num_frames: int, frames: int, stride: int) -> int:
    """Start of the clip whose middle is the video's middle (rounded to a frame)."""
    return int(round(max(num_frames - clip_span(frames, stride), 0) / 2))


class ViewLayout:
    """Where the test views of a video sit: `temporal` clips (uniform, `uniform_clip_starts`) x `spatial`
    crops, temporal-major, so view t*S + s is clip t, crop s.

    The single-view number must come from the clip at the video's true centre. With an odd count the
    middle clip is that clip; with an even count no clip of the grid is, so (when `with_centre`) one
    extra clip at the centre, centre crop only, is appended as the last view. `grid` views are the
    ones aggregated for the all-views number; `centre` indexes the single view.
    """

    def __init__(self, temporal: int, spatial: int, with_centre: bool = True, sampler: str = "clip"):
        if temporal < 1 or spatial < 1:
            raise ValueError(f"views need temporal >= 1 and spatial >= 1, got {temporal}x{spatial}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown frame sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
        self.temporal, self.spatial, self.sampler = temporal, spatial, sampler
        self.extra = with_centre and temporal % 2 == 0

    @property
    def grid(self) -> int:
        return self.temporal * self.spatial

    @property
    def count(self) -> int:
        return self.grid + int(self.extra)

    @property
    def centre(self) -> int:
        return self.grid if self.extra else (self.temporal // 2) * self.spatial + self.spatial // 2

    def starts(self, num_frames: int, frames: int, stride: int) -> list[int]:
        """Start frames of the temporal clips, the extra centre clip last."""
        s = uniform_clip_starts(num_frames, frames, stride, self.temporal)
        return s + [centre_clip_start(num_frames, frames, stride)] if self.extra else s

    def frame_indices(self, num_frames: int, frames: int, stride: int) -> list[np.ndarray]:
        """Each temporal view's frame indices, the extra centre view last. `clip` sampler: the clips of
        `starts`; `segments`: a frame of every segment of the whole video, view t of K at (t + 0.5) / K of each
        segment (one view: the segments' middles, as PySlowFast tests SSv2)."""
        if self.sampler == "segments":
            places = [(t + 0.5) / self.temporal for t in range(self.temporal)] + ([0.5] if self.extra else [])
            return [segment_indices(num_frames, frames, position=p) for p in places]
        return [clip_indices(s, frames, stride, num_frames) for s in self.starts(num_frames, frames, stride)]

    def __repr__(self) -> str:
        seg = ", segments" if self.sampler != "clip" else ""
        return f"ViewLayout({self.temporal}x{self.spatial}{' + centre' if self.extra else ''}{seg})"


class EpochBatches(Sampler):
    """Batches of (epoch, index) keys from a seeded permutation per epoch, resumable at any step.

    Dropping the last partial batch keeps the batch size (and BN statistics) constant; the step
    count is `epochs * (n // batch)`, or `steps` when given (a schedule counted in updates, as VIMPAC's and
    VATT's papers count theirs, whatever the dataset's size: the last epoch may end part-way).
    """

    def __init__(self, n: int, batch_size: int, epochs: int, seed: int, start_step: int = 0, steps: int = 0):
        if n < batch_size:
            raise DataError(f"pre-training set has {n} videos, fewer than one batch of {batch_size}")
        self.n, self.batch, self.epochs, self.seed, self.start = n, batch_size, epochs, seed, start_step
        self.per_epoch = n // batch_size
        self.steps = steps

    @property
    def total_steps(self) -> int:
        return self.steps or self.epochs * self.per_epoch

    def __len__(self) -> int:
        return self.total_steps - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        perm, perm_epoch = None, -1
        for step in range(self.start, self.total_steps):
            epoch, b = divmod(step, self.per_epoch)
            if epoch != perm_epoch:  # one permutation per epoch, not per step
                perm, perm_epoch = np.random.default_rng([self.seed, 99, epoch]).permutation(self.n), epoch
            yield [(epoch, int(i)) for i in perm[b * self.batch:(b + 1) * self.batch]]


class ShareOf(Sampler):
    """One process's share of every batch of `batches` (the contiguous slice of rank `rank` of `world`), so
    the processes of a `torchrun` run together read exactly the 1-process run's global batches in its order."""

    def __init__(self, batches: Sampler, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for b in self.batches:
            k = len(b) // self.world
            yield b[self.rank * k:(self.rank + 1) * k]
