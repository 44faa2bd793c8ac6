"""Torch datasets over manifest entries: ρ-clip pre-training samples and multi-view labelled samples.

Randomness is keyed by (seed, epoch, index) rather than drawn from a global stream, so a sample
looks the same whichever worker loads it and whether or not the run was resumed.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from harness.config.sections import AugmentConfig, ClipConfig
from harness.data import sampling, streams
from harness.data.transforms import ClipGeometry, ColourAugment, Normalize, resize_short_side, spatial_crops, to_video
from harness.data.video import decode_frames, read_audio, truncation_slack
from harness.errors import DataError, VideoDecodeError
from harness.progress import progress_bar

_STREAMS = streams.STREAMS

__all__ = ["DataError", "BadVideos", "VideoSet", "PretrainClips", "LabelledViews", "collate"]


@dataclass
class BadVideos:
    """Counts videos that could not be decoded; aborts once more than `max_fraction` of a split fails."""

    total: int
    max_fraction: float
    failed: dict[str, str] = field(default_factory=dict)
    what: str = "videos"  # names the set in the message, e.g. "test videos of moving-digits"

    def add(self, path: str, error: str) -> None:
        if path not in self.failed:
            warnings.warn(f"skipping unreadable video {error}", stacklevel=2)
        self.failed[path] = error
        if len(self.failed) > self.max_fraction * self.total:
            raise DataError(
                f"{len(self.failed)} of {self.total} {self.what} could not be decoded, more than "
                f"data.max_bad_fraction={self.max_fraction}; first: {next(iter(self.failed.values()))}"
            )


class VideoSet:
    """The videos of one split: paths, frame counts, and an optional in-memory cache of decoded frames.

    With `fps` > 0, frame indices are in time at that rate: video i has `num_frames(i)` frames at `fps`,
    and `frames` maps each to the source frame shown at that moment (entries carry their source `fps`;
    an entry without one, like the embedded data, is read in its own frames). Samplers and datasets
    above work in these units unchanged.
    """

    def __init__(self, root: Path, entries: list[dict], cache_frames: bool, seek_gap: int = 32, fps: float = 0.0):
        self.root = Path(root)
        self.entries = entries
        self.cache_frames = cache_frames
        self.seek_gap = seek_gap
        self.fps = fps
        self._cache: dict[int, np.ndarray] = {}
        self._errors: dict[int, VideoDecodeError] = {}
        self._audio: dict[tuple[int, int], np.ndarray | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def path(self, i: int) -> Path:
        return self.root / self.entries[i]["path"]

    def shorter_than(self, span: int) -> int:
        """How many videos have fewer than `span` frames (a clip of them repeats its last frame, as the
        papers' loaders do); the protocol card reports the count."""
        return sum(0 < self.num_frames(i) < span for i in range(len(self)))

    def _ratio(self, i: int) -> float:
        """Source frames per target frame (1 when reading source frames)."""
        src = self.entries[i].get("fps")
        return src / self.fps if self.fps and src else 1.0

    def num_frames(self, i: int) -> int:
        n = int(self.entries[i]["frames"])
        r = self._ratio(i)
        return n if r == 1.0 else max(1, int(n / r))

    def rate(self, i: int) -> float:
        """Frames per second of video i's frame indices (the target rate, else the entry's own)."""
        return float(self.fps or self.entries[i].get("fps") or 0) or 1.0

    def audio(self, i: int, rate: int) -> np.ndarray | None:
        """Video i's whole audio track, mono float32 at `rate` Hz (0: as stored); None when it has none.
        Kept in memory with the frames in cached mode (only outside DataLoader workers, as frames are)."""
        self.damaged(i)
        key = (i, rate)
        if key in self._audio:
            return self._audio[key]
        try:
            wave, src = read_audio(self.path(i))
            wave = streams.resample(wave, src, rate)
        except VideoDecodeError as e:
            if "no audio stream" not in str(e):
                raise
            wave = None
        if self.cache_frames and get_worker_info() is None:
            self._audio[key] = wave
        return wave

    def damaged(self, i: int) -> None:
        """A file the data check found changed (its entry says `damaged`) is never read: it counts as
        unreadable, with the check's reason, whatever it would decode to."""
        why = self.entries[i].get("damaged")
        if why:
            raise VideoDecodeError(f"{self.path(i)}: {why}")

    def frames(self, i: int, indices: np.ndarray) -> np.ndarray:
        """uint8 (len(indices), H, W, 3). Cached mode decodes each video once for the whole run."""
        self.damaged(i)
        r = self._ratio(i)
        if r != 1.0:  # target-rate indices -> the source frame on screen at that time
            indices = np.minimum((np.asarray(indices) * r).astype(np.int64), int(self.entries[i]["frames"]) - 1)
        if self.cache_frames:
            if i in self._errors:
                raise self._errors[i]
            if i not in self._cache and get_worker_info() is None:
                self._cache[i] = self._decode_all(i)
            if i in self._cache:
                full = self._cache[i]
                return full[np.minimum(indices, len(full) - 1)]
            # in a DataLoader worker, only what `preload` decoded before the workers started is shared (the
            # processes inherit it); a cache filled in a worker would be one more copy per worker, lost
            # when it exits, so a video not preloaded is decoded for this sample alone
        gop = int(self.entries[i].get("gop") or 0)
        regular = self.entries[i].get("keyframes") == "regular"  # a keyframe every `gop` frames, exactly
        return decode_frames(self.path(i), indices, seek_gap=max(self.seek_gap, gop),
                             expect=int(self.entries[i]["frames"]), gop=gop if regular else 0)

    def _decode_all(self, i: int) -> np.ndarray:
        """Every frame of video i; one that holds fewer frames than its entry says is truncated, not padded."""
        self.damaged(i)
        full = decode_frames(self.path(i))
        expected = int(self.entries[i]["frames"])
        if expected - len(full) > truncation_slack(expected):
            raise VideoDecodeError(f"{self.path(i)}: truncated: {len(full)} frames decode of the {expected} "
                                   "its header gives")
        return full

    def preload(self, desc: str, progress: bool) -> None:
        """Decode every video into the cache now, as a phase of its own, so that the first epoch of
        training runs at the pace of the others (and its progress estimate holds from the start).
        A video that cannot be decoded is remembered and reported when a sample asks for it."""
        if not self.cache_frames:
            return
        with progress_bar(len(self), 0, desc, "video", progress) as bar:
            for i in range(len(self)):
                if i not in self._cache and i not in self._errors:
                    try:
                        self._cache[i] = self._decode_all(i)
                    except VideoDecodeError as e:
                        self._errors[i] = e
                bar.update()


class PretrainClips(Dataset):
    """One item = `views` augmented clips of one video: ρ clips at independent times, or with
    `views` > ρ = 1 that many augmentations of one clip (the SSL methods' ρ = 1).

    Items hold cropped uint8 clips and each clip's colour parameters; `collate` applies the colour
    augmentation to the whole batch at once and normalises (use it as the DataLoader's collate_fn).
    `labels`, when given, adds each video's class index as `label` (supervised pre-training), or with
    a dict of such lists (name -> per-video class) a dict `labels` (the protocols that train several
    tasks' heads on the same clips).

    `streams` beyond "video" add, per clip, the audio under it (`audio` (B, V, S) at `audio_rate` Hz,
    `audio_valid` (B,) False for a video without a track) and the `captions` narrations nearest it,
    tokenised by `tokenizer` (`text_ids`, `text_mask` (B, V, K, L); `text_valid` (B, V, K) False for a
    slot the video has no caption for; with `whole_caption`, every clip's is the video's whole caption). All
    come from the same clip starts as the frames.
    """

    def __init__(self, videos: VideoSet, clip: ClipConfig, aug: AugmentConfig, rho: int, seed: int,
                 views: int | None = None, labels: list[int] | dict[str, list[int]] | None = None,
                 on_device: bool = False, augment: bool = True, max_distance: int = -1,
                 streams: tuple[str, ...] = ("video",), captions: int = 1, audio_rate: int = 0, tokenizer=None,
                 whole_caption: bool = False, sampler: str = "clip"):
        self.videos, self.clip, self.rho, self.seed, self.labels = videos, clip, rho, seed, labels
        if sampler not in sampling.SAMPLERS or (sampler == "segments" and (len(streams) > 1 or rho > 1)):
            raise ValueError(f"frame sampler {sampler!r}: 'clip', or 'segments' for one clip of frames alone")
        self.sampler = sampler  # "segments": a frame of each segment of the whole video (SSv2's fine-tuning)
        self.max_distance = max_distance
        self.streams, self.captions, self.audio_rate, self.tokenizer = streams, captions, audio_rate, tokenizer
        self.whole_caption = whole_caption
        unknown = set(streams) - set(_STREAMS)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; known: {_STREAMS}")
        if "text" in streams and tokenizer is None:
            raise ValueError("the text stream needs a tokenizer")
        if "audio" in streams:
            if audio_rate <= 0:
                raise ValueError("the audio stream needs audio_rate > 0 (Hz)")
            rate = videos.rate(0) if len(videos) else 1.0  # one length for every clip of the run
            self.audio_samples = int(round(sampling.clip_span(clip.frames, clip.stride) / rate * audio_rate))
        if not augment:  # the largest centre square, resized to the crop; no flip, no colour (VIMPAC)
            aug = replace(aug, crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], flip_p=0.0, jitter_p=0.0,
                          grayscale_p=0.0, blur_p=0.0)
        self.on_device = on_device  # colour and normalisation wait for `finish`, on the training device
        self.views = max(rho, 2) if views is None else views
        if self.views != rho and rho != 1:
            raise ValueError(f"views ({self.views}) differ from rho ({rho}); only rho = 1 repeats a clip")
        self.geometry = ClipGeometry(aug, clip)
        self.colour = ColourAugment(aug, clip)
        self.normalize = Normalize(clip.mean, clip.std)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        n = self.videos.num_frames(i)
        if self.sampler == "segments":
            starts, idx = [], [sampling.segment_indices(n, self.clip.frames, rng)] * self.views
        else:
            starts = sampling.random_clip_starts(n, self.clip.frames, self.clip.stride, self.rho, rng,
                                                 self.max_distance)
            if self.rho == 1:
                starts = starts * self.views  # same time, independent augmentations
            idx = [sampling.clip_indices(s, self.clip.frames, self.clip.stride, n) for s in starts]
        try:
            frames = self.videos.frames(i, np.concatenate(idx))
        except VideoDecodeError as e:
            return {"bad": str(self.videos.path(i)), "error": str(e)}
        T = self.clip.frames
        video = torch.as_tensor(frames).permute(0, 3, 1, 2)  # (views*T, 3, H, W)
        h, w = video.shape[-2:]
        clips, colour = [], []
        for v in range(self.views):  # the same generator goes on from the clip starts
            clips.append(self.geometry(video[v * T:(v + 1) * T], self.geometry.draw(rng, h, w)))
            colour.append(self.colour.draw(rng))
        item = {"clips": torch.stack(clips), "colour": torch.stack(colour), "index": i}
        if len(self.streams) > 1:
            try:
                item.update(self.extra_streams(i, starts))
            except VideoDecodeError as e:
                return {"bad": str(self.videos.path(i)), "error": str(e)}
        if isinstance(self.labels, dict):
            item["labels"] = {k: v[i] for k, v in self.labels.items()}
        elif self.labels is not None:
            item["label"] = self.labels[i]
        return item

    @classmethod
    def for_spec(cls, videos: VideoSet, cfg, spec, seed: int, labels=None) -> PretrainClips:
        """The samples a method's `SampleSpec` asks for, under a run's config (what pre-training and
        `bench perf` read)."""
        return cls(videos, cfg.backbone.clip, cfg.augment, spec.clips, seed, spec.views, labels,
                   on_device=cfg.data.augment_on == "device", augment=spec.augment, max_distance=spec.max_distance,
                   streams=spec.streams, captions=spec.captions, audio_rate=spec.audio_rate, tokenizer=spec.tokenizer,
                   whole_caption=spec.whole_caption)

    def extra_streams(self, i: int, starts: list[int]) -> dict:
        """The audio and captions of video i under the clips starting at `starts`."""
        rate = self.videos.rate(i)
        spans = [streams.clip_seconds(s, self.clip.frames, self.clip.stride, rate) for s in starts]
        out: dict = {}
        if "audio" in self.streams:
            wave = self.videos.audio(i, self.audio_rate)
            out["audio_valid"] = wave is not None
            out["audio"] = torch.stack([torch.from_numpy(
                streams.audio_cut(wave, self.audio_rate, a, self.audio_samples) if wave is not None
                else np.zeros(self.audio_samples, np.float32)) for a, _ in spans])
        if "text" in self.streams:
            told = (streams.whole_caption if self.whole_caption else streams.narrations)(self.videos.entries[i], rate)
            out["captions"] = [streams.nearest_narrations(told, a, b, self.captions) for a, b in spans]
        return out

    def collate(self, items: list[dict]) -> dict:
        """Batch items, then colour-augment and normalise all their clips in one go: (B, V, C, T, H, W);
        with `on_device`, the batch keeps uint8 clips and their colour parameters for `finish`. Captions
        are tokenised here, a batch at a time."""
        out = collate(items)
        good = [x for x in items if "bad" not in x]
        if good and "captions" in good[0]:
            out.update(tokenize_captions([x["captions"] for x in good], self.tokenizer))
        return out if self.on_device else self.finish(out)

    def finish(self, out: dict) -> dict:
        """Colour-augment and normalise a collated batch wherever its tensors are (the loader's worker, or
        the GPU after the batch was moved there: `data.augment_on = "device"`)."""
        if "clips" in out and "colour" in out:
            b, v = out["clips"].shape[:2]
            x = self.colour(out["clips"].flatten(0, 1), out.pop("colour").flatten(0, 1))
            out["clips"] = self.normalize(x).unflatten(0, (b, v))
        return out


class LabelledViews(Dataset):
    """One item = every view of one labelled video (`layout`: temporal clips x spatial crops, plus the
    centre clip when the layout asks for it), all read with one decode of the video.

    Views leave as uint8 crops (V, T, C, H, W) and are normalised where they are used, on the device
    (`normalize`, as pre-training's `augment_on = "device"`): cropping before the float conversion makes
    the loader's work 4x smaller in bytes and several times faster, and crops and per-pixel
    normalisation commute, so the numbers are the same bit for bit (`uint8=False` gives float views
    (V, C, T, H, W) normalised here, for that comparison)."""

    def __init__(self, videos: VideoSet, clip: ClipConfig, layout: sampling.ViewLayout, label_keys: list[str],
                 audio: tuple[int, int] | None = None, uint8: bool = True):
        self.videos, self.clip, self.layout, self.label_keys = videos, clip, layout, label_keys
        self.normalize = Normalize(clip.mean, clip.std)
        self.audio = audio  # (rate, samples): the views are the audio under each clip instead of its frames
        self.uint8 = uint8

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict:
        n = self.videos.num_frames(i)
        c, lay = self.clip, self.layout
        if self.audio is not None:
            return self._audio_views(i, lay.starts(n, c.frames, c.stride))
        per_view = lay.frame_indices(n, c.frames, c.stride)
        idx = np.concatenate(per_view)
        try:
            frames = self.videos.frames(i, idx)
        except VideoDecodeError as e:
            return {"bad": str(self.videos.path(i)), "error": str(e)}
        # resize all clips' frames in one call (it acts per frame), then crop; uint8 until the device
        video = resize_short_side(to_video(frames), c.test_short_side)
        clips = video.unflatten(0, (len(per_view), c.frames))  # (clips, T, C, H, W) uint8
        if not self.uint8:
            clips = self.normalize(clips)  # (clips, C, T, H, W) float
        views = []
        for t in range(len(per_view)):
            crops = lay.spatial if t < lay.temporal else 1  # the extra centre clip: centre crop only
            views.extend(spatial_crops(clips[t], c.test_short_side, crops))
        labels = self.videos.entries[i].get("labels", {})
        return {"views": torch.stack(views), "labels": {k: labels[k] for k in self.label_keys}, "index": i}

    def _audio_views(self, i: int, starts: list[int]) -> dict:
        """The audio under each clip, in the layout's view order (a clip's crops share its audio)."""
        rate, samples = self.audio
        try:
            wave = self.videos.audio(i, rate)
        except VideoDecodeError as e:
            return {"bad": str(self.videos.path(i)), "error": str(e)}
        if wave is None:
            return {"bad": str(self.videos.path(i)), "error": f"{self.videos.path(i)}: no audio stream"}
        fps, c, lay = self.videos.rate(i), self.clip, self.layout
        cuts = [torch.from_numpy(streams.audio_cut(wave, rate, streams.clip_seconds(s, c.frames, c.stride, fps)[0],
                                                   samples)) for s in starts]
        views = [cuts[t] for t in range(len(starts)) for _ in range(lay.spatial if t < lay.temporal else 1)]
        labels = self.videos.entries[i].get("labels", {})
        return {"views": torch.stack(views), "labels": {k: labels[k] for k in self.label_keys}, "index": i}


def collate(items: list[dict]) -> dict:
    """Stack good items; pass the unreadable ones on as `bad` so the caller can count them."""
    good = [x for x in items if "bad" not in x]
    out: dict = {"bad": [(x["bad"], x["error"]) for x in items if "bad" in x]}
    if not good:
        return out
    out["index"] = torch.tensor([x["index"] for x in good])
    if "label" in good[0]:
        out["label"] = torch.tensor([x["label"] for x in good])
    for key in ("clips", "views", "colour", "audio"):
        if key in good[0]:
            out[key] = torch.stack([x[key] for x in good])
    if "audio_valid" in good[0]:
        out["audio_valid"] = torch.tensor([x["audio_valid"] for x in good])
    if "labels" in good[0]:
        out["labels"] = {k: torch.tensor([x["labels"][k] for x in good]) for k in good[0]["labels"]}
    return out


def tokenize_captions(captions: list[list[list[str | None]]], tokenizer) -> dict:
    """(B videos x V clips x K captions, None for a missing one) -> `text_ids`, `text_mask` (B, V, K, L)
    and `text_valid` (B, V, K)."""
    b, v, k = len(captions), len(captions[0]), len(captions[0][0])
    flat = [t for per_video in captions for per_clip in per_video for t in per_clip]
    ids, mask = tokenizer.encode([t or "" for t in flat])
    valid = torch.tensor([t is not None for t in flat])
    return {"text_ids": ids.view(b, v, k, -1), "text_mask": mask.view(b, v, k, -1), "text_valid": valid.view(b, v, k)}
