"""Clip transforms: torchvision.transforms.v2 kernels per clip for geometry, batched tensor ops for colour.

A clip is (T, C, H, W). Every random parameter is drawn once per clip, from the sample's numpy
generator, so all frames of a clip share one crop, flip and colour draw and each clip has its
own. Geometry runs per clip (`ClipGeometry`); colour jitter, grayscale and blur are applied to a
whole batch at once (`ColourAugment`).
Output clips are float (C, T, H, W), normalised with the encoder's mean/std.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from harness.config.sections import AugmentConfig, ClipConfig


def to_video(frames) -> tv_tensors.Video:
    """uint8 (T, H, W, 3) numpy/tensor -> tv_tensors.Video (T, 3, H, W)."""
    t = torch.as_tensor(frames)
    return tv_tensors.Video(t.permute(0, 3, 1, 2).contiguous())


class Normalize:
    """(..., T, C, H, W) uint8, or float on the 0-1 scale -> float (..., C, T, H, W) with per-channel mean/std."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(3, 1, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1, 1)

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        x = video.float().div_(255) if video.dtype == torch.uint8 else video
        return (x.transpose(-4, -3) - self.mean.to(x.device)) / self.std.to(x.device)


class ClipGeometry:
    """Random resized crop and horizontal flip, one draw per clip applied to all its frames.

    The crop follows v2.RandomResizedCrop (area fraction uniform in `crop_scale`, log-uniform aspect
    ratio, ten tries, then a centre crop of the clamped ratio) but takes its randomness from the
    sample's numpy generator: seeding torch's global RNG per sample and going through v2's
    dispatch cost about 1 ms per clip, a third of a 16-px CPU pre-training step.
    """

    def __init__(self, aug: AugmentConfig, clip: ClipConfig):
        self.size = clip.crop_size
        self.scale, self.ratio, self.flip_p = tuple(aug.crop_scale), tuple(aug.crop_ratio), aug.flip_p
        self.log_ratio = tuple(float(x) for x in np.log(self.ratio))
        self.mode, self.jitter_scales = aug.crop_mode, tuple(aug.jitter_scales)

    def draw(self, rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int, bool]:
        """(top, left, height, width, flip) for an h x w frame."""
        return (*self._crop(rng, h, w), bool(rng.random() < self.flip_p))

    def _crop(self, rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int]:
        if self.mode == "scale":  # VGG: short side to s ~ U(jitter_scales), then a crop_size square
            s = int(round(rng.uniform(*self.jitter_scales)))  # PySlowFast's random_short_side_scale_jitter
            side = min(int(round(self.size * min(h, w) / max(s, 1))), h, w)  # the square in frame pixels
            return int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side, side
        area = h * w
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            r = float(np.exp(rng.uniform(*self.log_ratio)))
            cw, ch = int(round(np.sqrt(target * r))), int(round(np.sqrt(target / r)))
            if 0 < cw <= w and 0 < ch <= h:
                return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
        r = w / h  # fallback, as torchvision: the largest centre crop within the ratio range
        if r < min(self.ratio):
            cw, ch = w, int(round(w / min(self.ratio)))
        elif r > max(self.ratio):
            ch, cw = h, int(round(h * max(self.ratio)))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, video: torch.Tensor, params: tuple[int, int, int, int, bool]) -> torch.Tensor:
        """(T, C, H, W) -> (T, C, size, size) with the crop and flip of `params`."""
        top, left, ch, cw, flip = params
        out = v2.functional.resized_crop(video, top, left, ch, cw, [self.size, self.size], antialias=True)
        return out.flip(-1) if flip else out


# Layout of one clip's 10 colour parameters: jitter factors, the order the four jitter ops run in,
# grayscale flag, blur sigma (0: no blur). Identity values when an op is not drawn.
_B, _C, _S, _H, _ORDER, _GRAY, _SIGMA = 0, 1, 2, 3, slice(4, 8), 8, 9
_LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 1, H, W) luma."""
    r, g, b = x.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def _per_clip(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1, 1)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (ratio * a + (1 - ratio) * b).clamp_(0, 1)


def _adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `shift` (fraction of a turn) per clip, through HSV as torchvision does."""
    r, g, b = x.unbind(-3)
    maxc, imax = x.max(-3)
    delta = maxc - x.min(-3).values  # = value * saturation
    inv = 1.0 / torch.where(delta > 0, delta, 1.0)
    num = torch.where(imax == 0, g - b, torch.where(imax == 1, b - r, r - g))  # signed, in the max's sector
    h = (num * inv + imax * 2.0) / 6 + shift.view(-1, 1, 1, 1)
    h6 = (h - h.floor()) * 6
    out = torch.empty_like(x)
    for c, n in enumerate((5.0, 3.0, 1.0)):  # hsv -> rgb: v - v*s*clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6
        k = h6 + n
        k = torch.where(k >= 6, k - 6, k)
        out[..., c, :, :] = maxc - delta * torch.minimum(k, 4 - k).clamp_(0, 1)
    return out


def _blur(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per clip (reflect padding, as torchvision)."""
    n, t, c, h, w = x.shape
    half = (k - 1) / 2
    grid = torch.linspace(-half, half, k, dtype=x.dtype, device=x.device)
    ker = torch.exp(-0.5 * (grid / sigma.view(-1, 1)) ** 2)
    ker = (ker / ker.sum(1, keepdim=True)).repeat_interleave(t * c, 0)  # (n*t*c, k)
    y = x.reshape(1, n * t * c, h, w)
    p = k // 2
    y = F.conv2d(F.pad(y, (p, p, 0, 0), mode="reflect"), ker.view(-1, 1, 1, k), groups=n * t * c)
    y = F.conv2d(F.pad(y, (0, 0, p, p), mode="reflect"), ker.view(-1, 1, k, 1), groups=n * t * c)
    return y.view(n, t, c, h, w)


class ColourAugment:
    """Colour jitter, grayscale and blur for a whole batch of clips at once, one draw per clip.

    torchvision's v2 transforms draw one set of parameters per call, so running them clip by clip
    cost 2-3 ms per 8-frame clip on a CPU core (hue alone half of that): about 40% of a CPU
    pre-training step. Here each clip's parameters are drawn in the dataset (`draw`, keyed by the
    sample seed like everything else) and applied to the batch in a few tensor ops (`__call__`).
    The distributions follow v2.ColorJitter / RandomGrayscale / GaussianBlur.
    """

    def __init__(self, aug: AugmentConfig, clip: ClipConfig):
        self.aug = aug
        self.kernel = max(3, (clip.crop_size // 10) | 1)  # odd kernel about a tenth of the crop, as SimCLR

    def draw(self, rng: np.random.Generator) -> torch.Tensor:
        """One clip's parameters, drawn from the sample's generator."""
        a = self.aug
        p = [1.0, 1.0, 1.0, 0.0, 0, 1, 2, 3, 0.0, 0.0]
        if rng.random() < a.jitter_p:
            for i, f in zip((_B, _C, _S), a.jitter[:3]):
                p[i] = rng.uniform(max(0.0, 1 - f), 1 + f)
            p[_H] = rng.uniform(-a.jitter[3], a.jitter[3])
            p[_ORDER] = rng.permutation(4).tolist()
        if rng.random() < a.grayscale_p:
            p[_GRAY] = 1.0
        if rng.random() < a.blur_p:
            p[_SIGMA] = rng.uniform(*a.blur_sigma)
        return torch.tensor(p, dtype=torch.float32)

    def __call__(self, clips: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """uint8 (N, T, 3, H, W) and (N, 10) parameters from `draw` -> float (N, T, 3, H, W) in [0, 1]."""
        x = clips.float().div_(255)
        ops = (
            lambda y, q: (y * _per_clip(q[:, _B])).clamp_(0, 1),
            lambda y, q: _blend(y, _gray(y).mean((-3, -2, -1), keepdim=True), _per_clip(q[:, _C])),
            lambda y, q: _blend(y, _gray(y), _per_clip(q[:, _S])),
            lambda y, q: _adjust_hue(y, q[:, _H]),
        )
        order = params[:, _ORDER].long()
        jittered = (params[:, :_H] != 1).any(1) | (params[:, _H] != 0)
        for pos in range(4):  # each clip runs the four ops in its own order, as v2.ColorJitter
            for k, op in enumerate(ops):
                sel = (jittered & (order[:, pos] == k)).nonzero().flatten()
                if len(sel):
                    x[sel] = op(x[sel], params[sel])
        gray = params[:, _GRAY] > 0
        if gray.any():
            x[gray] = _gray(x[gray]).expand(-1, -1, 3, -1, -1)
        blur = (params[:, _SIGMA] > 0).nonzero().flatten()
        if len(blur):
            x[blur] = _blur(x[blur], params[blur, _SIGMA], self.kernel)
        return x


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
