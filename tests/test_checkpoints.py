"""Released checkpoints as encoders: a PySlowFast-format and a pytorchvideo-format Slow R-50 load key for key
(written here in those formats), a ResNet-101 is refused with the keys that differ, and `bench run --method
pretrained` scores a file, named by its content."""
from __future__ import annotations

import json

import pytest
import torch

from harness.builders import build_encoder
from harness.config import load_config
from harness.errors import ConfigError
from harness.models.checkpoints import load_released

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@pytest.fixture(scope="module")
def ref():
    cfg = load_config("paper")
    return build_encoder("slow_r50", cfg.backbone_cfg, cfg.backbone.clip).state_dict()


def _like(t: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.randn(t.shape, generator=g) if t.is_floating_point() else t.clone() + 3


def slowfast_checkpoint(ref: dict, depths=(3, 4, 6, 3)) -> dict:
    """A PySlowFast `.pyth` of an SSL Slow R-50: `model_state` with the trunk under `backbone.`, PySlowFast's
    names (s1.pathway0_stem, sK.pathway0_resJ.branch1/branch1_bn/branch2.{a,b,c}[_bn]) and a projection head."""
    g = torch.Generator().manual_seed(0)
    state = {}

    def put(name: str, ours: str) -> None:
        state[f"backbone.{name}"] = _like(ref[ours], g)

    put("s1.pathway0_stem.conv.weight", "trunk.blocks.0.conv.weight")
    for p in BN:
        put(f"s1.pathway0_stem.bn.{p}", f"trunk.blocks.0.norm.{p}")
    for stage, depth in zip(range(2, 6), depths):
        for j in range(depth):
            k = min(j, (3, 4, 6, 3)[stage - 2] - 1)  # a deeper net's extra blocks: shaped like the stage's last
            ours = f"trunk.blocks.{stage - 1}.res_blocks.{k}"
            if j == 0:
                put(f"s{stage}.pathway0_res0.branch1.weight", f"{ours}.branch1_conv.weight")
                for p in BN:
                    put(f"s{stage}.pathway0_res0.branch1_bn.{p}", f"{ours}.branch1_norm.{p}")
            for part in "abc":
                put(f"s{stage}.pathway0_res{j}.branch2.{part}.weight", f"{ours}.branch2.conv_{part}.weight")
                for p in BN:
                    put(f"s{stage}.pathway0_res{j}.branch2.{part}_bn.{p}", f"{ours}.branch2.norm_{part}.{p}")
    state["head.projection.weight"] = torch.randn(128, 2048)
    return {"epoch": 200, "model_state": state, "optimizer_state": {}}


def test_a_slowfast_checkpoint_maps_every_key(ref, tmp_path):
    ckpt = slowfast_checkpoint(ref)
    torch.save(ckpt, tmp_path / "rho_byol.pyth")
    cfg = load_config("paper")
    enc = build_encoder("slow_r50", cfg.backbone_cfg, cfg.backbone.clip)
    assert load_released(enc, tmp_path / "rho_byol.pyth") == "slowfast"
    got, src = enc.state_dict(), ckpt["model_state"]
    assert len(src) - 1 == len(got)  # every trunk key mapped; the projection head dropped
    assert torch.equal(got["trunk.blocks.0.conv.weight"], src["backbone.s1.pathway0_stem.conv.weight"])
    assert torch.equal(got["trunk.blocks.4.res_blocks.2.branch2.norm_c.running_var"],
                       src["backbone.s5.pathway0_res2.branch2.c_bn.running_var"])
    assert torch.equal(got["trunk.blocks.2.res_blocks.0.branch1_norm.bias"], src["backbone.s3.pathway0_res0.branch1_bn.bias"])


def test_a_pytorchvideo_checkpoint_maps_every_key(ref, tmp_path):
    g = torch.Generator().manual_seed(1)
    state = {k.removeprefix("trunk."): _like(v, g) for k, v in ref.items()}
    state |= {"blocks.5.proj.weight": torch.randn(400, 2048), "blocks.5.proj.bias": torch.randn(400)}
    torch.save(state, tmp_path / "SLOW_8x8_R50.pyth")
    cfg = load_config("paper")
    enc = build_encoder("slow_r50", cfg.backbone_cfg, cfg.backbone.clip)
    assert load_released(enc, tmp_path / "SLOW_8x8_R50.pyth") == "pytorchvideo"
    assert all(torch.equal(v, state[k.removeprefix("trunk.")]) for k, v in enc.state_dict().items())


def test_a_resnet101_checkpoint_is_refused_with_the_keys_that_differ(ref, tmp_path):
    torch.save(slowfast_checkpoint(ref, depths=(3, 4, 23, 3)), tmp_path / "r101.pyth")
    cfg = load_config("paper")
    enc = build_encoder("slow_r50", cfg.backbone_cfg, cfg.backbone.clip)
    # 17 more blocks in stage 4, 18 tensors each
    with pytest.raises(ConfigError, match=r"does not fit the SlowR50 encoder: 0 weights missing .* 306 unexpected "
                                          r"\(e\.g\. \['trunk\.blocks\.3\.res_blocks\.6"):
        load_released(enc, tmp_path / "r101.pyth")
    (tmp_path / "junk.pyth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a checkpoint torch can read safely"):
        load_released(enc, tmp_path / "junk.pyth")


@pytest.mark.e2e
def test_bench_run_scores_a_checkpoint_file_named_by_its_content(tmp_path, cache_dir, ci_manifest):
    from harness.cli import main

    cfg = load_config("ci")
    enc = build_encoder("small3d", cfg.backbone_cfg, cfg.backbone.clip)
    torch.save(enc.state_dict(), tmp_path / "encoder.pt")
    results = tmp_path / "results"
    argv = ["run", "--method", "pretrained", "-p", "ci", "-q", "--results-dir", str(results),
            "--set", f"methods.pretrained.path='{tmp_path / 'encoder.pt'}'", "--set", f"run.cache_dir='{cache_dir}'"]
    assert main(argv) == 0
    (rec,) = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    sha = rec["identity"]["encoder"]["methods.pretrained.sha256"]
    assert rec["method"] == "pretrained" and rec["protocol_card"]["scored_encoder"].endswith(f"(sha256 {sha})")
    assert main(["run", "--method", "pretrained", "-p", "ci", "-q", "--results-dir", str(results)]) == 2


def _d2_names(tv: dict) -> dict:
    """A torchvision ResNet-50 state dict under Detectron2's names (as grid-feat's R-50 is saved), with a
    detection head that the loader must drop."""
    import re

    out = {}
    for k, v in tv.items():
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        if k == "conv1.weight":
            out["backbone.bottom_up.stem.conv1.weight"] = v
        elif k.startswith("bn1."):
            out[f"backbone.bottom_up.stem.conv1.norm.{k[4:]}"] = v
        else:
            m = re.match(r"layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.[01])\.(\w+)$", k)
            res, blk, part, p = int(m[1]) + 1, m[2], m[3], m[4]
            name = {"downsample.0": "shortcut", "downsample.1": "shortcut.norm"}.get(part) or (
                part if part.startswith("conv") else f"conv{part[-1]}.norm")
            out[f"backbone.bottom_up.res{res}.{blk}.{name}.{p}"] = v
    out["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(3, 4)
    return out


def test_clipbert_cnn_weights_load_exactly_in_either_layout_and_foreign_files_are_refused(tmp_path):
    import torchvision

    from harness.models.clipbert import _resnet

    g = torch.Generator().manual_seed(0)
    tv = {k: _like(v, g) for k, v in torchvision.models.resnet50().state_dict().items()}
    torch.save(tv, tmp_path / "tv.pt")
    cnn, width, bgr = _resnet("resnet50", 4, str(tmp_path / "tv.pt"))
    assert width == 2048 and not bgr
    assert torch.equal(cnn[0].weight, tv["conv1.weight"])
    assert torch.equal(cnn[7][2].bn3.running_var, tv["layer4.2.bn3.running_var"])

    torch.save({"model": _d2_names(tv)}, tmp_path / "d2.pth")
    cnn, _, bgr = _resnet("resnet50", 4, str(tmp_path / "d2.pth"))
    assert bgr and cnn[5][0].conv1.stride == (2, 2) and cnn[5][0].conv2.stride == (1, 1)  # MSRA: stride in the 1x1
    assert torch.equal(cnn[6][0].downsample[1].weight, tv["layer3.0.downsample.1.weight"])
    assert torch.equal(cnn[1].running_mean, tv["bn1.running_mean"])

    foreign = {k.replace("layer", "stage"): v for k, v in tv.items()}
    torch.save(foreign, tmp_path / "foreign.pt")
    with pytest.raises(ConfigError, match=r"weights missing \(e\.g\. \['layer1.*unexpected \(e\.g\. \['stage1"):
        _resnet("resnet50", 4, str(tmp_path / "foreign.pt"))
    partial = {k: v for k, v in tv.items() if not k.startswith("layer4.")}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(ConfigError, match="refusing a partial load"):
        _resnet("resnet50", 4, str(tmp_path / "partial.pt"))


def test_clipbert_bert_path_loads_exactly_and_a_partial_folder_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import BertConfig, BertModel

    from harness.models.clipbert import _pretrained_bert

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32))
    bert.save_pretrained(tmp_path / "ok")
    loaded = _pretrained_bert(str(tmp_path / "ok"))
    for k, v in bert.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    bert.save_pretrained(tmp_path / "partial")
    weights = tmp_path / "partial" / "model.safetensors"
    state = load_file(weights)
    save_file({k: v for k, v in state.items() if "encoder.layer.0.output" not in k}, weights, metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="weights missing .*encoder.layer.0.output"):
        _pretrained_bert(str(tmp_path / "partial"))


def test_a_harness_encoder_file_loads_exactly_or_is_refused(tmp_path):
    from harness.models.encoder import load_encoder_weights

    cfg = load_config("ci")
    enc = build_encoder("small3d", cfg.backbone_cfg, cfg.backbone.clip)
    torch.save(enc.state_dict(), tmp_path / "e.pt")
    other = build_encoder("small3d", cfg.backbone_cfg, cfg.backbone.clip)
    load_encoder_weights(other, tmp_path / "e.pt")
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), other.state_dict().values()))
    torch.save({f"net.{k}": v for k, v in enc.state_dict().items()}, tmp_path / "foreign.pt")
    with pytest.raises(ConfigError, match="unexpected"):
        load_encoder_weights(other, tmp_path / "foreign.pt")


def test_a_released_slow_r50_read_into_another_backbone_names_the_backbone_it_fits(ref, tmp_path):
    torch.save({k.removeprefix("trunk."): v for k, v in ref.items()}, tmp_path / "SLOW_8x8_R50.pyth")
    cfg = load_config("ci")
    enc = build_encoder("small3d", cfg.backbone_cfg, cfg.backbone.clip)
    with pytest.raises(ConfigError, match=r"does not fit the Small3D encoder.*add --set backbone.name=slow_r50"):
        load_released(enc, tmp_path / "SLOW_8x8_R50.pyth")
