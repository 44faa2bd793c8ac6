"""`bench run --launcher`: the run as a submitit job (the local executor stands in for Slurm here); a
pre-empted job is requeued and resumes from its last checkpoint."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from harness.cli import main
from harness.launch import SlurmOptions, submit

pytestmark = pytest.mark.e2e


def test_a_preempted_job_is_requeued_and_resumes_from_its_checkpoint(tmp_path, cache_dir, ci_manifest):
    from submitit.local.local import LocalJobEnvironment
    from test_distributed import _descendants

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "datasets").symlink_to(cache_dir / "datasets")
    argv = ["-m", "rho_moco", "--protocol", "linear-cached", "-p", "ci", "-q", "--set", f"run.cache_dir='{cache}'",
            "--set", "pretrain.epochs=40", "--set", "pretrain.checkpoint_every=4", "--results-dir", str(tmp_path / "r")]
    job = submit(argv, SlurmOptions("local", 1, 0, "", "0:10", tmp_path / "jobs"), main)
    deadline = time.time() + 240
    while not list(cache.glob("checkpoints/*/last.pt")) and time.time() < deadline and not job.done():
        time.sleep(0.02)
    for pid in _descendants(job._process.pid):  # Slurm's warning signal, as on pre-emption or time-out
        os.kill(pid, LocalJobEnvironment._usr_sig())
    assert job.result() == 0
    (path,) = (tmp_path / "r" / "runs").glob("*.json")
    rec = json.loads(path.read_text())
    assert 0 < rec["pretrain"]["resumed_from_step"] < rec["pretrain"]["total_steps"] == 160
    log = job.stdout() + (job.stderr() or "")
    assert "Requeued job" in log and f"resuming from step {rec['pretrain']['resumed_from_step']}" in log


def test_the_cli_submits_and_says_where_things_go(tmp_path, cache_dir, ci_manifest):
    cmd = [sys.executable, "-m", "harness.cli", "run", "-m", "random_init", "--protocol", "knn", "-p", "ci", "-q",
           "--set", f"run.cache_dir='{cache_dir}'", "--results-dir", str(tmp_path), "--launcher", "local",
           "--time", "0:05"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "submitted job" in p.stdout and "_log.out" in p.stdout and str(tmp_path / "runs") in p.stdout
    deadline = time.time() + 120
    while not list((tmp_path / "runs").glob("*.json")) and time.time() < deadline:
        time.sleep(0.2)
    assert list((tmp_path / "runs").glob("*.json"))
    bad = subprocess.run([*cmd[:-2], "--time", "soon"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--time 'soon': write hours:minutes" in bad.stderr


def test_a_suite_submits_one_job_per_encoder(tmp_path, cache_dir, ci_manifest):
    cmd = [sys.executable, "-m", "harness.cli", "suite", "rho", "-p", "ci", "--only", "method=rho_simclr",
           "--only", "rho=1,2", "--results-dir", str(tmp_path), "--launcher", "local", "--time", "0:10"]
    env = {**os.environ, "BENCH_CACHE_DIR": str(tmp_path / "cache")}
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "datasets").symlink_to(cache_dir / "datasets")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert "submitted 2 jobs for 4 runs (0 already recorded)" in p.stdout  # ρ = 1 and 2: two encoders
    deadline = time.time() + 300
    while len(list((tmp_path / "runs").glob("*.json"))) < 4 and time.time() < deadline:
        time.sleep(0.5)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4
    again = subprocess.run([*cmd[:-4], "--dry-run"], capture_output=True, text=True, timeout=120, env=env)
    assert "0 runs to do, 4 already recorded" in again.stderr
