"""Config schemas of the methods: one dataclass per method, typed and validated, with no torch import.

They live apart from the method modules so that `bench config show` and config validation stay
instant: a method module builds networks and imports torch, its settings do not need to. The
defaults are the paper's values (Feichtenhofer et al. 2021, appendix B.1); every switch that selects
the released code's behaviour instead is listed in docs/methods.md with its source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

from harness import storage
from harness.config import fields_at_least
from harness.errors import ConfigError


def _probabilities(section: str, cfg, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(cfg, name)
        if not 0 <= v < 1:
            raise ConfigError(f"methods.{section}.{name}: need 0 <= value < 1, got {v}")


@dataclass
class RandomInitConfig:
    """No options: the encoder's own initialisation under the run's seed."""

    pretrains: ClassVar[bool] = False  # the encoder is scored as initialised


@dataclass
class PretrainedConfig:
    """A released checkpoint to score: its file and layout (auto: recognised from its keys)."""

    pretrains: ClassVar[bool] = False

    path: str = ""
    format: Literal["auto", "slowfast", "pytorchvideo", "harness"] = "auto"

    def validate(self) -> None:
        if not self.path:
            raise ConfigError("methods.pretrained.path: name the checkpoint file to score "
                              "(--set methods.pretrained.path=/path/to/SLOW_8x8_R50.pyth)")
        if not Path(self.path).expanduser().is_file():
            raise ConfigError(f"methods.pretrained.path: {self.path} is not a file")

    def identity(self) -> dict:
        """What names the encoder: the file's content (sha256), not where it lies."""
        return {"sha256": file_sha256(str(Path(self.path).expanduser().resolve())), "format": self.format}


@lru_cache(maxsize=8)
def file_sha256(path: str) -> str:
    """The file's sha256, shortened to the 16 hex digits an identity shows (read once per path)."""
    return storage.file_sha256(path)[:16]


@dataclass
class _Projected:
    """Fields every ρ method has: clips per video and the projection MLP (SlowFast's MLPHead)."""

    rho: int = 2
    proj_layers: int = 2  # the paper: 3 layers of 2048
    proj_hidden: int = 512
    proj_dim: int = 128
    proj_bn: bool = True

    def _check_common(self, section: str) -> None:
        fields_at_least(f"methods.{section}", self, ("rho", "proj_layers", "proj_hidden", "proj_dim"), 1)


@dataclass
class RhoByolConfig:
    """ρBYOL. Paper: projector 2048-4096-256 and predictor 256-4096-256, both with BN; m_base 0.996.

    `pred_lr_scale` multiplies the predictor's LR (1 = the paper). A predictor that adapts faster
    than the encoder speeds up BYOL's bootstrapping (DirectPred, Tian et al. 2021; SimSiam keeps
    its predictor LR fixed for the same reason), which matters on schedules of a few thousand steps.
    """

    named_when_set: ClassVar[tuple[str, ...]] = ("reduction",)

    rho: int = 4  # the paper's best (K400 linear 68.9 vs 65.8 at rho = 2)
    proj_hidden: int = 512  # the paper: 4096, 256, 4096 and 0.996
    proj_dim: int = 128
    pred_hidden: int = 512
    momentum: float = 0.99
    pred_lr_scale: float = 10.0  # a faster predictor: ρBYOL barely learnt within the demo's budget without it
    # "mean": the paper's average of the ρ sub-losses; "sum": their sum, as the released code takes one
    # backward pass per query clip (PySlowFast contrastive_forward): a ρx larger step under SGD
    reduction: Literal["mean", "sum"] = "mean"

    def validate(self) -> None:
        fields_at_least("methods.rho_byol", self, ("rho", "proj_hidden", "proj_dim", "pred_hidden"), 1)
        fields_at_least("methods.rho_byol", self, ("pred_lr_scale",), 0, strict=True)
        _probabilities("rho_byol", self, ("momentum",))


@dataclass
class RhoSimclrConfig(_Projected):
    """ρSimCLR. Paper: 3-layer MLP 2048-2048-2048-128 with BN, InfoNCE at τ = 0.1 over all clip pairs.

    `proj_bn = false` is the released config (BN_MLP is never set). `pairs = "chain"` is the released
    code's ρ > 2 behaviour: only the ρ-1 pairs (clip k, clip k+1), each an NT-Xent of two clips.
    """

    temperature: float = 0.1
    pairs: Literal["all", "chain"] = "all"

    def validate(self) -> None:
        self._check_common("rho_simclr")
        fields_at_least("methods.rho_simclr", self, ("temperature",), 0, strict=True)


@dataclass
class RhoMocoConfig(_Projected):
    """ρMoCo. Paper: 3-layer MLP without BN, τ = 0.1, a 65,536-key queue, m_base 0.994 annealed to 1.

    `queue_warmup = true` is the released code's start: no parameter update for the first
    queue_size / batch steps, while the queue fills with keys. `shuffle_bn` shuffles the key
    encoder's batch across processes (MoCo's shuffle-BN); with one process it changes nothing.
    """

    named_when_set: ClassVar[tuple[str, ...]] = ("reduction",)

    proj_bn: bool = False
    temperature: float = 0.1
    momentum: float = 0.99  # the paper: 0.994 and 65,536 keys
    queue_size: int = 4096  # 32 steps of 32 videos x 2 clips: about one epoch of the 1,024 embedded videos
    queue_warmup: bool = False
    shuffle_bn: bool = True
    reduction: Literal["mean", "sum"] = "mean"  # as ρBYOL's

    def validate(self) -> None:
        self._check_common("rho_moco")
        fields_at_least("methods.rho_moco", self, ("queue_size",), 1)
        fields_at_least("methods.rho_moco", self, ("temperature",), 0, strict=True)
        _probabilities("rho_moco", self, ("momentum",))


@dataclass
class RhoSwavConfig(_Projected):
    """ρSwAV. Paper: 3-layer MLP with BN to 128-d, 1000 prototypes frozen for the first epoch,
    ε = 0.05 with 3 Sinkhorn iterations, τ = 0.1, swapped prediction across all clip pairs.

    `assign_clips = 2` is the released code (codes from clips 0 and 1 only; 0 = every clip).
    `queue_size` > 0 adds SwAV's queue of past embeddings to each Sinkhorn problem from
    `queue_start_epoch` on (off in the paper's runs).
    """

    prototypes: int = 256  # more prototypes than embedding dimensions (docs/tuning.md: with 50 it collapsed)
    temperature: float = 0.2
    epsilon: float = 0.02  # sharper codes: at the paper's 0.05 training collapsed to uniform codes (loss = ln K)
    sinkhorn_iters: int = 3
    freeze_prototypes_epochs: int = 1
    assign_clips: int = 0
    queue_size: int = 0
    queue_start_epoch: int = 15

    def validate(self) -> None:
        self._check_common("rho_swav")
        fields_at_least("methods.rho_swav", self, ("prototypes", "sinkhorn_iters"), 1)
        fields_at_least("methods.rho_swav", self, ("freeze_prototypes_epochs", "assign_clips", "queue_size",
                                                   "queue_start_epoch"), 0)
        fields_at_least("methods.rho_swav", self, ("temperature", "epsilon"), 0, strict=True)
        if self.assign_clips == 1 or self.assign_clips > max(self.rho, 2):
            raise ConfigError(f"methods.rho_swav.assign_clips: 0 (every clip) or 2..{max(self.rho, 2)} "
                              f"(the first clips of a video), got {self.assign_clips}")


@dataclass
class SupervisedConfig:
    """The paper's supervised reference rows: the same encoder trained with cross-entropy on a label of
    the pre-training data (`label`; on moving-digits, `digit`). `rho` clips per video, each classified
    (1 = one clip, the usual supervised recipe); `dropout` before the classifier (0.5 in SlowFast)."""

    rho: int = 1
    label: str = "digit"
    dropout: float = 0.5

    def validate(self) -> None:
        fields_at_least("methods.supervised", self, ("rho",), 1)
        _probabilities("supervised", self, ("dropout",))
        if not self.label.strip():
            raise ConfigError("methods.supervised.label: empty label name")



@dataclass
class VimpacConfig:
    """VIMPAC (Tan et al. 2021). Mask-then-predict: `masking = "block"` masks per sample the union of
    `mask_blocks` blocks with lengths uniform in [1, ⌊2T/3⌋] x [1, ⌊h/2⌋] x [1, ⌊w/2⌋] (0: the count whose
    expected ratio is closest to `mask_ratio`, 5 at 5x16x16); `"iid"` masks each token with probability
    `mask_ratio` (the paper's baseline). Contrastive: InfoNCE between the [CLS] projections of two clips
    of a video drawn anywhere in it (`max_distance` >= 0 frames limits how far apart), on the same
    masked input, τ = 0.2; loss = mlm_weight · L_mask + contrastive_weight · τ · L_cl, where L_cl sums its
    two directions. `contrastive_weight = 0` is the paper's mask-only ablation (one clip per video).
    The [CLS] head is Linear-BN-ReLU x (proj_layers - 1), then a Linear without bias to `proj_dim`.
    """

    masking: Literal["block", "iid"] = "block"
    mask_ratio: float = 0.15
    mask_blocks: int = 0
    mlm_weight: float = 1.0
    contrastive_weight: float = 1.0
    temperature: float = 0.2
    max_distance: int = -1
    proj_layers: int = 2
    proj_hidden: int = 512  # the paper: 2048
    proj_dim: int = 256

    def validate(self) -> None:
        fields_at_least("methods.vimpac", self, ("proj_layers", "proj_hidden", "proj_dim"), 1)
        fields_at_least("methods.vimpac", self, ("mask_blocks", "mlm_weight", "contrastive_weight"), 0)
        fields_at_least("methods.vimpac", self, ("temperature",), 0, strict=True)
        if not 0 < self.mask_ratio < 1:
            raise ConfigError(f"methods.vimpac.mask_ratio: need 0 < value < 1, got {self.mask_ratio}")
        if self.max_distance < -1:
            raise ConfigError(f"methods.vimpac.max_distance: frames >= 0, or -1 for anywhere, got {self.max_distance}")
        if self.mlm_weight == 0 and self.contrastive_weight == 0:
            raise ConfigError("methods.vimpac: mlm_weight and contrastive_weight are both 0: nothing to learn")


@dataclass
class TextConfig:
    """How captions become token ids (VATT, ClipBERT): a `word` vocabulary (VATT's word-level tokenizer)
    or `wordpiece` (BERT's, ClipBERT) trained on the pre-training captions with the `tokenizers` library
    and cached, or `path` naming a `tokenizer.json` or BERT `vocab.txt` to load (the `paper` profile).
    `vocab_size` is the most ids the text tower embeds; `max_len` the tokens per caption, [CLS] and
    [SEP] included (VATT: 16 words)."""

    kind: Literal["word", "wordpiece"] = "word"
    vocab_size: int = 1024
    max_len: int = 16
    path: str = ""
    lowercase: bool = True

    def validate(self, where: str) -> None:
        fields_at_least(where, self, ("vocab_size",), 8)
        fields_at_least(where, self, ("max_len",), 3)


@dataclass
class VattConfig:
    """VATT (Akbari et al. 2021): video (the backbone), audio and text transformers trained from scratch
    with video-audio NCE and video-text MIL-NCE in hierarchical common spaces.

    Towers: `towers = "specific"` gives each modality its own transformer (audio `audio_size`, raw-waveform
    patches of `audio_patch` samples at `audio_rate` Hz; text a T5 encoder of `text_size`, or the local
    pretrained `text_model` folder); `"shared"` is VATT-MA, one transformer (the video backbone's) for all
    three. DropToken drops `drop_token` of the video and audio tokens in pre-training only.
    Common spaces: video -> S_va (`va_dim`, Linear-BN-ReLU-Linear-BN), audio -> S_va (Linear); video's
    S_va embedding -> S_vt (`vt_dim`, ReLU-Linear-BN), text -> S_vt (Linear); all L2-normalised, τ =
    `temperature`. Loss = (va_weight · NCE(v, a) + vt_weight · MIL-NCE(v, t)) / (va_weight + vt_weight),
    the reference code's average; MIL-NCE's positives are the `captions` narrations nearest each clip.
    `audio_noise`: Gaussian noise of that fraction of each clip's peak, in pre-training (the code's).
    """

    towers: Literal["specific", "shared"] = "specific"
    audio_size: Literal["tiny", "small", "base", "medium", "large"] = "tiny"
    audio_patch: int = 128
    audio_rate: int = 8000  # the embedded track's (the paper: 48 kHz)
    audio_noise: float = 0.01
    text_size: Literal["tiny", "small", "base"] = "tiny"
    text_model: str = ""
    # a word vocabulary trained on the captions (the paper: 2^16 words)
    text: TextConfig = field(default_factory=lambda: TextConfig(kind="word", vocab_size=256, max_len=16))
    # each pre-training segment has one sentence, and a 2-s clip spans about two segments: MIL-NCE's positives
    # are the 2 nearest (the paper: 5)
    captions: int = 2
    drop_token: float = 0.5
    va_dim: int = 512
    vt_dim: int = 256
    temperature: float = 0.07
    va_weight: float = 1.0
    vt_weight: float = 1.0
    dropout: float = 0.1

    def validate(self) -> None:
        where = "methods.vatt"
        self.text.validate(f"{where}.text")
        fields_at_least(where, self, ("audio_patch", "audio_rate", "captions", "va_dim", "vt_dim"), 1)
        fields_at_least(where, self, ("temperature",), 0, strict=True)
        fields_at_least(where, self, ("va_weight", "vt_weight", "audio_noise"), 0)
        if self.va_weight + self.vt_weight == 0:
            raise ConfigError(f"{where}: va_weight and vt_weight are both 0: nothing to learn")
        if not 0 <= self.drop_token < 1:
            raise ConfigError(f"{where}.drop_token: need 0 <= rate < 1, got {self.drop_token}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{where}.dropout: need 0 <= value < 1, got {self.dropout}")
        if self.text_model and not Path(self.text_model).expanduser().is_dir():
            raise ConfigError(f"{where}.text_model: {self.text_model} is not a folder (a saved T5 encoder)")


@dataclass
class ClipBertConfig:
    """ClipBERT (Lei et al. 2021): `clips` sparse short clips per video, each read with the video's caption
    by the single-stream transformer; pre-training by masked language modelling (`mlm_prob` of the
    caption's tokens: 80% [MASK], 10% a random word, 10% kept) and image-text matching (with probability
    `itm_negative` the caption is another video's), the clips' match scores combined by `consensus`
    (mean, max or LogSumExp of the logits, before the loss). The paper pre-trains on image-text pairs
    (COCO, Visual Genome); here the pairs are the pre-training videos and their captions
    (`whole_caption`: the video's full caption, as ClipBERT's retrieval pairs a caption with a whole
    video; otherwise the sentence nearest the first clip)."""

    clips: int = 2
    consensus: Literal["mean", "max", "lse"] = "lse"
    mlm_prob: float = 0.15
    itm_negative: float = 0.5
    mlm_weight: float = 1.0
    itm_weight: float = 1.0
    whole_caption: bool = True
    # the video's whole caption, up to 48 word tokens of a vocabulary of the captions (the paper: BERT's 30,522
    # word pieces, 30 tokens)
    text: TextConfig = field(default_factory=lambda: TextConfig(kind="word", vocab_size=256, max_len=48))

    def validate(self) -> None:
        where = "methods.clipbert"
        self.text.validate(f"{where}.text")
        fields_at_least(where, self, ("clips",), 1)
        fields_at_least(where, self, ("mlm_weight", "itm_weight"), 0)
        for name in ("mlm_prob", "itm_negative"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: need 0 < value < 1, got {getattr(self, name)}")
        if self.mlm_weight + self.itm_weight == 0:
            raise ConfigError(f"{where}: mlm_weight and itm_weight are both 0: nothing to learn")
