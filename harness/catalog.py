"""The catalog: every method, protocol, backbone, dataset and task the harness knows, by name.

Entries name their implementation and config schema as "module:attribute" strings, imported only
when used (timm's pattern of an explicit catalog), so `bench list`, `bench config show` and config
validation never import torch. Adding a method is one line here; a plugin module named in
`bench.toml` (`plugins = ["my_methods"]`) can add entries the same way without editing the package.
"""
from __future__ import annotations

from harness.registry import Registry

METHODS = Registry("method")
PROTOCOLS = Registry("protocol")
BACKBONES = Registry("backbone")
DATASETS = Registry("dataset")
TASKS = Registry("task")

METHODS.add("rho_simclr", "methods.rho_simclr:RhoSimclr",
            "ρSimCLR: InfoNCE over the batch, ρ clips per video as positives", config="methods.configs:RhoSimclrConfig")
METHODS.add("rho_moco", "methods.rho_moco:RhoMoco",
            "ρMoCo: momentum keys and a queue of negatives, ρ clips per video as positives",
            config="methods.configs:RhoMocoConfig")
METHODS.add("rho_byol", "methods.rho_byol:RhoByol", "ρBYOL: momentum target, predictor, ρ clips per video as positives",
            config="methods.configs:RhoByolConfig")
METHODS.add("rho_swav", "methods.rho_swav:RhoSwav",
            "ρSwAV: clips of a video predict each other's Sinkhorn prototype codes", config="methods.configs:RhoSwavConfig")
METHODS.add("vimpac", "methods.vimpac:Vimpac",
            "VIMPAC: mask-then-predict of block-masked VQ tokens plus InfoNCE between two clips of a video",
            config="methods.configs:VimpacConfig")
METHODS.add("vatt", "methods.vatt:Vatt",
            "VATT: video, audio and text transformers, NCE(video, audio) + MIL-NCE(video, captions), DropToken",
            config="methods.configs:VattConfig")
METHODS.add("clipbert", "methods.clipbert:ClipBert",
            "ClipBERT: sparse short clips read with the caption by one BERT, MLM + ITM with clip consensus",
            config="methods.configs:ClipBertConfig")
METHODS.add("supervised", "methods.supervised:Supervised",
            "reference row: the encoder trained with labels of the pre-training data (cross-entropy)",
            config="methods.configs:SupervisedConfig")
METHODS.add("pretrained", "methods.pretrained:Pretrained",
            "reference row: a released checkpoint (PySlowFast .pyth, pytorchvideo zoo, or this harness's) scored as is",
            config="methods.configs:PretrainedConfig")
METHODS.add("random_init", "methods.random_init:RandomInit",
            "reference row: untrained encoder (same seed and init as the others)", config="methods.configs:RandomInitConfig")

PROTOCOLS.add("linear", "protocols.linear:Linear",
              "the paper's linear probe: frozen weights, backbone in the loop on augmented clips, multi-view test",
              config="protocols.configs:LinearConfig")
PROTOCOLS.add("linear-cached", "protocols.linear_cached:LinearCached",
              "fast linear probe on features extracted once (centre crops), multi-view test",
              config="protocols.configs:LinearCachedConfig")
PROTOCOLS.add("finetune", "protocols.finetune:Finetune",
              "end-to-end fine-tuning: the whole encoder + dropout + a new linear layer, multi-view test",
              config="protocols.configs:FinetuneConfig")
PROTOCOLS.add("knn", "protocols.knn:Knn",
              "frozen encoder, weighted k-nearest-neighbour classification (no training)",
              config="protocols.configs:KnnConfig")
PROTOCOLS.add("retrieval", "protocols.retrieval:Retrieval",
              "frozen encoder, test videos query training videos: recall@1/5/10/20",
              config="protocols.configs:RetrievalConfig")
PROTOCOLS.add("zeroshot", "protocols.video_text:Zeroshot",
              "no training: test videos classified by their similarity to each class's prompts (a text tower)",
              config="protocols.configs:ZeroshotConfig")
PROTOCOLS.add("retrieval-text", "protocols.video_text:RetrievalText",
              "no training: test captions rank test videos and videos rank captions, R@1/5/10 and median rank",
              config="protocols.configs:RetrievalTextConfig")

BACKBONES.add("small3d", "harness.models.backbones:Small3D", "light 3D CNN for CPU profiles (8w-d features)",
              config="harness.models.configs:Small3DConfig")
BACKBONES.add("r3d_18", "harness.models.backbones:R3D18", "torchvision 3D ResNet-18 (512-d)",
              config="harness.models.configs:NoOptions")
BACKBONES.add("r2plus1d_18", "harness.models.backbones:R2Plus1D18", "torchvision R(2+1)D-18 (512-d)",
              config="harness.models.configs:NoOptions")
BACKBONES.add("vimpac", "harness.models.vimpac:Vimpac",
              "VIMPAC's transformer (T,H|W attention) on the codes of a frozen per-frame VQ tokenizer",
              config="harness.models.configs:VimpacNetConfig")
BACKBONES.add("vatt", "harness.models.vatt:VattVideo", "VATT's video transformer: 3-D tubelets, factorised positions, [AGG]",
              config="harness.models.configs:VattNetConfig")
BACKBONES.add("clipbert", "harness.models.clipbert:ClipBertEncoder",
              "ClipBERT's encoder: ResNet frame grids mean-pooled per clip, read with the caption by one BERT",
              config="harness.models.configs:ClipBertNetConfig")
BACKBONES.add("slow_r50", "harness.models.backbones:SlowR50", "pytorchvideo Slow-only R-50, the paper's 8x8 encoder (2048-d)",
              config="harness.models.configs:SlowR50Config")

DATASETS.add("moving-digits", "harness.data.moving_digits:MovingDigits",
             "embedded: handwritten digits moving over textures (H.264 + AAC + captions)",
             config="harness.data.moving_digits:MovingDigitsConfig")

for _name, _cls, _what in (
        ("k400", "K400", "Kinetics-400 in the CVDF / DeepMind layout (CSV annotations)"),
        ("ucf101", "Ucf101", "UCF101 with ucfTrainTestlist (splits 1-3)"),
        ("hmdb51", "Hmdb51", "HMDB51 with testTrainMulti_7030_splits (splits 1-3)"),
        ("ssv2", "Ssv2", "Something-Something v2 (20BN or Qualcomm JSONs, .webm)"),
        ("diving48", "Diving48", "Diving48 V2 (JSON annotations, vocabulary)")):
    DATASETS.add(_name, f"harness.data.real:{_cls}", f"your copy: {_what}", config=f"harness.data.real:{_cls}Config")
    TASKS.add(_name, f"harness.data.real:{_name.upper()}_TASK", f"the {_name} classes, from its annotation files")

TASKS.add("digits-appearance", "harness.data.moving_digits:APPEARANCE",
          "which digit (one frame suffices; like UCF101/K400)")
TASKS.add("digits-motion", "harness.data.moving_digits:MOTION",
          "how it moves; five time-reversed pairs (like SSv2/Diving48)")
TASKS.add("digits-captions", "harness.data.moving_digits:CAPTIONS",
          "the test clips' captions: text-to-video and video-to-text retrieval")

REGISTRIES = {"methods": METHODS, "protocols": PROTOCOLS, "backbones": BACKBONES, "datasets": DATASETS,
              "tasks": TASKS}
