"""Config resolution and its error messages; the CLI's exit code 2 with nothing written."""
from __future__ import annotations

import re
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


def _key(cfg, device="cpu", precision="fp32", code="1.1"):
    return cfg.pretrain_key(device, precision, code)


def test_pretrain_key_tracks_what_shapes_the_encoder():
    a = load_config("ci")
    assert _key(a) == _key(load_config("ci", ["pretrain.checkpoint_every=99", "protocol.feature_batch=3",
                                               "data.num_workers=2", "run.threads=1"]))
    for other in (["pretrain.lr=0.5"], ["method.rho=2"], ["backbones.small3d.width=4"],
                  ["datasets.moving-digits.crf=20"], ["augment.flip_p=0.5"]):
        assert _key(a) != _key(load_config("ci", other)), other
    assert _key(a) != _key(load_config("ci", seed=1))
    assert _key(a) != _key(a, code="1.2") != _key(a, device="cuda", precision="bf16")
    # another size's counts do not shape this size's data
    assert _key(a) == _key(load_config("ci", ["datasets.moving-digits.sizes.embedded.test_clips=7"]))


def test_identity_names_only_what_shapes_the_result():
    cfg = load_config("ci")
    enc, proto = cfg.encoder_identity(True), cfg.protocol_identity()
    assert enc["methods.rho_byol.rho"] == 4 and "pretrain.checkpoint_every" not in enc
    assert not any(k.startswith(("methods.random_init", "protocols.", "run.", "data.")) for k in enc)
    assert "protocols.linear-cached.feature_batch" not in proto and "protocols.linear-cached.tasks" not in proto
    assert "protocols.linear-cached.clip_batch" not in proto and proto["protocols.linear-cached.temporal_views"] == 2
    bare = load_config("ci", method="random_init").encoder_identity(False)
    assert not any(k.startswith(("pretrain.", "augment.", "methods.")) for k in bare)
    assert bare["backbones.small3d.width"] == 8


def test_user_file_overrides_the_packaged_defaults(tmp_path, monkeypatch):
    (tmp_path / "bench.toml").write_text('default_profile = "mine"\n[profiles.mine]\npretrain.lr = 0.25\n'
                                         'datasets.moving-digits.size = "ci"\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg.profile == "mine" and cfg.pretrain.lr == 0.25 and cfg.pretrain.epochs == load_config("embedded").pretrain.epochs
    assert cfg.sources[-1] == str(tmp_path / "bench.toml")
    other = tmp_path / "other.toml"
    other.write_text("[run]\nseed = 5\n")
    assert load_config("ci", path=other).run.seed == 5  # --config replaces ./bench.toml
    assert load_config("ci", results_dir="out").runs_dir() == tmp_path / "out" / "runs"


def test_by_method_settings_apply_only_to_their_method(tmp_path, monkeypatch):
    """The paper profile's MoCo trains with SGD 0.4 (B.1) while the others use LARS 4.8; a user file's
    [by_method.X] applies in every profile, a profile's own [profiles.P.by_method.X] over it, --set last."""
    paper = {m: load_config("paper", method=m).pretrain for m in ("rho_moco", "rho_byol", "rho_simclr")}
    assert (paper["rho_moco"].optimizer, paper["rho_moco"].lr, paper["rho_moco"].weight_decay) == ("sgd", 0.4, 1e-4)
    assert all((p.optimizer, p.lr, p.weight_decay) == ("lars", 4.8, 1e-6) for m, p in paper.items() if m != "rho_moco")
    assert load_config("paper", ["pretrain.lr=0.3"], method="rho_moco").pretrain.lr == 0.3
    assert load_config("paper", ["method='rho_moco'"]).pretrain.optimizer == "sgd"  # chosen by --set too
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench.toml").write_text("[by_method.rho_swav]\npretrain = { lr = 5e-4 }\n"
                                         "[profiles.ci.by_method.rho_swav]\npretrain = { epochs = 2 }\n")
    ci = load_config("ci", method="rho_swav").pretrain
    assert (ci.lr, ci.epochs) == (5e-4, 2)
    emb = load_config(method="rho_swav").pretrain
    assert emb.lr == 5e-4 and emb.epochs == load_config().pretrain.epochs
    assert load_config("ci", method="rho_byol").pretrain.lr == load_config("ci").pretrain.lr


def test_plugin_adds_a_method(tmp_path, monkeypatch):
    from harness import catalog

    (tmp_path / "bench_plugin_demo.py").write_text(
        "from harness import catalog\n"
        "catalog.METHODS.add('plugin_demo', 'methods.random_init:RandomInit', 'a demo', "
        "config='methods.configs:RandomInitConfig')\n")
    (tmp_path / "bench.toml").write_text('plugins = ["bench_plugin_demo"]\n')
    monkeypatch.chdir(tmp_path)
    try:
        cfg = load_config("ci", method="plugin_demo")
        assert cfg.method == "plugin_demo" and not cfg.pretrains
    finally:
        catalog.METHODS.remove("plugin_demo")


@pytest.mark.parametrize("override, message", [
    ("pretrain.lrr=0.1", "unknown key 'pretrain.lrr' (did you mean 'lr'?); allowed: dataset, epochs"),
    ("pretrain.epochs=two", "pretrain.epochs: expected an integer, got 'two'"),
    ("pretrain.optimizer=adam", "pretrain.optimizer: 'adam' is not allowed; allowed: 'sgd', 'adamw', 'lars'"),
    ("backbone.name=resnet", "backbone.name: unknown name 'resnet'"),
    ("method.rho=0", "rho: must be >= 1, got 0"),
    ("augment.flip_p=1.5", "augment.flip_p: a probability in [0, 1]"),
    ("protocol.tasks=['digits-colour']", "unknown task 'digits-colour'"),
    ("nosuch.key=1", "no section 'nosuch'"),
    ("datasets.moving-digits.texture_contrast=[0.5]", "texture_contrast: need [min, max] with 0 <= min <= max <= 1"),
    ("datasets.moving-digits.digit_size=[30,20]", "digit_size: need [min, max] with 0 < min <= max <= height"),
    ("pretrain.lr", "expected key=value"),
    ("pretrain.lr=nan", "pretrain.lr: expected a finite number"),
    ("pretrain.lr=-1", "pretrain.lr: must be > 0"),
    ("pretrain.log_every=0", "pretrain.log_every: must be >= 1"),
    ("run.threads=-1", "run.threads: must be >= 0"),
    ("backbones.small3d.width=0", "backbones.small3d.width: must be >= 1"),
    ("datasets.moving-digits.fps=0", "datasets.moving-digits.fps: must be >= 1"),
])
def test_config_errors_say_what_and_allowed(override, message):
    with pytest.raises(ConfigError) as e:
        load_config("ci", [override])
    assert message in str(e.value)


def test_unknown_method_and_profile_list_known_names():
    with pytest.raises(ConfigError, match="unknown name 'byol'.*known|allowed: clipbert, pretrained, random_init, rho_byol"):
        load_config("ci", method="byol")
    with pytest.raises(ConfigError, match="unknown profile 'fast'; known: ci, embedded, paper"):
        load_config("fast")


def test_cli_config_error_exits_2_and_writes_nothing(tmp_path):
    runs = tmp_path / "results"
    cmd = [sys.executable, "-m", "harness.cli", "run", "--method", "rho_byol", "--protocol", "linear",
           "--profile", "ci", "--results-dir", str(runs), "--set", f"run.cache_dir='{tmp_path}'",
           "--set", "pretrain.batch_size=-3"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == "error: pretrain.batch_size: must be >= 1, got -3"
    assert not runs.exists() and not any(tmp_path.iterdir())
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--method", "simclr", "--protocol", "linear"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2 and "allowed: clipbert, pretrained, random_init, rho_byol" in p.stderr


def test_cli_list_and_show():
    p = subprocess.run([sys.executable, "-m", "harness.cli", "list", "backbones"], capture_output=True, text=True)
    assert p.returncode == 0 and all(b in p.stdout for b in ("small3d", "r3d_18", "r2plus1d_18", "slow_r50"))
    p = subprocess.run([sys.executable, "-m", "harness.cli", "config", "show", "--profile", "ci", "--set",
                        "pretrain.lr=0.25"], capture_output=True, text=True)
    assert p.returncode == 0 and "lr = 0.25" in p.stdout and "pre-training key" in p.stdout
    assert "[methods.rho_byol]" in p.stdout and "random_init" not in p.stdout  # only the sections in use
    p = subprocess.run([sys.executable, "-m", "harness.cli", "config", "show", "--all"], capture_output=True, text=True)
    assert p.returncode == 0 and "[methods.random_init]" in p.stdout and "[profiles" not in p.stdout


def test_each_profile_names_its_default_protocol_and_the_paper_one_its_datasets():
    assert load_config("ci").protocol == load_config("embedded").protocol == "linear-cached"
    paper = load_config("paper")
    assert paper.protocol == "linear" and paper.pretrain.dataset == "k400" and paper.protocol_cfg.tasks == ["k400"]
    assert paper.backbone.clip.fps == 30 and paper.data.max_bad_fraction == 0.05
    fine = load_config("paper", protocol="finetune")
    assert fine.protocol_cfg.tasks == ["ucf101", "hmdb51", "ssv2", "diving48"]
    ssv2 = fine.task_protocol_cfg("ssv2")
    assert ssv2.flip_p == 0 and ssv2.epochs == 22 and ssv2.lr_steps == [14, 18] and ssv2.temporal_views == 1
    assert fine.task_protocol_cfg("ucf101") is fine.protocol_cfg and fine.protocol_cfg.flip_p == 0.5
    assert fine.protocol_identity()["task_overrides.ssv2.finetune.flip_p"] == 0.0


@pytest.mark.parametrize("override, message", [
    ("task_overrides.nosuch.finetune={epochs=1}", "task_overrides.nosuch: unknown task 'nosuch'"),
    ("task_overrides.ucf101.fine={epochs=1}", "task_overrides.ucf101.fine: unknown protocol 'fine'"),
    ("task_overrides.ucf101.finetune={epochz=1}", "unknown key 'task_overrides.ucf101.finetune.epochz'"),
    ("task_overrides.ucf101.finetune={epochs='x'}", "task_overrides.ucf101.finetune.epochs: expected an integer"),
    ("task_overrides.ucf101.finetune={tasks=['k400']}", "a task's overrides cannot name tasks"),
])
def test_task_overrides_are_checked_like_the_sections_they_override(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("ci", [override], protocol="finetune")


def _field_default(tp, name: str):
    import dataclasses

    f = {f.name: f for f in dataclasses.fields(tp)}[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def test_each_default_has_one_home():
    """A setting's embedded value is its schema's default or a key of bench.toml's base sections, never both:
    so a reader finds it in one place (docs/architecture.md)."""
    import dataclasses

    import tomllib

    from harness import catalog
    from harness.config import DEFAULTS_PATH, sections

    raw = tomllib.loads(DEFAULTS_PATH.read_text())
    twice = []
    for kind in ("datasets", "backbones", "methods", "protocols"):
        for name, body in raw.get(kind, {}).items():
            tp = catalog.REGISTRIES[kind].config_class(name)
            twice += [f"{kind}.{name}.{k}" for k in body if _field_default(tp, k) is not dataclasses.MISSING]
    for key, tp in (("run", sections.RunConfig), ("data", sections.DataConfig), ("augment", sections.AugmentConfig),
                    ("pretrain", sections.PretrainConfig)):
        twice += [f"{key}.{k}" for k in raw.get(key, {}) if _field_default(tp, k) is not dataclasses.MISSING]
    assert not twice, f"set both in bench.toml and as a schema default: {twice}"


@pytest.mark.parametrize("profile", ["ci", "embedded"])
def test_a_profile_holds_only_what_it_changes(profile):
    """The CPU profiles restate nothing of the base. The paper profile is left out on purpose: it spells out
    each setting of the papers' sections in full, as their sources state them, whatever the base holds."""
    import tomllib

    from harness.config import DEFAULTS_PATH

    base = load_config("embedded").to_dict()
    body = tomllib.loads(DEFAULTS_PATH.read_text())["profiles"][profile]

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and v:
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    def value(path):
        node = base
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    restated = [k for k, v in leaves(body) if value(k) == v]
    assert not restated, f"[profiles.{profile}] restates the base: {restated}"


def test_bench_list_shows_plugins_of_the_local_bench_toml_and_of_installed_packages(tmp_path, monkeypatch, capsys):
    """`./bench.toml`'s plugins and a pip-installed package's entry point (group video_ssl_bench.plugins) both
    register before any command, `bench list` included."""
    import sys

    from harness import catalog
    from harness.cli import main

    (tmp_path / "local_plugin_demo.py").write_text(
        "from harness import catalog\n"
        "catalog.METHODS.add('local_demo', 'methods.random_init:RandomInit', 'from ./bench.toml', "
        "config='methods.configs:RandomInitConfig')\n")
    (tmp_path / "bench.toml").write_text('plugins = ["local_plugin_demo"]\n')
    site = tmp_path / "site"
    (site / "ep_demo-0.1.dist-info").mkdir(parents=True)
    (site / "ep_demo-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-demo\nVersion: 0.1\n")
    (site / "ep_demo-0.1.dist-info" / "entry_points.txt").write_text("[video_ssl_bench.plugins]\ndemo = ep_plugin_demo\n")
    (site / "ep_plugin_demo.py").write_text(
        "from harness import catalog\n"
        "catalog.METHODS.add('installed_demo', 'methods.random_init:RandomInit', 'from an entry point', "
        "config='methods.configs:RandomInitConfig')\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["list", "methods"]) == 0
        out = capsys.readouterr().out
        assert "local_demo" in out and "from ./bench.toml" in out
        assert "installed_demo" in out and "from an entry point" in out
    finally:
        for name in ("local_demo", "installed_demo"):
            if name in catalog.METHODS.names():
                catalog.METHODS.remove(name)
        for mod in ("local_plugin_demo", "ep_plugin_demo"):
            sys.modules.pop(mod, None)


def test_a_bare_number_is_accepted_where_a_name_is_expected():
    """docs/datasets.md's `--set datasets.ucf101.split=2`: TOML reads 2 as an integer; the split is a name."""
    assert load_config("ci", ["datasets.ucf101.split=2"]).datasets["ucf101"].split == "2"
    with pytest.raises(ConfigError, match="expected a string, got True"):
        load_config("ci", ["datasets.ucf101.split=true"])
