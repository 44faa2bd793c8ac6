"""Config schemas of the backbones, with no torch import (the encoders are in `harness.models`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.config.sections import fields_at_least
from harness.errors import ConfigError


@dataclass
class Small3DConfig:
    """Width of the first stage; stages double it (w, 2w, 4w, 8w); features are 8w-dimensional.

    `zero_init_residual` starts the residual block's last BN at gamma 0, so the block begins as an
    identity (Goyal et al. 2017; pySlowFast's ZERO_INIT_FINAL_BN, which its supervised configs turn
    on and the released ρ pre-training configs leave off). It made ρBYOL's embedded-profile result
    much less seed-dependent (docs/tuning.md); it applies to small3d only.
    """

    width: int = 16
    zero_init_residual: bool = True

    def validate(self) -> None:
        if self.width < 1:
            raise ConfigError(f"backbones.small3d.width: must be >= 1, got {self.width}")


@dataclass
class NoOptions:
    """This backbone has no options of its own."""


@dataclass
class SlowR50Config:
    """`zero_init_residual`: pytorchvideo's builder starts the last BN of every bottleneck at gamma 0;
    the released ρ pre-training configs do not (PySlowFast's ZERO_INIT_FINAL_BN is off), so the
    default is off. Turn it on to get the builder's initialisation (PySlowFast's supervised and AVA
    configs use it)."""

    zero_init_residual: bool = False


# VIMPAC's transformer sizes (Tan et al. 2021, table 3): layers, width, heads, head width, MLP width.
# `tiny` is this harness's CPU size.
VIMPAC_SIZES = {"tiny": (4, 128, 4, 32, 256), "small": (6, 512, 8, 64, 2048), "base": (12, 768, 12, 64, 3072),
                "large-half": (24, 1024, 16, 32, 2048)}
VIMPAC_LAYOUTS = ("T,H|W", "TxHxW", "T,HxW", "T,H,W")


@dataclass
class VimpacNetConfig:
    """VIMPAC's encoder: a frozen per-frame tokenizer, then a transformer over the (T, h, w) token grid.

    `size` picks a row of VIMPAC_SIZES; `layers`, `dim`, `heads`, `head_dim` and `mlp` override it when
    non-zero. `layout` is the paper's attention ablation: T,H|W (temporal, then height and width in
    parallel on half the heads each; the paper's choice), TxHxW (full), T,HxW, T,H,W. `norm = "pre"` is
    the pre-LN variant the paper found worse.

    Tokenizer: `tokenizer = "vqvae"` trains a per-frame VQ-VAE on the pre-training videos (codebook
    `codebook`, downsampling `downsample` = 2^k, `vq_*` its schedule; trained once per setting and data,
    cached; `vq_input = "luma-norm"` codes each frame's standardised luma instead of its colours), or
    `dvae_path` names the `encoder.pkl` of OpenAI's `dall-e` package (8192 codes, ÷8), which
    VIMPAC uses and which cannot be downloaded here.
    """

    size: str = "tiny"
    layers: int = 0
    dim: int = 0
    heads: int = 0
    head_dim: int = 0
    mlp: int = 0
    layout: str = "T,H|W"
    norm: str = "post"
    dropout: float = 0.0  # the paper: 0.1; on two CPU cores its random draws took a fifth of each step
    dvae_path: str = ""
    # moving-digits redraws every colour per segment: codes of RGB frames (512 of them) named colours, a CNN on
    # them learnt its training clips by heart (99.9% train, 13.2% test on digits) and VIMPAC scored at chance;
    # 32 codes of the standardised luma kept more of the digit (17.2%): docs/results.md, VIMPAC
    codebook: int = 32
    downsample: int = 4
    vq_width: int = 32
    vq_dim: int = 32
    vq_frames: int = 16384
    vq_steps: int = 1000
    vq_batch: int = 128
    vq_lr: float = 2e-3
    vq_seed: int = 0  # one tokenizer for every seed of the transformer, as the paper's one dVAE
    vq_input: str = "luma-norm"

    def shape(self) -> tuple[int, int, int, int, int]:
        """(layers, dim, heads, head_dim, mlp) after the overrides."""
        base = VIMPAC_SIZES[self.size]
        return tuple(v or b for v, b in zip((self.layers, self.dim, self.heads, self.head_dim, self.mlp), base))

    def validate(self) -> None:
        if self.size not in VIMPAC_SIZES:
            raise ConfigError(f"backbones.vimpac.size: one of {', '.join(VIMPAC_SIZES)}, got {self.size!r}")
        if self.layout not in VIMPAC_LAYOUTS:
            raise ConfigError(f"backbones.vimpac.layout: one of {', '.join(VIMPAC_LAYOUTS)}, got {self.layout!r}")
        if self.norm not in ("post", "pre"):
            raise ConfigError(f"backbones.vimpac.norm: 'post' or 'pre', got {self.norm!r}")
        fields_at_least("backbones.vimpac", self, ("layers", "dim", "heads", "head_dim", "mlp"), 0)  # 0: the size's
        heads = self.shape()[2]
        if self.layout == "T,H|W" and heads % 2:
            raise ConfigError(f"backbones.vimpac: layout T,H|W splits the heads between H and W; {heads} heads is odd")
        fields_at_least("backbones.vimpac", self, ("codebook", "vq_width", "vq_dim", "vq_frames", "vq_steps", "vq_batch"), 1)
        fields_at_least("backbones.vimpac", self, ("vq_lr",), 0, strict=True)
        if self.vq_input not in ("rgb", "luma-norm"):
            raise ConfigError(f"backbones.vimpac.vq_input: 'rgb' or 'luma-norm', got {self.vq_input!r}")
        d = self.downsample
        if d < 1 or d & (d - 1):
            raise ConfigError(f"backbones.vimpac.downsample: a power of two, got {d}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"backbones.vimpac.dropout: need 0 <= value < 1, got {self.dropout}")
        if self.dvae_path:
            from pathlib import Path

            if not Path(self.dvae_path).expanduser().is_file():
                raise ConfigError(f"backbones.vimpac.dvae_path: {self.dvae_path} is not a file")


VATT_SIZES = ("tiny", "small", "base", "medium", "large")  # VATT's table 7 and a CPU size (harness.models.vatt.SIZES)


@dataclass
class VattNetConfig:
    """VATT's video transformer: tokens of `patch` tubelets (frames, height, width; the paper's 4x16x16), made
    by `stem`, with factorised learned positions, an [AGG] token, pre-LN blocks of `size` (tiny, or the
    paper's small, base, medium, large), `dropout` inside the blocks (the paper's 0.1)."""

    named_when_set: ClassVar[tuple[str, ...]] = ("stem",)
    unnamed: ClassVar[dict[str, str]] = {"stem": "tubelet"}  # the stem of every encoder keyed before the option

    size: str = "tiny"
    patch: tuple[int, int, int] = (2, 8, 8)  # of 8x16x16 clips: 4x2x2 = 16 tokens (the paper: 4x16x16 of 32x224x224)
    dropout: float = 0.1
    # "tubelet": the paper's linear projection of each patch (one strided Conv3d); "conv": a convolutional
    # stem (3x3 convolutions per frame, stride 2 each, then the temporal patch), which Xiao et al. 2021
    # ("Early convolutions help transformers see better") found to make ViTs train more easily; "hybrid": a
    # small 3-D CNN with a residual block makes the tokens (the ViT paper's hybrid), the one of the three that
    # learns digits from 1,024 videos (docs/tuning.md)
    stem: str = "hybrid"  # the `paper` profile: "tubelet"

    def validate(self) -> None:
        if self.size not in VATT_SIZES:
            raise ConfigError(f"backbones.vatt.size: one of {', '.join(VATT_SIZES)}, got {self.size!r}")
        if len(self.patch) != 3 or min(self.patch) < 1:
            raise ConfigError(f"backbones.vatt.patch: three positive sizes (frames, height, width), got {self.patch}")
        self.patch = tuple(int(p) for p in self.patch)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"backbones.vatt.dropout: need 0 <= value < 1, got {self.dropout}")
        if self.stem not in ("tubelet", "conv", "hybrid"):
            raise ConfigError(f"backbones.vatt.stem: 'tubelet', 'conv' or 'hybrid', got {self.stem!r}")
        h, w = self.patch[1:]
        if self.stem != "tubelet" and (h != w or h < 2 or h & (h - 1)):
            raise ConfigError(f"backbones.vatt.stem = {self.stem!r} halves the frame per convolution: the patch's "
                              f"height and width must be one power of two >= 2, got {self.patch}")


CLIPBERT_SIZES = {"tiny": (4, 128, 4, 512), "base": (12, 768, 12, 3072)}  # layers, width, heads, MLP (BERT-base)


@dataclass
class ClipBertNetConfig:
    """ClipBERT's encoder: a torchvision ResNet (`cnn`) on every frame, cut after `cnn_stages` of its four
    stages (4: stride 32, the paper's; fewer for small frames), a 3x3 conv to the transformer width and a
    `pool` x `pool` max-pool; the frames of a clip mean-pooled; row and column embeddings; then a BERT
    (`size`, or the local pretrained folder `bert_path`) over the text and visual tokens together, with
    `vocab_size` word rows. `cnn_weights` loads a state dict into the ResNet (the paper starts from
    grid-feat R-50 weights, which cannot be downloaded here)."""

    # at CPU size: ResNet-18 cut after its second stage (stride 8: a 4x4 grid of the 32-px frames; the paper's
    # ResNet-50 at stride 32 would leave one cell), no max-pool, a 4-layer BERT (the paper: resnet50, 4 stages,
    # pool 2, BERT-base with BERT's 30,522 word pieces)
    cnn: str = "resnet18"
    cnn_stages: int = 2
    cnn_weights: str = ""
    pool: int = 1
    size: str = "tiny"
    bert_path: str = ""
    vocab_size: int = 256
    dropout: float = 0.1
    # what `features` returns: "cls", ClipBERT's pooled [CLS] over the visual tokens and an empty caption; "cnn",
    # the ResNet's output averaged over frames and grid, as an image classifier reads its trunk. A `supervised`
    # run with "cnn" trains the CNN alone: the stand-in for the image-level pre-training (ImageNet, grid-feat)
    # that ClipBERT's CNN starts from. Taught the label through BERT ("cls") the CNN does not learn the digit here
    # (docs/tuning.md).
    readout: str = "cls"
    named_when_set: ClassVar[tuple[str, ...]] = ("readout",)  # added later: encoders cached before keep their keys

    def validate(self) -> None:
        if self.readout not in ("cls", "cnn"):
            raise ConfigError(f"backbones.clipbert.readout: cls or cnn, got {self.readout!r}")
        if self.cnn not in ("resnet18", "resnet34", "resnet50"):
            raise ConfigError(f"backbones.clipbert.cnn: resnet18, resnet34 or resnet50, got {self.cnn!r}")
        if self.size not in CLIPBERT_SIZES:
            raise ConfigError(f"backbones.clipbert.size: one of {', '.join(CLIPBERT_SIZES)}, got {self.size!r}")
        if not 1 <= self.cnn_stages <= 4:
            raise ConfigError(f"backbones.clipbert.cnn_stages: 1 to 4, got {self.cnn_stages}")
        fields_at_least("backbones.clipbert", self, ("pool", "vocab_size"), 1)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"backbones.clipbert.dropout: need 0 <= value < 1, got {self.dropout}")
        from pathlib import Path

        for key in ("cnn_weights", "bert_path"):
            value = getattr(self, key)
            if value and not Path(value).expanduser().exists():
                raise ConfigError(f"backbones.clipbert.{key}: {value} does not exist")
