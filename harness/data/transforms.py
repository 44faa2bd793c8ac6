"""Clip transforms on uint8 tensors with torchvision.transforms.v2.

A clip is a `tv_tensors.Video` of shape (T, C, H, W); v2 draws random parameters once per call,
so every frame of a clip gets the same crop, flip and colour change, and each clip its own.
Output clips are float (C, T, H, W), normalised with the encoder's mean/std.
"""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from harness.config import AugmentConfig, ClipConfig


def to_video(frames) -> tv_tensors.Video:
    """uint8 (T, H, W, 3) numpy/tensor -> tv_tensors.Video (T, 3, H, W)."""
    t = torch.as_tensor(frames)
    return tv_tensors.Video(t.permute(0, 3, 1, 2).contiguous())


class Normalize:
    """uint8 (T, C, H, W) -> float (C, T, H, W) with per-channel mean/std (values on the 0-1 scale)."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(3, 1, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1, 1)

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        x = video.permute(1, 0, 2, 3).float().div_(255)
        return (x - self.mean) / self.std


def pretrain_augment(aug: AugmentConfig, clip: ClipConfig) -> v2.Compose:
    """The ρ-methods' per-clip augmentation: random resized crop, flip, colour jitter, grayscale, blur."""
    b, c, s, h = aug.jitter
    k = max(3, (clip.crop_size // 10) | 1)  # odd kernel about a tenth of the crop, as in SimCLR
    return v2.Compose([
        v2.RandomResizedCrop(clip.crop_size, scale=tuple(aug.crop_scale), ratio=tuple(aug.crop_ratio), antialias=True),
        v2.RandomHorizontalFlip(aug.flip_p),
        v2.RandomApply([v2.ColorJitter(b, c, s, h)], p=aug.jitter_p),
        v2.RandomGrayscale(aug.grayscale_p),
        v2.RandomApply([v2.GaussianBlur(k, sigma=tuple(aug.blur_sigma))], p=aug.blur_p),
    ])


def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the short side is `size` (no-op when it already is)."""
    h, w = video.shape[-2:]
    if min(h, w) == size:
        return video
    return v2.functional.resize(video, [size], antialias=True)


def spatial_crops(video: torch.Tensor, size: int, count: int) -> list[torch.Tensor]:
    """1 centre crop, or 3 crops along the long side (left/centre/right or top/centre/bottom)."""
    h, w = video.shape[-2:]
    if count == 1:
        return [v2.functional.center_crop(video, [size, size])]
    if count != 3:
        raise ValueError(f"spatial views must be 1 or 3, got {count}")
    crops = []
    for pos in (0.0, 0.5, 1.0):
        top = int(round((h - size) * pos)) if h > w else (h - size) // 2
        left = int(round((w - size) * pos)) if w >= h else (w - size) // 2
        crops.append(video[..., top:top + size, left:left + size])
    return crops
