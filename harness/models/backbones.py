"""Encoders: clips (B, C, T, H, W) -> features (B, D), each declaring `feature_dim` and its `ClipSpec`.

`small3d` is a light 3D CNN for the CPU profiles; `r3d_18`, `r2plus1d_18` come from torchvision's
builders and `slow_r50` from pytorchvideo's (the paper's Slow-only R-50, 8x8 at 224). All are
built untrained: weights from a path are loaded by the caller (`harness.models.encoder.load_encoder_weights`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from harness.models.configs import NoOptions, SlowR50Config, Small3DConfig
from harness.models.encoder import ClipSpec, Encoder

# ----------------------------------------------------------------------------- small3d


def _conv_bn(cin: int, cout: int, k, s, p) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, k, s, p, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c, c, 3, 1, 1), nn.Conv3d(c, c, 3, 1, 1, bias=False), nn.BatchNorm3d(c))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class Small3D(Encoder):
    """A 3D CNN sized for two CPU cores: a 2D stem, then 3x3x3 stages; time is halved once."""

    def __init__(self, cfg: Small3DConfig, clip: ClipSpec):
        super().__init__()
        w = cfg.width
        res = _Res(4 * w)
        self.trunk = nn.Sequential(
            _conv_bn(3, w, (1, 5, 5), (1, 2, 2), (0, 2, 2)),
            _conv_bn(w, 2 * w, 3, (1, 2, 2), 1),
            _conv_bn(2 * w, 4 * w, 3, (2, 2, 2), 1),
            res,
            _conv_bn(4 * w, 8 * w, 3, (1, 2, 2), 1),
        )
        self.feature_dim = 8 * w
        self.clip_spec = clip
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if cfg.zero_init_residual:
            nn.init.zeros_(res.body[-1].weight)


# ----------------------------------------------------------------------------- torchvision


class _TorchvisionVideoResNet(Encoder):
    builder = ""

    def __init__(self, cfg: NoOptions, clip: ClipSpec):
        super().__init__()
        from torchvision.models import video as tvv

        net = getattr(tvv, self.builder)(weights=None)
        self.feature_dim = net.fc.in_features
        net.fc = nn.Identity()  # torchvision's forward pools and flattens to (B, 512)
        self.trunk = net
        self.clip_spec = clip


class R3D18(_TorchvisionVideoResNet):
    """torchvision's 3D ResNet-18 (512-d)."""

    builder = "r3d_18"


class R2Plus1D18(_TorchvisionVideoResNet):
    """torchvision's R(2+1)D-18 (512-d)."""

    builder = "r2plus1d_18"


# ----------------------------------------------------------------------------- pytorchvideo


class SlowR50(Encoder):
    """pytorchvideo's Slow-only ResNet-50 as in the ρ study (temporal kernels 1,1,3,3; 2048-d pool5)."""

    def __init__(self, cfg: SlowR50Config, clip: ClipSpec):
        super().__init__()
        from pytorchvideo.models.resnet import create_resnet

        net = create_resnet(
            input_channel=3, model_depth=50, norm=nn.BatchNorm3d, activation=nn.ReLU,
            stem_conv_kernel_size=(1, 7, 7), stem_pool=nn.MaxPool3d,
            stage_conv_a_kernel_size=((1, 1, 1), (1, 1, 1), (3, 1, 1), (3, 1, 1)),
            head=None,
        )
        if not cfg.zero_init_residual:  # the builder zeroes each bottleneck's last BN; the ρ configs do not
            for m in net.modules():
                if getattr(m, "block_final_bn", False):
                    nn.init.ones_(m.weight)
        self.trunk = net  # blocks up to res5; Encoder.features pools globally (any T, H, W)
        self.feature_dim = 2048
        self.clip_spec = clip
