"""End-to-end `bench` runs on the ci profile, through the real CLI in subprocesses."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _cache_with_data(tmp: Path, shared: Path) -> Path:
    """A fresh cache dir (own checkpoints) that shares the already generated datasets."""
    tmp.mkdir()
    (tmp / "datasets").symlink_to(shared / "datasets")
    return tmp


def _cmd(cache: Path, results: Path, *extra: str, method: str = "rho_byol") -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", "--method", method, "--protocol", "linear",
            "--profile", "ci", "-q", "--set", f"run.cache_dir='{cache}'", "--results-dir", str(results), *extra]


def _record(results: Path) -> dict:
    (path,) = sorted((results / "runs").glob("*.json"), key=os.path.getmtime)[-1:]
    return json.loads(path.read_text())


def test_ci_run_end_to_end(tmp_path, cache_dir, ci_manifest):
    cache, results = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "results"
    t0 = time.perf_counter()
    p = subprocess.run(_cmd(cache, results), capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    rec = _record(results)
    assert rec["method"] == "rho_byol" and rec["profile"] == "ci" and rec["tasks"] == ["digits-appearance",
                                                                                       "digits-motion"]
    for r in rec["results"]:
        m, c = r["metrics"], r["counts"]
        assert c["test_videos"] == 60 and c["train_videos"] == 100 and c["views"] == 2 * 3
        for k in ("top1", "top5", "top1_1view", "top5_1view"):  # percentages of 60 videos: whole counts
            assert abs(m[k] * 60 / 100 - round(m[k] * 60 / 100)) < 1e-6, (k, m[k])
        assert m["top5"] >= m["top1"] and m["top5_1view"] >= m["top1_1view"]
        # the printed summary carries exactly the recorded numbers
        assert (f"| {r['task']} | {m['top1']:.1f} | {m['top5']:.1f} | {m['top1_1view']:.1f} | {m['top5_1view']:.1f} "
                f"| 2x3 |") in p.stdout
    pre = rec["pretrain"]
    assert pre["steps"] == pre["total_steps"] == 3 * (64 // 16) and not pre["reused"]
    assert pre["code_version"] == rec["code_version"]["pretrain"] and pre["key"] == rec["pretrain_key"]
    assert rec["datasets"]["moving-digits"]["checksum"] == json.loads(ci_manifest.read_text())["checksum"]
    assert rec["versions"]["torch"] and rec["config"]["pretrain"]["epochs"] == 3
    info = json.loads((Path(pre["checkpoint"]).parent / "pretrain.json").read_text())
    assert info["config"]["pretrain.epochs"] == 3 and info["code_version"] and info["git_commit"]
    assert took < 120, f"ci run took {took:.0f} s"
    # a second run reuses the pre-trained encoder (same key); --retrain trains it again
    p = subprocess.run(_cmd(cache, results), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "reusing pre-trained encoder" in p.stderr
    second = _record(results)
    assert second["pretrain"]["reused"] is True
    assert [r["metrics"] for r in second["results"]] == [r["metrics"] for r in rec["results"]]
    p = subprocess.run(_cmd(cache, results, "--retrain"), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "--retrain: training a fresh encoder" in p.stderr
    assert _record(results)["pretrain"]["reused"] is False
    # random_init and a second seed, then the leaderboard of this folder
    for extra, method in (((), "random_init"), (("--seed", "1"), "rho_byol")):
        p = subprocess.run(_cmd(cache, results, *extra, method=method), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
    seed1 = _record(results)
    board = subprocess.run([sys.executable, "-m", "harness.cli", "leaderboard", "--results-dir", str(results),
                            "-f", "csv"], capture_output=True, text=True, cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    import csv as csv_module

    rows = {(r["method"], r["protocol"], r["task"]): r for r in csv_module.DictReader(board.stdout.splitlines())}
    assert set(rows) == {(m, "linear", t) for m in ("rho_byol", "random_init")
                         for t in ("digits-appearance", "digits-motion")}
    for t, r0, r1 in zip(rec["tasks"], rec["results"], seed1["results"]):
        # three runs of seed 0 (identical numbers) count once beside seed 1
        mean = (r0["metrics"]["top1"] + r1["metrics"]["top1"]) / 2
        assert float(rows[("rho_byol", "linear", t)]["mean"]) == pytest.approx(mean, abs=1e-3)
        assert rows[("rho_byol", "linear", t)]["seeds"] == "2" and rows[("random_init", "linear", t)]["seeds"] == "1"
        assert rows[("rho_byol", "linear", t)]["variant"] == "rho=4"


def test_a_code_version_change_invalidates_reuse(tmp_path, cache_dir, ci_manifest, monkeypatch):
    """In-process: bumping the method's code version keys a new pre-training instead of reusing."""
    from harness import code_version
    from harness.config import load_config
    from harness.runner import run

    cache = _cache_with_data(tmp_path / "c", cache_dir)
    cfg = load_config("ci", [f"run.cache_dir='{cache}'", "pretrain.epochs=1"], results_dir=str(tmp_path / "r"))
    first, _ = run(cfg, progress=False)
    again, _ = run(cfg, progress=False)
    assert not first["pretrain"]["reused"] and again["pretrain"]["reused"]
    rec = {k: dict(v) for k, v in code_version.recorded().items()}
    rec["method:rho_byol"]["version"] += 1
    monkeypatch.setattr(code_version, "recorded", lambda: rec)
    bumped, _ = run(cfg, progress=False)
    assert not bumped["pretrain"]["reused"] and bumped["pretrain_key"] != first["pretrain_key"]
    assert bumped["code_version"]["pretrain"] != first["code_version"]["pretrain"]


def test_killed_pretraining_resumes_to_the_same_result(tmp_path, cache_dir, ci_manifest):
    extra = ("--set", "pretrain.epochs=6", "--set", "pretrain.checkpoint_every=4")
    ref_cache, ref_runs = _cache_with_data(tmp_path / "ref", cache_dir), tmp_path / "ref_results"
    p = subprocess.run(_cmd(ref_cache, ref_runs, *extra), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    reference = _record(ref_runs)

    cache, runs = _cache_with_data(tmp_path / "kill", cache_dir), tmp_path / "kill_results"
    proc = subprocess.Popen(_cmd(cache, runs, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list(cache.glob("checkpoints/*/last.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up, as with a pre-empted job
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not runs.exists() or not list(runs.glob("runs/*.json"))  # no record from a killed run
    assert not list(cache.glob("checkpoints/*/encoder.pt"))

    fresh_cache = tmp_path / "fresh"  # the same interrupted state, started over with --fresh
    shutil.copytree(cache, fresh_cache, symlinks=True)
    # the same command again, no flag: an interrupted pre-training of the same key continues by default
    p = subprocess.run(_cmd(cache, runs, *extra), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    resumed = _record(runs)
    assert "holds an interrupted pre-training of this configuration (same key); continuing it" in p.stderr
    assert f"resuming from step {resumed['pretrain']['resumed_from_step']} of 24" in p.stderr
    assert 0 < resumed["pretrain"]["resumed_from_step"] < resumed["pretrain"]["total_steps"]
    for a, b in zip(reference["results"], resumed["results"]):
        assert a["task"] == b["task"] and a["metrics"] == b["metrics"]
    assert not list(cache.glob("checkpoints/*/last.pt"))  # the finished encoder supersedes it
    fresh_runs = tmp_path / "fresh_results"
    p = subprocess.run(_cmd(fresh_cache, fresh_runs, *extra, "--fresh"), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "--fresh: starting over" in p.stderr, p.stderr[-3000:]
    assert _record(fresh_runs)["pretrain"]["resumed_from_step"] == 0


def test_an_encoder_trained_without_unreadable_videos_retrains_once_they_are_repaired(tmp_path, ci_manifest):
    """In-process: a damaged pre-training video is skipped and recorded; the encoder is reused while the
    file stays damaged, and trained again on the whole set once `repair` has fixed it."""
    import shutil

    from harness.config import load_config
    from harness.data import moving_digits as md
    from harness.runner import run, summary

    cfg = load_config("ci", [f"run.cache_dir='{tmp_path}'", "pretrain.epochs=1", "data.max_bad_fraction=0.1"],
                      results_dir=str(tmp_path / "r"))
    root = md.dataset_dir(cfg.dataset_cfg, tmp_path)
    shutil.copytree(ci_manifest.parent, root)
    entry = next(v for v in json.loads(ci_manifest.read_text())["videos"] if v["split"] == "pretrain")
    (root / entry["path"]).write_bytes(b"\0not a video" * 40)
    with pytest.warns(UserWarning):
        first, _ = run(cfg, progress=False)
    assert first["unreadable_videos"] == [str(root / entry["path"])]
    assert "warning: 1 videos could not be read" in summary(first)
    info = json.loads((Path(first["pretrain"]["checkpoint"]).parent / "pretrain.json").read_text())
    assert list(info["bad_videos"]) == [str(root / entry["path"])]
    again, _ = run(cfg, progress=False)
    assert again["pretrain"]["reused"] and again["unreadable_videos"] == first["unreadable_videos"]
    assert md.repair(cfg.dataset_cfg, tmp_path, progress=False).damaged == [entry["path"]]
    repaired, _ = run(cfg, progress=False)
    assert not repaired["pretrain"]["reused"] and repaired["unreadable_videos"] == []


SSL_AND_SUPERVISED = ["rho_simclr", "rho_moco", "rho_byol", "rho_swav", "supervised"]


@pytest.mark.parametrize("rho", [1, 3])
@pytest.mark.parametrize("method", SSL_AND_SUPERVISED)
def test_every_method_runs_the_ci_profile(method, rho, tmp_path, cache_dir, ci_manifest):
    """`bench run --profile ci` of each method with ρ = 1 and ρ = 3, in process: it pre-trains for the
    full schedule with finite losses, logs the method's extra terms, and scores both tasks."""
    from harness.cli import main

    cache, results = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "results"
    argv = _cmd(cache, results, "--set", f"method.rho={rho}", method=method)[3:]  # drop `python -m harness.cli`
    assert main(argv) == 0
    rec = _record(results)
    pre = rec["pretrain"]
    assert rec["method"] == method and rec["config"]["methods"][method]["rho"] == rho
    assert pre["steps"] == pre["total_steps"] == 12 and not pre["reused"]
    assert pre["loss_curve"] and all(v == v and abs(v) < 1e3 for _, v in pre["loss_curve"])
    expected_terms = {"rho_moco": {"momentum"}, "rho_byol": {"momentum"}, "supervised": {"train_top1"}}
    assert set(pre["term_curves"]) == expected_terms.get(method, set())
    assert [r["task"] for r in rec["results"]] == ["digits-appearance", "digits-motion"]
    assert all(0 <= r["metrics"]["top1"] <= 100 for r in rec["results"])


PROTOCOL_METRICS = [("linear", "top1"), ("linear-cached", "top1"), ("finetune", "top1"), ("knn", "top1"),
                    ("retrieval", "R@1")]


@pytest.mark.parametrize("protocol, metric", PROTOCOL_METRICS)
def test_every_protocol_runs_the_ci_profile(protocol, metric, tmp_path, cache_dir, ci_manifest):
    """`bench run --protocol P --profile ci` for every protocol: both tasks scored with a bootstrap
    interval per metric, a protocol card, and the leaderboard reads the protocol's own metric."""
    from harness.cli import main

    cache, results = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "results"
    argv = _cmd(cache, results)[3:]
    argv[argv.index("linear")] = protocol
    assert main(argv) == 0
    rec = _record(results)
    assert rec["protocol"] == protocol and [r["task"] for r in rec["results"]] == ["digits-appearance", "digits-motion"]
    for r in rec["results"]:
        lo, hi = r["ci95"][metric]
        assert 0 <= lo <= r["metrics"][metric] <= hi <= 100
    card = rec["protocol_card"]
    assert card["protocol"] == protocol and card["views"].startswith("2x3") and card["scored_encoder"] == rec["pretrain_key"]
    assert card["tasks"]["digits-motion"] == {"train_split": "train", "test_split": "test", "train_videos": 100,
                                              "test_videos": 60, "unreadable_videos": 0,
                                              "short_videos": {"train": 0, "test": 0}}
    assert main(["leaderboard", "--results-dir", str(results), "--metric", metric]) == 0
    if protocol in ("linear", "finetune"):  # what trains is stored under the encoder's key and reused
        fits = [r["extra"]["fit"] for r in rec["results"]]
        assert not any(f["reused"] for f in fits) and all(Path(f["checkpoint"]).exists() for f in fits)
        assert len({f["key"] for f in fits}) == (2 if protocol == "finetune" else 1)  # finetune: one per task
        assert main(argv) == 0
        again = _record(results)
        assert all(r["extra"]["fit"]["reused"] for r in again["results"])
        assert [r["metrics"] for r in again["results"]] == [r["metrics"] for r in rec["results"]]


def test_a_setting_the_data_cannot_satisfy_fails_before_pre_training(tmp_path, cache_dir, ci_manifest):
    """A low-shot count above a class's size is found from the split, before any pre-training starts."""
    cache, results = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "results"
    p = subprocess.run(_cmd(cache, results, "--set", "protocol.train_per_class=500"), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and "train_per_class = 500, but class" in p.stderr
    assert not (cache / "checkpoints").exists() and "pre-training" not in p.stderr


def test_a_protocol_needing_a_tower_the_method_lacks_is_refused_before_pre_training(tmp_path, cache_dir, ci_manifest,
                                                                                    monkeypatch):
    from harness.cli import main
    from protocols.knn import Knn

    monkeypatch.setattr(Knn, "needs", ("video", "text"))
    cache, results = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "results"
    argv = _cmd(cache, results)[3:]
    argv[argv.index("linear")] = "knn"
    assert main(argv) == 2
    assert not (cache / "checkpoints").exists()


def test_frozen_protocols_of_one_encoder_share_one_stored_extraction(tmp_path, cache_dir, ci_manifest):
    """linear-cached extracts and stores the features; knn reuses them (same numbers as extracting
    afresh); another view count is another extraction."""
    from harness.cli import main

    cache, results = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "results"
    argv = _cmd(cache, results)[3:]
    at = argv.index("linear")

    def run(protocol: str, *extra: str) -> dict:
        argv[at] = protocol
        assert main([*argv, *extra]) == 0
        return _record(results)

    first = run("linear-cached")
    assert first["results"][0]["extra"]["features"]["reused"] is False
    knn = run("knn")
    info = knn["results"][0]["extra"]["features"]
    assert info["reused"] is True and info["key"] == first["results"][0]["extra"]["features"]["key"]
    fresh = run("knn", "--set", "protocol.cache_features=false")
    assert "features" not in fresh["results"][0]["extra"]
    assert [r["metrics"] for r in fresh["results"]] == [r["metrics"] for r in knn["results"]]
    other = run("knn", "--set", "protocol.temporal_views=3")
    assert other["results"][0]["extra"]["features"]["reused"] is False
    assert len(list((cache / "features").glob("*.pt"))) == 2
    # a run that scored one task stored only its labels: a run of both tasks extracts again, not a KeyError
    one = run("linear-cached", "--set", "protocol.tasks=['digits-appearance']", "--set", "protocol.temporal_views=4")
    assert one["results"][0]["extra"]["features"]["reused"] is False
    both = run("linear-cached", "--set", "protocol.temporal_views=4")
    assert [r["task"] for r in both["results"]] == ["digits-appearance", "digits-motion"]
    assert both["results"][0]["extra"]["features"]["reused"] is False


def test_vimpac_runs_the_ci_profile(tmp_path, cache_dir, ci_manifest):
    """`bench run --method vimpac --profile ci`: the tokenizer is trained and reported, pre-training logs
    mask accuracy and the contrastive loss, both tasks are scored; random_init of its backbone reuses
    the tokenizer."""
    from harness.cli import main

    cache, results = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "results"
    argv = _cmd(cache, results, method="vimpac")[3:]
    argv[argv.index("linear")] = "linear-cached"
    assert main(argv) == 0
    rec = _record(results)
    assert rec["backbone"] == "vimpac" and rec["tokenizer"]["mse"] < rec["tokenizer"]["constant_mse"]
    assert {"mask_acc", "cl_loss", "mask_loss"} <= set(rec["pretrain"]["term_curves"])
    assert [r["task"] for r in rec["results"]] == ["digits-appearance", "digits-motion"]
    argv[argv.index("vimpac")] = "random_init"
    assert main([*argv, "--set", "backbone.name=vimpac"]) == 0
    init = _record(results)
    assert init["backbone"] == "vimpac" and init["tokenizer"] == rec["tokenizer"]


def test_vatt_runs_the_ci_profile_under_every_protocol_of_its_towers(tmp_path, cache_dir, ci_manifest):
    """`bench run --method vatt --profile ci`: pre-training logs both losses; the video tower under the
    linear probe, the audio tower under it with `input = "audio"`, the video-text space under
    `zeroshot` and `retrieval-text`. Later runs reuse the checkpoint with every tower in it (the same
    zero-shot numbers as the run that trained them), and a method without a text tower is refused."""
    from harness.cli import main

    cache, results = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "results"
    argv = _cmd(cache, results, method="vatt")[3:]
    at = argv.index("linear")
    assert main(argv[:at] + ["zeroshot"] + argv[at + 1:]) == 0
    first = _record(results)
    assert first["backbone"] == "vatt" and first["text_tokenizer"]["tokenizer"] == "word"
    assert {"nce_va", "milnce_vt"} <= set(first["pretrain"]["term_curves"]) and not first["pretrain"]["reused"]
    assert [r["task"] for r in first["results"]] == ["digits-appearance", "digits-motion"]
    assert main(argv[:at] + ["zeroshot"] + argv[at + 1:]) == 0
    again = _record(results)
    assert again["pretrain"]["reused"] and again["results"][0]["metrics"] == first["results"][0]["metrics"]
    assert main(argv[:at] + ["retrieval-text"] + argv[at + 1:]) == 0
    ret = _record(results)["results"][0]
    assert ret["task"] == "digits-captions" and {"t2v_R@1", "t2v_MedR", "v2t_R@10"} <= set(ret["metrics"])
    assert ret["extra"]["chance"]["R@1"] == pytest.approx(100 / 30)  # the ci profile scores 30 clips
    assert main(argv[:at] + ["linear-cached", "--set", "protocol.input=audio"] + argv[at + 1:]) == 0
    audio = _record(results)
    assert audio["protocol_card"]["input"].startswith("audio")
    assert audio["results"][0]["metrics"]["top1"] > 50  # the track's pitch names the digit
    assert main(argv[:at] + ["zeroshot"] + argv[at + 1:] + ["--method", "rho_byol"]) != 0


def test_clipbert_runs_the_ci_profile_as_a_cross_encoder(tmp_path, cache_dir, ci_manifest):
    """`bench run --method clipbert --profile ci`: pre-training logs MLM and ITM; the video encoder under
    the linear probe; the cross-encoder under `zeroshot` and `retrieval-text`, one forward per pair."""
    from harness.cli import main

    cache, results = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "results"
    argv = _cmd(cache, results, method="clipbert")[3:]
    at = argv.index("linear")
    assert main(argv[:at] + ["linear-cached"] + argv[at + 1:]) == 0
    rec = _record(results)
    assert rec["backbone"] == "clipbert" and rec["text_tokenizer"]["vocab"] <= 256
    assert {"itm_loss", "mlm_loss", "itm_acc", "mlm_acc"} <= set(rec["pretrain"]["term_curves"])
    assert main(argv[:at] + ["retrieval-text"] + argv[at + 1:]) == 0
    ret = _record(results)["results"][0]
    assert ret["extra"]["scorer"] == "cross" and ret["counts"]["test_videos"] == 30
    assert ret["metrics"]["t2v_R@1"] == ret["metrics"]["t2v_R@1_1view"]  # one view: scored once, both numbers
    assert main(argv[:at] + ["zeroshot", "--set", "protocol.tasks=['digits-motion']"] + argv[at + 1:]) == 0
    assert _record(results)["results"][0]["task"] == "digits-motion"


def test_the_gpu_script_runs_end_to_end_on_a_cpu(tmp_path, cache_dir, ci_manifest):
    """tools/gpu_check.sh's smoke mode: the miniatures, the data-path table, one method's step timing, a
    short pre-training with both probes, the summary table and its JSON."""
    script = Path(__file__).resolve().parent.parent / "tools" / "gpu_check.sh"
    env = {**os.environ, "DEVICE": "cpu", "PROFILE": "ci", "METHODS": "rho_byol", "STEPS": "2", "WORKERS": "0",
           "PYTHON": sys.executable, "WORK": str(tmp_path / "work"), "OUT": str(tmp_path / "out")}
    p = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "decode limit (frames/s)" in p.stdout and "| rho_byol | compute fp32 |" in p.stdout
    assert "| linear | digits-appearance |" in p.stdout or "| linear | digits-motion |" in p.stdout
    body = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert len(body["perf"]) == 1 and {r["protocol"] for r in body["runs"]} == {"linear", "finetune"}
