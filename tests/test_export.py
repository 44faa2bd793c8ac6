"""`bench export`: a cached encoder leaves as a state dict that its source library's own model loads strictly,
and that model gives the harness encoder's features."""
from __future__ import annotations

import json

import torch
import torch.nn as nn

from harness.builders import build_encoder
from harness.cli import main
from harness.config import load_config


def _cached(tmp_path, backbone: str, frames: int = 4, crop: int = 32):
    """A 'pre-trained' encoder of `backbone` in a cache folder and the record that names it."""
    cfg = load_config("ci", [f"backbone.name={backbone!r}", f"backbone.clip.frames={frames}",
                             f"backbone.clip.crop_size={crop}", f"backbone.clip.test_short_side={crop}"])
    torch.manual_seed(0)
    enc = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip).eval()
    with torch.no_grad():  # BN statistics away from their defaults, so the comparison covers buffers too
        for m in enc.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    key = f"k{backbone}"
    folder = tmp_path / "cache" / "checkpoints" / f"rho_byol-{backbone}-{key}"
    folder.mkdir(parents=True)
    torch.save(enc.state_dict(), folder / "encoder.pt")
    rec = {"id": f"rec-{backbone}", "method": "rho_byol", "protocol": "linear-cached", "profile": "ci", "seed": 0,
           "backbone": backbone, "pretrain_key": key, "results": [], "identity": {"encoder": {"x": 1}, "protocol": {}},
           "code_version": {"pretrain": "1.1", "protocol": "1.0"}, "config": cfg.to_dict(), "finished": "t"}
    (tmp_path / "runs").mkdir(exist_ok=True)
    (tmp_path / "runs" / f"{rec['id']}.json").write_text(json.dumps(rec))
    return enc, cfg


def _export(tmp_path, which: str) -> tuple[dict, dict]:
    args = ["export", which, "--out", str(tmp_path / "out"), "--results-dir", str(tmp_path)]
    user = tmp_path / "bench.toml"
    user.write_text(f"[run]\ncache_dir = '{tmp_path / 'cache'}'\n")
    assert main([*args, "--config", str(user)]) == 0
    (pt,) = (tmp_path / "out").glob("*.pt")
    info = json.loads(pt.with_suffix(".json").read_text())
    return torch.load(pt, weights_only=True), info


def test_an_exported_r3d_18_loads_into_torchvision_and_gives_the_same_features(tmp_path):
    from torchvision.models.video import r3d_18

    enc, cfg = _cached(tmp_path, "r3d_18")
    state, info = _export(tmp_path, "kr3d_18")
    model = r3d_18()
    model.fc = nn.Identity()
    model.load_state_dict(state)  # strict: every weight and buffer, nothing else
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), enc(x), atol=1e-5)
    assert info["layout"] == "torchvision" and "r3d_18()" in info["how_to_load"] and info["clip"]["frames"] == 4
    assert info["pretrain_key"] == "kr3d_18" and info["record"] == "rec-r3d_18" and len(info["sha256"]) == 64


def test_an_exported_slow_r50_loads_into_pytorchvideo_and_gives_the_same_features(tmp_path):
    from pytorchvideo.models.resnet import create_resnet

    enc, _ = _cached(tmp_path, "slow_r50", frames=2, crop=32)
    state, info = _export(tmp_path, "method=rho_byol,seed=0")
    args = dict(info["create_resnet_args"])
    model = create_resnet(**{**args, "norm": nn.BatchNorm3d, "activation": nn.ReLU, "stem_pool": nn.MaxPool3d,
                             "stem_conv_kernel_size": tuple(args["stem_conv_kernel_size"]),
                             "stage_conv_a_kernel_size": tuple(map(tuple, args["stage_conv_a_kernel_size"]))})
    model.load_state_dict(state)
    x = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x).mean((2, 3, 4)), enc(x), atol=1e-4)
    assert info["layout"] == "pytorchvideo"


def test_export_names_what_it_cannot_find(tmp_path, capsys):
    _cached(tmp_path, "small3d")
    user = tmp_path / "bench.toml"
    user.write_text(f"[run]\ncache_dir = '{tmp_path / 'cache'}'\n")
    assert main(["export", "method=rho_simclr", "--results-dir", str(tmp_path), "--config", str(user)]) == 2
    assert "names no run with a pre-trained encoder" in capsys.readouterr().err
    state, info = _export(tmp_path, "ksmall3d")  # the harness's own layout
    assert info["layout"] == "harness" and all(k.startswith("trunk.") for k in state)
