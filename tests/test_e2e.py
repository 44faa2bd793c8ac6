"""End-to-end `bench` runs on the ci profile, through the real CLI in subprocesses."""
from __future__ import annotations

import json
import os
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


def _cmd(cache: Path, runs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", "--method", "rho_byol", "--protocol", "linear",
            "--profile", "ci", "-q", "--set", f"run.cache_dir='{cache}'", "--set", f"run.results_dir='{runs}'",
            *extra]


def _record(runs: Path) -> dict:
    (path,) = sorted(runs.glob("*.json"), key=os.path.getmtime)[-1:]
    return json.loads(path.read_text())


def test_ci_run_end_to_end(tmp_path, cache_dir, ci_manifest):
    cache, runs = _cache_with_data(tmp_path / "c", cache_dir), tmp_path / "runs"
    t0 = time.perf_counter()
    p = subprocess.run(_cmd(cache, runs), capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    assert "| digits-appearance |" in p.stdout and "| digits-motion |" in p.stdout
    rec = _record(runs)
    assert rec["method"] == "rho_byol" and rec["profile"] == "ci" and rec["tasks"] == ["digits-appearance",
                                                                                       "digits-motion"]
    for r in rec["results"]:
        assert 0 <= r["metrics"]["top1"] <= 100 and r["metrics"]["top5"] >= r["metrics"]["top1"]
        assert r["counts"]["test_videos"] == 60
    assert rec["pretrain"]["steps"] == rec["pretrain"]["total_steps"] > 0 and not rec["pretrain"]["reused"]
    assert rec["versions"]["torch"] and rec["config"]["pretrain"]["epochs"] == 3
    assert took < 120, f"ci run took {took:.0f} s"
    # a second protocol run reuses the pre-trained encoder (same config hash)
    p = subprocess.run(_cmd(cache, runs), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "reusing pre-trained encoder" in p.stderr
    assert _record(runs)["pretrain"]["reused"] is True
    board = subprocess.run([sys.executable, "-m", "harness.cli", "leaderboard", "--profile", "ci"],
                           capture_output=True, text=True, env={**os.environ, "BENCH_CACHE_DIR": str(cache)})
    assert board.returncode == 0


def test_killed_pretraining_resumes_to_the_same_result(tmp_path, cache_dir, ci_manifest):
    extra = ("--set", "pretrain.epochs=6", "--set", "pretrain.checkpoint_every=4")
    ref_cache, ref_runs = _cache_with_data(tmp_path / "ref", cache_dir), tmp_path / "ref_runs"
    p = subprocess.run(_cmd(ref_cache, ref_runs, *extra), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    reference = _record(ref_runs)

    cache, runs = _cache_with_data(tmp_path / "kill", cache_dir), tmp_path / "kill_runs"
    proc = subprocess.Popen(_cmd(cache, runs, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list(cache.glob("checkpoints/*/last.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up, as with a pre-empted job
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not runs.exists() or not list(runs.glob("*.json"))  # no record from a killed run
    assert not list(cache.glob("checkpoints/*/encoder.pt"))

    p = subprocess.run(_cmd(cache, runs, *extra, "--resume"), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    resumed = _record(runs)
    assert 0 < resumed["pretrain"]["resumed_from_step"] < resumed["pretrain"]["total_steps"]
    for a, b in zip(reference["results"], resumed["results"]):
        assert a["task"] == b["task"] and a["metrics"] == b["metrics"]
