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
