"""Config resolution and its error messages; the CLI's exit code 2 with nothing written."""
from __future__ import annotations

import subprocess
import sys

import pytest

from harness.config import ConfigError, load_config, parse_value


def test_profiles_resolve():
    ci, emb = load_config("ci"), load_config()
    assert emb.profile == "embedded"
    assert ci.datasets["moving-digits"].size == "ci" and emb.datasets["moving-digits"].size == "embedded"
    assert ci.pretrain.epochs < emb.pretrain.epochs
    paper = load_config("paper")
    assert paper.backbone.name == "slow_r50" and paper.backbone.clip.crop_size == 224
    assert paper.protocol_cfg.temporal_views * paper.protocol_cfg.spatial_views == 30


def test_overrides_and_shorthand():
    cfg = load_config("ci", ["pretrain.lr=0.5", "method.rho=3", "protocol.tasks=['digits-motion']"], seed=7)
    assert cfg.pretrain.lr == 0.5 and cfg.methods["rho_byol"].rho == 3
    assert cfg.protocol_cfg.tasks == ["digits-motion"] and cfg.run.seed == 7
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("abc") == "abc"


def test_pretrain_hash_tracks_what_shapes_the_encoder():
    a = load_config("ci")
    assert a.pretrain_hash() == load_config("ci", ["pretrain.checkpoint_every=99"]).pretrain_hash()
    assert a.pretrain_hash() != load_config("ci", ["pretrain.lr=0.5"]).pretrain_hash()
    assert a.pretrain_hash() != load_config("ci", seed=1).pretrain_hash()


@pytest.mark.parametrize("override, message", [
    ("pretrain.lrr=0.1", "unknown key 'pretrain.lrr' (did you mean 'lr'?); allowed: dataset, epochs"),
    ("pretrain.epochs=two", "pretrain.epochs: expected an integer, got 'two'"),
    ("pretrain.optimizer=adam", "pretrain.optimizer: 'adam' is not allowed; allowed: 'sgd', 'adamw', 'lars'"),
    ("backbone.name=resnet", "backbone.name: unknown name 'resnet'"),
    ("method.rho=0", "need rho >= 1"),
    ("augment.flip_p=1.5", "augment.flip_p: a probability in [0, 1]"),
    ("protocol.tasks=['digits-colour']", "unknown task 'digits-colour'"),
    ("nosuch.key=1", "no section 'nosuch'"),
    ("datasets.moving-digits.texture_contrast=[0.5]", "texture_contrast: need [min, max] with 0 <= min <= max <= 1"),
    ("datasets.moving-digits.digit_size=[30,20]", "digit_size: need [min, max] with 0 < min <= max <= height"),
    ("pretrain.lr", "expected key=value"),
])
def test_config_errors_say_what_and_allowed(override, message):
    with pytest.raises(ConfigError) as e:
        load_config("ci", [override])
    assert message in str(e.value)


def test_unknown_method_and_profile_list_known_names():
    with pytest.raises(ConfigError, match="unknown name 'byol'.*known|allowed: random_init, rho_byol"):
        load_config("ci", method="byol")
    with pytest.raises(ConfigError, match="unknown profile 'fast'; known: ci, embedded, paper"):
        load_config("fast")


def test_cli_config_error_exits_2_and_writes_nothing(tmp_path):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "harness.cli", "run", "--method", "rho_byol", "--protocol", "linear",
           "--profile", "ci", "--set", f"run.results_dir='{runs}'", "--set", f"run.cache_dir='{tmp_path}'",
           "--set", "pretrain.batch_size=-3"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "pretrain.batch_size: must be > 0, got -3" in p.stderr
    assert not runs.exists() and not any(tmp_path.iterdir())
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--method", "simclr", "--protocol", "linear"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "known: random_init, rho_byol" in p.stderr.replace("allowed", "known")


def test_cli_list_and_show():
    p = subprocess.run([sys.executable, "-m", "harness.cli", "list", "backbones"], capture_output=True, text=True)
    assert p.returncode == 0 and all(b in p.stdout for b in ("small3d", "r3d_18", "r2plus1d_18", "slow_r50"))
    p = subprocess.run([sys.executable, "-m", "harness.cli", "config", "show", "--profile", "ci", "--set",
                        "pretrain.lr=0.25"], capture_output=True, text=True)
    assert p.returncode == 0 and "lr = 0.25" in p.stdout and "pre-training hash" in p.stdout
