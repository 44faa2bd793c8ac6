"""What a sample holds besides its video clips, cut to each clip's time span: the audio under the clip
and the captions (narrations) nearest it. The times come from the clip's frame indices at the rate the
video is read at, so a clip and its audio and text cover the same seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STREAMS = ("video", "audio", "text")


@dataclass(frozen=True)
class Narration:
    """A caption and the seconds of the video it describes."""

    start: float
    end: float
    text: str


def narrations(entry: dict, rate: float) -> list[Narration]:
    """The captions of a manifest entry with their times. An entry may list `narrations` ([start, end,
    text] in seconds, as HowTo100M's ASR files give them); the embedded data's pre-training videos join
    one sentence per segment with " then " (each `segment_frames` long); any other `caption` covers the
    whole video. None: []."""
    if "narrations" in entry:
        return [Narration(float(a), float(b), str(t)) for a, b, t in entry["narrations"]]
    text = entry.get("caption")
    if not text:
        return []
    duration = int(entry["frames"]) / rate
    seg = entry.get("segment_frames")
    parts = text.rstrip(".").split(" then ") if seg else [text]
    if seg and len(parts) == len(entry.get("segments", ())):
        step = int(seg) / rate
        return [Narration(k * step, (k + 1) * step, p + ".") for k, p in enumerate(parts)]
    return [Narration(0.0, duration, text)]


def whole_caption(entry: dict, rate: float) -> list[Narration]:
    """The video's captions joined into one that covers the whole video (ClipBERT pairs a caption with a
    whole video); [] when it has none."""
    text = entry.get("caption") or " ".join(n.text for n in narrations(entry, rate))
    return [Narration(0.0, int(entry["frames"]) / rate, text)] if text else []


def nearest_narrations(items: list[Narration], start: float, end: float, count: int) -> list[str | None]:
    """The `count` captions nearest the clip [start, end) in time, nearest first (the one the clip's middle
    falls in leads; VATT's MIL-NCE positives: the clip's narration and its neighbours). Fewer captions
    than `count` leave None slots, which the loss masks."""
    mid = (start + end) / 2

    def distance(n: Narration) -> float:
        return 0.0 if n.start <= mid < n.end else min(abs(mid - n.start), abs(mid - n.end))

    order = sorted(range(len(items)), key=lambda k: (distance(items[k]), k))[:count]
    return [items[k].text for k in order] + [None] * (count - len(order))


def clip_seconds(first_frame: int, frames: int, stride: int, rate: float) -> tuple[float, float]:
    """The seconds a clip shows: from its first frame's time to the end of its last frame."""
    start = first_frame / rate
    return start, start + ((frames - 1) * stride + 1) / rate


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`wave` at `target` Hz (scipy's polyphase filter; no change when the rates agree)."""
    if target == rate or target <= 0:
        return wave
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(rate), int(target))
    return resample_poly(wave, int(target) // g, int(rate) // g).astype(np.float32)


def audio_cut(wave: np.ndarray, rate: int, start: float, samples: int) -> np.ndarray:
    """`samples` samples of `wave` from `start` seconds, zeros past its end (float32)."""
    first = int(round(start * rate))
    out = np.zeros(samples, np.float32)
    part = wave[max(first, 0):max(first, 0) + samples]
    out[:len(part)] = part
    return out
