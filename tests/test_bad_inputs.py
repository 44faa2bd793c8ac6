"""Every failure a user can cause: one line on stderr, its documented exit code, no traceback, nothing written.

The table covers command-line values, the user's bench.toml, results files and file-system states.
Each case runs `bench` in-process (so torch is imported once) from a fresh working directory with
its own cache, and the test checks that the directory tree is the same afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.cli import main

RUN = ["run", "-m", "rho_byol", "--protocol", "linear", "-p", "ci", "-q"]
S = "--set"

# (id, argv, setup, exit code, text in the one line). setup: {"bench.toml": text | bytes | None (a folder),
# "file:<path>": text, "record": True (a valid record in results/runs)}.
CASES: list[tuple] = [
    # ------------------------------------------------------------------ the command line itself
    ("no-method", ["run", "--protocol", "linear"], {}, 2, "Missing option '--method'"),
    ("unknown-option", [*RUN, "--bogus"], {}, 2, "No such option: --bogus"),
    ("unknown-command", ["train"], {}, 2, "No such command 'train'"),
    ("empty-method", ["run", "-m", "", "--protocol", "linear"], {}, 2, "--method: empty value"),
    ("empty-protocol", ["run", "-m", "rho_byol", "--protocol", ""], {}, 2, "--protocol: empty value"),
    ("unknown-method", ["run", "-m", "byol", "--protocol", "linear"], {}, 2, "method: unknown name 'byol'"),
    ("unknown-protocol", ["run", "-m", "rho_byol", "--protocol", "svm"], {}, 2, "protocol: unknown name 'svm'"),
    ("unknown-profile", [*RUN, "-p", "fast"], {}, 2, "unknown profile 'fast'; known: ci, embedded, paper"),
    ("empty-profile", [*RUN, "-p", ""], {}, 2, "--profile: empty value"),
    ("negative-seed", [*RUN, "--seed", "-1"], {}, 2, "run.seed: must be >= 0"),
    ("text-seed", [*RUN, "--seed", "abc"], {}, 2, "Invalid value for '--seed'"),
    ("set-without-equals", [*RUN, S, "pretrain.lr"], {}, 2, "expected key=value"),
    ("set-empty-key", [*RUN, S, "=3"], {}, 2, "empty key"),
    ("set-typo", [*RUN, S, "pretrain.lrr=0.1"], {}, 2, "unknown key 'pretrain.lrr' (did you mean 'lr'?)"),
    ("set-no-section", [*RUN, S, "nosuch.key=1"], {}, 2, "no section 'nosuch'"),
    ("resume-and-retrain", [*RUN, "--resume", "--retrain"], {}, 2, "--resume and --retrain contradict"),
    ("empty-results-dir", [*RUN, "--results-dir", ""], {}, 2, "--results-dir: empty path"),
    ("empty-config", [*RUN, "--config", ""], {}, 2, "--config: empty path"),
    ("missing-config", [*RUN, "--config", "nope.toml"], {}, 2, "config file nope.toml does not exist"),
    ("config-is-folder", [*RUN, "--config", "conf"], {"dir:conf": None}, 2, "is a directory, not a TOML file"),
    # ------------------------------------------------------------------ values: pretrain
    *[(f"pretrain.{k}={v}", [*RUN, S, f"pretrain.{k}={v}"], {}, 2, msg) for k, v, msg in [
        ("lr", "nan", "pretrain.lr: expected a finite number, got nan"),
        ("lr", "inf", "pretrain.lr: expected a finite number, got inf"),
        ("lr", "-inf", "pretrain.lr: expected a finite number"),
        ("lr", "-0.1", "pretrain.lr: must be > 0, got -0.1"),
        ("lr", "0", "pretrain.lr: must be > 0, got 0"),
        ("lr", "fast", "pretrain.lr: expected a number, got 'fast'"),
        ("lr", "true", "pretrain.lr: expected a number, got True"),
        ("epochs", "-1", "pretrain.epochs: must be >= 0"),
        ("epochs", "1.5", "pretrain.epochs: expected an integer, got 1.5"),
        ("batch_size", "0", "pretrain.batch_size: must be >= 1"),
        ("batch_size", "-8", "pretrain.batch_size: must be >= 1"),
        ("log_every", "0", "pretrain.log_every: must be >= 1"),
        ("checkpoint_every", "0", "pretrain.checkpoint_every: must be >= 1"),
        ("warmup_epochs", "-1", "pretrain.warmup_epochs: must be >= 0"),
        ("warmup_epochs", "100", "pretrain.warmup_epochs (100) must be <= pretrain.epochs (3)"),
        ("weight_decay", "-1", "pretrain.weight_decay: must be >= 0"),
        ("weight_decay", "nan", "pretrain.weight_decay: expected a finite number"),
        ("momentum", "1.5", "pretrain.momentum: must be < 1"),
        ("momentum", "-0.5", "pretrain.momentum: must be >= 0"),
        ("grad_clip", "-1", "pretrain.grad_clip: must be >= 0"),
        ("optimizer", "adam", "pretrain.optimizer: 'adam' is not allowed; allowed: 'sgd', 'adamw', 'lars'"),
        ("precision", "fp16", "pretrain.precision: 'fp16' is not allowed"),
        ("precision", "bf16", "pretrain.precision='bf16' needs a CUDA device"),
        ("dataset", "kinetics", "pretrain.dataset: unknown name 'kinetics'"),
        ("compile", "yes", "pretrain.compile: expected true or false, got 'yes'"),
    ]],
    # ------------------------------------------------------------------ values: run and data
    *[(f"{k}={v}", [*RUN, S, f"{k}={v}"], {}, 2, msg) for k, v, msg in [
        ("run.device", "cuda", "run.device='cuda' but this machine has no CUDA device"),
        ("run.device", "tpu", "run.device: 'tpu' is not allowed"),
        ("run.threads", "-2", "run.threads: must be >= 0"),
        ("run.seed", "-3", "run.seed: must be >= 0"),
        ("run.results_dir", "''", "run.results_dir: empty path"),
        ("data.num_workers", "-1", "data.num_workers: must be >= 0"),
        ("data.max_bad_fraction", "2", "data.max_bad_fraction: in [0, 1], got 2.0"),
        ("data.max_bad_fraction", "-0.1", "data.max_bad_fraction: in [0, 1]"),
        ("data.cache_frames", "maybe", "data.cache_frames: expected true or false"),
    ]],
    # ------------------------------------------------------------------ values: backbone, clip, augmentation
    *[(f"{k}={v}", [*RUN, S, f"{k}={v}"], {}, 2, msg) for k, v, msg in [
        ("backbone.name", "resnet", "backbone.name: unknown name 'resnet'"),
        ("backbones.small3d.width", "0", "backbones.small3d.width: must be >= 1, got 0"),
        ("backbones.small3d.width", "-4", "backbones.small3d.width: must be >= 1, got -4"),
        ("backbones.small3d.depth", "3", "unknown key 'backbones.small3d.depth'"),
        ("backbone.clip.frames", "0", "backbone.clip.frames: must be >= 1"),
        ("backbone.clip.stride", "0", "backbone.clip.stride: must be >= 1"),
        ("backbone.clip.stride", "-2", "backbone.clip.stride: must be >= 1"),
        ("backbone.clip.crop_size", "0", "backbone.clip.crop_size: must be >= 1"),
        ("backbone.clip.test_short_side", "8", "backbone.clip.test_short_side (8) must be >= crop_size (16)"),
        ("backbone.clip.mean", "[0.5]", "backbone.clip.mean and .std need 3 values"),
        ("backbone.clip.std", "[0,1,1]", "backbone.clip.std: must be > 0"),
        ("augment.flip_p", "1.5", "augment.flip_p: a probability in [0, 1]"),
        ("augment.jitter_p", "-0.1", "augment.jitter_p: a probability in [0, 1]"),
        ("augment.grayscale_p", "nan", "augment.grayscale_p: expected a finite number"),
        ("augment.crop_scale", "[0.9,0.1]", "augment.crop_scale: expected [low, high] with 0 < low <= high"),
        ("augment.crop_scale", "[0,1]", "augment.crop_scale: expected [low, high] with 0 < low <= high"),
        ("augment.crop_scale", "[0.5,2]", "augment.crop_scale: an area fraction in (0, 1]"),
        ("augment.crop_ratio", "[1]", "augment.crop_ratio: expected [low, high]"),
        ("augment.jitter", "[1,1]", "augment.jitter: expected [brightness, contrast, saturation, hue]"),
        ("augment.jitter", "[0.4,0.4,0.4,0.9]", "hue <= 0.5"),
        ("augment.blur_sigma", "[2,1]", "augment.blur_sigma: expected [low, high]"),
    ]],
    # ------------------------------------------------------------------ values: sizes and rates out of bounds
    ("seed-2**64", [*RUN, "--seed", str(2**64)], {}, 2, "run.seed: at most 4294967295 (the random generators take"),
    ("seed-2**32", [*RUN, "--seed", str(2**32)], {}, 2, "run.seed: at most 4294967295"),
    *[(f"bound {k}={v}", [*RUN, S, f"{k}={v}"], {}, 2, msg) for k, v, msg in [
        ("pretrain.epochs", str(10**12), "pretrain.epochs: at most 100000 (the papers' longest schedule"),
        ("pretrain.steps", str(10**9), "pretrain.steps: at most 100000000"),
        ("pretrain.lr", "1e9", "pretrain.lr: at most 100 (a learning rate beyond this diverges"),
        ("backbone.clip.frames", "10000", "backbone.clip.frames: at most 1024"),
        ("backbone.clip.stride", "5000", "backbone.clip.stride: at most 1024"),
        ("backbone.clip.crop_size", "8192", "backbone.clip.crop_size: at most 4096"),
        ("protocols.linear.lr", "1e9", "protocols.linear.lr: at most 100"),
        ("protocols.linear.epochs", str(10**7), "protocols.linear.epochs: at most 100000"),
        ("protocols.linear.temporal_views", "100000", "protocols.linear.temporal_views: at most 100"),
    ]],
    *[(f"bound {p}.{k}={v}", ["run", "-m", "rho_byol", "--protocol", p, "-p", "ci", "-q", S, f"protocols.{p}.{k}={v}"],
       {}, 2, msg) for p, k, v, msg in [
        ("linear-cached", "lr", "1e9", "protocols.linear-cached.lr: at most 100"),
        ("linear-cached", "train_views", "1000", "protocols.linear-cached.train_views: at most 100"),
        ("linear-cached", "temporal_views", "100000", "protocols.linear-cached.temporal_views: at most 100"),
        ("finetune", "lr", "1e9", "protocols.finetune.lr: at most 100"),
        ("knn", "train_views", "500", "protocols.knn.train_views: at most 100"),
    ]],
    # ------------------------------------------------------------------ values: method, protocol, dataset
    *[(f"{k}={v}", [*RUN, S, f"{k}={v}"], {}, 2, msg) for k, v, msg in [
        ("method.rho", "0", "methods.rho_byol.rho: must be >= 1, got 0"),
        ("method.rho", "two", "methods.rho_byol.rho: expected an integer"),
        ("method.momentum", "1", "methods.rho_byol.momentum: need 0 <= value < 1, got 1"),
        ("method.pred_lr_scale", "0", "methods.rho_byol.pred_lr_scale: must be > 0"),
        ("method.proj_dim", "0", "methods.rho_byol.proj_dim: must be >= 1"),
        ("method.nosuch", "1", "unknown key 'methods.rho_byol.nosuch'"),
        ("pretrain.lr_batch", "-1", "pretrain.lr_batch: must be >= 0"),
        ("pretrain.lr_schedule", "'step'", "pretrain.lr_schedule: 'step' is not allowed"),
        ("protocol.epochs", "0", "protocols.linear.epochs: must be >= 1"),
        ("protocol.spatial_views", "2", "protocols.linear.spatial_views: 1 or 3, got 2"),
        ("protocol.temporal_views", "0", "protocols.linear.temporal_views: must be >= 1"),
        ("protocol.tasks", "[]", "protocols.linear.tasks: name at least one task"),
        ("protocol.tasks", "['digits-colour']", "unknown task 'digits-colour'"),
        ("protocol.lr", "-1", "protocols.linear.lr: must be > 0"),
        ("protocol.batch_size", "0", "protocols.linear.batch_size: must be >= 1"),
        ("protocol.warmup_epochs", "100", "protocols.linear.warmup_epochs (100) must be <= epochs (2)"),
        ("protocol.bn", "'sync'", "protocols.linear.bn: 'sync' is not allowed"),
        ("protocol.schedule", "'steps'", "protocols.linear.lr_steps: schedule 'steps' needs the epochs"),
        ("protocol.lr_steps", "[5]", "protocols.linear.lr_steps: increasing epochs inside (0, 2)"),
        ("protocol.flip_p", "2", "protocols.linear.flip_p: a probability in [0, 1]"),
        ("protocol.crop_scale", "[0.5,0.2]", "protocols.linear.crop_scale: [low, high] with 0 < low <= high"),
        ("protocol.momentum", "1", "protocols.linear.momentum: must be < 1"),
        ("protocol.clip_batch", "0", "protocols.linear.clip_batch: must be >= 1"),
        ("protocol.weight_decay", "-1", "protocols.linear.weight_decay: must be >= 0"),
        ("protocol.train_fraction", "0", "protocols.linear.train_fraction: in (0, 1], got 0"),
        ("protocol.train_fraction", "1.5", "protocols.linear.train_fraction: in (0, 1], got 1.5"),
        ("protocol.train_per_class", "-1", "protocols.linear.train_per_class: must be >= 0"),
        ("datasets.moving-digits.fps", "0", "datasets.moving-digits.fps: must be >= 1, got 0"),
        ("datasets.moving-digits.width", "0", "datasets.moving-digits.width: must be >= 1"),
        ("datasets.moving-digits.width", "41", "width and height must be even"),
        ("datasets.moving-digits.height", "-2", "datasets.moving-digits.height: must be >= 1"),
        ("datasets.moving-digits.size", "huge", "datasets.moving-digits.size: unknown size 'huge'; known: ci, embedded"),
        ("datasets.moving-digits.digit_size", "[30,20]", "digit_size: need [min, max] with 0 < min <= max"),
        ("datasets.moving-digits.texture_contrast", "[0.5]", "texture_contrast: need [min, max]"),
        ("datasets.moving-digits.crf", "99", "datasets.moving-digits.crf: x264's range is 0-51"),
        ("datasets.moving-digits.test_image_fraction", "1", "test_image_fraction: must be in (0, 1)"),
        ("datasets.moving-digits.sizes.ci.pretrain_videos", "0", "sizes.ci.pretrain_videos: must be >= 1"),
        ("datasets.moving-digits.segment_frames", "0", "datasets.moving-digits.segment_frames: must be >= 1"),
        ("datasets.moving-digits.audio_rate", "-1", "datasets.moving-digits.audio_rate: must be >= 1"),
    ]],
    # ------------------------------------------------------------------ the other protocols' settings
    *[(f"{p}:{k}={v}", [*RUN[:4], p, *RUN[5:], S, f"{k}={v}"], {}, 2, msg) for p, k, v, msg in [
        ("finetune", "protocol.dropout", "1", "protocols.finetune.dropout: in [0, 1), got 1"),
        ("finetune", "protocol.layer_decay", "0", "protocols.finetune.layer_decay: in (0, 1], got 0"),
        ("finetune", "protocol.head_init", "'xavier'", "protocols.finetune.head_init: 'xavier' is not allowed"),
        ("finetune", "protocol.label_smoothing", "1", "protocols.finetune.label_smoothing: in [0, 1)"),
        ("linear-cached", "protocol.train_views", "0", "protocols.linear-cached.train_views: must be >= 1"),
        ("knn", "protocol.k", "0", "protocols.knn.k: must be >= 1"),
    ]],
    # ------------------------------------------------------------------ the user's bench.toml
    ("toml-is-folder", RUN, {"bench.toml": None}, 2, "bench.toml is a directory, not a TOML file"),
    ("toml-bad-utf8", RUN, {"bench.toml": b"[run]\nseed = 1 # \xff\xfe\n"}, 2, "not UTF-8 text"),
    ("toml-invalid", RUN, {"bench.toml": "[run\nseed = 1\n"}, 2, "bench.toml: not valid TOML"),
    ("toml-profiles-5", RUN, {"bench.toml": "profiles = 5\n"}, 2, "'profiles' must be a table, got 5"),
    ("toml-by-method-unknown", RUN, {"bench.toml": "[by_method.byol]\npretrain = { lr = 0.1 }\n"}, 2,
     "[by_method.byol]: unknown method 'byol'"),
    ("toml-by-method-not-table", RUN, {"bench.toml": "[by_method]\nrho_byol = 3\n"}, 2,
     "[by_method.rho_byol] must be a table of overrides"),
    # ------------------------------------------------------------------ the other methods' settings
    *[(f"{m}:{k}={v}", ["run", "-m", m, *RUN[3:], S, f"{k}={v}"], {}, 2, msg) for m, k, v, msg in [
        ("rho_simclr", "method.temperature", "0", "methods.rho_simclr.temperature: must be > 0"),
        ("rho_simclr", "method.pairs", "'some'", "methods.rho_simclr.pairs: 'some' is not allowed"),
        ("rho_moco", "method.queue_size", "0", "methods.rho_moco.queue_size: must be >= 1"),
        ("rho_moco", "method.momentum", "1.5", "methods.rho_moco.momentum: need 0 <= value < 1"),
        ("rho_swav", "method.prototypes", "0", "methods.rho_swav.prototypes: must be >= 1"),
        ("rho_swav", "method.epsilon", "0", "methods.rho_swav.epsilon: must be > 0"),
        ("rho_swav", "method.assign_clips", "1", "methods.rho_swav.assign_clips: 0 (every clip) or 2..2"),
        ("supervised", "method.dropout", "1", "methods.supervised.dropout: need 0 <= value < 1"),
        ("supervised", "method.label", "''", "methods.supervised.label: empty label name"),
    ]],
    ("toml-profile-not-table", RUN, {"bench.toml": "profiles = {mine = 5}\n"}, 2, "[profiles.mine] must be a table"),
    ("toml-default-profile-3", ["run", "-m", "rho_byol", "--protocol", "linear"],
     {"bench.toml": "default_profile = 3\n"}, 2, "'default_profile' must be a string, got 3"),
    ("toml-default-profile-unknown", ["run", "-m", "rho_byol", "--protocol", "linear"],
     {"bench.toml": 'default_profile = "nope"\n'}, 2, "unknown profile 'nope'"),
    ("toml-method-5", RUN, {"bench.toml": "method = 5\n"}, 2, "'method' must be a string, got 5"),
    ("toml-plugins-str", RUN, {"bench.toml": 'plugins = "x"\n'}, 2, "'plugins' must be a list"),
    ("toml-plugins-missing", RUN, {"bench.toml": 'plugins = ["no_such_plugin_mod"]\n'}, 2,
     "plugins: cannot import 'no_such_plugin_mod'"),
    ("toml-plugins-ints", RUN, {"bench.toml": "plugins = [1]\n"}, 2, "'plugins' must be a list of module names"),
    ("toml-lr-text", RUN, {"bench.toml": '[pretrain]\nlr = "fast"\n'}, 2, "pretrain.lr: expected a number"),
    ("toml-unknown-key", RUN, {"bench.toml": "[pretrain]\nnosuch = 1\n"}, 2, "unknown key 'pretrain.nosuch'"),
    ("toml-unknown-method-section", RUN, {"bench.toml": "[methods.nosuch]\na = 1\n"}, 2,
     "[methods.nosuch]: unknown name 'nosuch'"),
    ("toml-datasets-3", RUN, {"bench.toml": "datasets = 3\n"}, 2, "'datasets' must be a table, got 3"),
    ("toml-run-not-table", RUN, {"bench.toml": "run = 3\n"}, 2, "'run' must be a table, got 3"),
    ("toml-negative-seed", RUN, {"bench.toml": "[run]\nseed = -5\n"}, 2, "run.seed: must be >= 0"),
    ("toml-profile-bad-lr", [*RUN, "-p", "mine"], {"bench.toml": "[profiles.mine]\npretrain.lr = -1\n"}, 2,
     "pretrain.lr: must be > 0"),
    ("toml-config-flag-bad", [*RUN, "--config", "other.toml"], {"file:other.toml": "[[["}, 2,
     "other.toml: not valid TOML"),
    # ------------------------------------------------------------------ file-system states
    ("results-dir-is-file", [*RUN, "--results-dir", "res"], {"file:res": "x"}, 5, "res is a file, not a folder"),
    ("results-runs-is-file", [*RUN, "--results-dir", "res"], {"file:res/runs": "x"}, 5, "is a file, not a folder"),
    ("results-parent-is-file", [*RUN, "--results-dir", "res/deeper"], {"file:res": "x"}, 5, "is a file"),
    ("cache-is-file", [*RUN, S, "run.cache_dir='cachefile'"], {"file:cachefile": "x"}, 5,
     "cache folder cachefile: cachefile is a file, not a folder"),
    ("results-unwritable", [*RUN, "--results-dir", "/sys/kernel/bench-results"], {}, 5,
     "results folder /sys/kernel/bench-results/runs cannot be written"),
    ("cache-unwritable", [*RUN, S, "run.cache_dir='/sys/kernel/bench-cache'"], {}, 5,
     "cache folder /sys/kernel/bench-cache cannot be written"),
    ("prepare-cache-is-file", ["data", "prepare", "moving-digits", S, "run.cache_dir='cachefile'"],
     {"file:cachefile": "x"}, 5, "is a file, not a folder"),
    ("leaderboard-results-is-file", ["leaderboard", "--results-dir", "res"], {"file:res/runs": "x"}, 5,
     "is a file, not a folder"),
    # ------------------------------------------------------------------ the other commands
    ("leaderboard-empty", ["leaderboard"], {}, 2, "no run records in"),
    ("leaderboard-only-stray", ["leaderboard"], {"file:results/runs/notes.json": '{"a": 1}'}, 2,
     "(1 other files skipped, e.g. notes.json: not a run record"),
    ("leaderboard-metric", ["leaderboard", "--metric", "top2"], {"record": True}, 2,
     "--metric 'top2' is not in the records; they have: top1, top1_1view, top5, top5_1view"),
    ("leaderboard-profile", ["leaderboard", "-p", "paper"], {"record": True}, 2,
     "no runs with profile 'paper'; runs exist for: ci"),
    ("leaderboard-format", ["leaderboard", "-f", "xml"], {"record": True}, 2, "--format 'xml': choose markdown, csv or html"),
    ("suite-unknown", ["suite", "rhoo"], {}, 2, "unknown suite 'rhoo'; known: rho, epochs, vimpac, vatt, rho-study"),
    ("suite-seeds", ["suite", "rho", "--seeds", "0"], {}, 2, "--seeds must be at least 1, got 0"),
    ("suite-only", ["suite", "rho", "--only", "rho"], {}, 2, "--only 'rho': write SELECTOR=V1,V2"),
    ("tables-paper", ["tables", "--paper", "vimpac"], {}, 2, "--paper 'vimpac': one of feichtenhofer2021"),
    ("tables-table", ["tables", "--table", "rhoo"], {}, 2,
     "--table 'rhoo': no such table; known: attention_layout, epochs, imagenet"),
    ("tables-format", ["tables", "-f", "xls"], {}, 2, "--format 'xls': one of md, csv, tex, html"),
    ("tables-only", ["tables", "--table", "rho", "--only", "rho=9"], {}, 2, "--only leaves no cell of"),
    ("list-nonsense", ["list", "things"], {}, 2, "cannot list 'things'; choose one of: methods"),
    ("list-missing", ["list"], {}, 2, "Missing argument"),
    ("show-nan", ["config", "show", S, "pretrain.lr=nan"], {}, 2, "pretrain.lr: expected a finite number"),
    ("show-method", ["config", "show", "-m", "nope"], {}, 2, "method: unknown name 'nope'"),
    ("show-profile", ["config", "show", "-p", "nope"], {}, 2, "unknown profile 'nope'"),
    ("show-bad-toml", ["config", "show"], {"bench.toml": "x = = 1\n"}, 2, "not valid TOML"),
    ("prepare-unknown", ["data", "prepare", "kinetics"], {}, 2, "unknown dataset 'kinetics'; known: diving48, hmdb51"),
    ("prepare-real", ["data", "prepare", "ucf101"], {}, 2, "ucf101 is read from your copy"),
    ("verify-generated", ["data", "verify", "moving-digits"], {}, 2, "bench data prepare moving-digits"),
    ("verify-no-root", ["data", "verify", "ucf101"], {}, 2, "datasets.ucf101.root: set the folder"),
    ("synth-unknown", ["data", "synth", "--format", "kinetics", "--out", "x"], {}, 2, "--format 'kinetics': one of"),
    ("prepare-size", ["data", "prepare", "moving-digits", "--size", "huge"], {}, 2, "unknown size 'huge'"),
    ("prepare-missing", ["data", "prepare"], {}, 2, "Missing argument"),
    ("prepare-bad-set", ["data", "prepare", "moving-digits", S, "datasets.moving-digits.fps=0"], {}, 2,
     "datasets.moving-digits.fps: must be >= 1"),
]


def _record() -> dict:
    return {"method": "rho_byol", "protocol": "linear", "profile": "ci", "seed": 0, "identity": {"encoder": {},
            "protocol": {}}, "code_version": {"pretrain": "1.1", "protocol": "1.1"},
            "results": [{"task": "digits-motion", "metrics": {"top1": 50.0, "top1_1view": 40.0, "top5": 90.0,
                                                               "top5_1view": 80.0}}]}


def _tree(root: Path) -> dict[str, bytes | None]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _setup(root: Path, setup: dict) -> None:
    for key, value in setup.items():
        if key == "bench.toml":
            if value is None:
                (root / "bench.toml").mkdir()
            else:
                (root / "bench.toml").write_bytes(value if isinstance(value, bytes) else value.encode())
        elif key.startswith("file:"):
            p = root / key[5:]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(value)
        elif key.startswith("dir:"):
            (root / key[4:]).mkdir(parents=True)
        elif key == "record":
            (root / "results" / "runs").mkdir(parents=True)
            (root / "results" / "runs" / "r.json").write_text(json.dumps(_record()))


def _check(capsys, argv, code, text, root: Path) -> None:
    before = _tree(root)
    rc = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == code, f"exit {rc}, expected {code}; stderr: {err[-2000:]}"
    assert "Traceback" not in err + out
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line: {err!r}"
    assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    assert _tree(root) == before, "files were written"


def test_the_table_is_large_enough():
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("argv, setup, code, text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(workspace, capsys, argv, setup, code, text):
    _setup(workspace, setup)
    _check(capsys, argv, code, text, workspace)


def test_a_stray_file_beside_records_is_one_warning(workspace, capsys):
    _setup(workspace, {"record": True, "file:results/runs/notes.json": '{"a": 1}'})
    assert main(["leaderboard"]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "warning: skipped notes.json: not a run record of this harness version (missing method, " \
                          "protocol, profile, seed, results, identity, code_version)"
    assert "| ci | rho_byol | 50.0 | 1 |" in out


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("kind", ["full", "read-only"])
def test_a_full_or_read_only_file_system(workspace, capsys, kind):
    """Real file systems where the machine allows mounting one (root with CAP_SYS_ADMIN); skipped elsewhere."""
    mnt = workspace.parent / f"mnt-{kind}-{workspace.name}"
    if not _mount_tmpfs(mnt, "size=64k,ro" if kind == "read-only" else "size=64k"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        if kind == "full":
            with open(mnt / "filler", "wb") as f:
                try:
                    f.write(b"\0" * 65536 * 2)
                except OSError:
                    pass
        why = "no space left on the device" if kind == "full" else "read-only file system"
        _check(capsys, [*RUN, "--results-dir", str(mnt / "res")], 5, why, workspace)
        _check(capsys, [*RUN, S, f"run.cache_dir='{mnt / 'cache'}'"], 5, why, workspace)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
