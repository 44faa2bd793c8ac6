"""Multi-process pre-training under `torchrun` (gloo on these CPUs): two processes, each reading half of
every global batch, learn what one process learns from the whole batch, and resume after a kill."""
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
import torch

from harness import distributed as dist

pytestmark = pytest.mark.e2e


def _cache(tmp: Path, shared: Path) -> Path:
    tmp.mkdir()
    (tmp / "datasets").symlink_to(shared / "datasets")  # own checkpoints: the two runs share a pre-training key
    return tmp


def _run(cache: Path, results: Path, method: str, *extra: str, nproc: int = 1, popen: bool = False):
    cmd = [sys.executable, "-m", "harness.cli", "run", "--method", method, "--protocol", "linear-cached",
           "--profile", "ci", "-q", "--set", f"run.cache_dir='{cache}'", "--set", "run.threads=1",
           "--results-dir", str(results), "--nproc", str(nproc), *extra]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    (path,) = list((results / "runs").glob("*.json"))
    return json.loads(path.read_text()), p.stderr


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _same_training(one: dict, two: dict) -> None:
    assert two["pretrain"]["processes"] == 2 and two["costs"]["processes"] == 2 and one["costs"]["processes"] == 1
    assert one["pretrain_key"] == two["pretrain_key"]  # global BatchNorm: the same encoder, whatever the count
    a, b = one["pretrain"]["loss_curve"], two["pretrain"]["loss_curve"]
    assert [s for s, _ in a] == [s for s, _ in b]
    for (step, x), (_, y) in zip(a, b):
        assert y == pytest.approx(x, rel=1e-3, abs=1e-4), f"step {step}: {x} vs {y}"
    for r1, r2 in zip(one["results"], two["results"]):  # one ci test video is 1.7 points
        assert r1["task"] == r2["task"] and abs(r1["metrics"]["top1"] - r2["metrics"]["top1"]) < 1.7


@pytest.mark.parametrize("method", ["rho_simclr", "rho_moco", "rho_swav", "rho_byol"])
def test_two_processes_learn_what_one_learns(method, tmp_path, cache_dir, ci_manifest):
    one, _ = _run(_cache(tmp_path / "c1", cache_dir), tmp_path / "r1", method)
    two, log = _run(_cache(tmp_path / "c2", cache_dir), tmp_path / "r2", method, nproc=2)
    assert log.count("pre-training done") == 1  # one voice: rank 0 logs, rank 0 writes the one record
    _same_training(one, two)


def test_a_killed_two_process_run_resumes_to_the_one_process_result(tmp_path, cache_dir, ci_manifest):
    extra = ("--set", "pretrain.epochs=6", "--set", "pretrain.checkpoint_every=4")
    one, _ = _run(_cache(tmp_path / "c1", cache_dir), tmp_path / "r1", "rho_moco", *extra)
    cache = _cache(tmp_path / "c2", cache_dir)
    proc = _run(cache, tmp_path / "r2", "rho_moco", *extra, nproc=2, popen=True)
    deadline = time.time() + 300
    while not list(cache.glob("checkpoints/*/last.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    tree = _descendants(proc.pid)  # torchrun starts its workers in sessions of their own
    for pid in [proc.pid, *tree]:  # torchrun and both workers, with no chance to clean up
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in tree):
        time.sleep(0.05)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not list(cache.glob("checkpoints/*/encoder.pt"))
    solo = tmp_path / "c3"  # the same checkpoint resumed by one process: any process count continues it
    shutil.copytree(cache, solo, symlinks=True)
    alone, _ = _run(solo, tmp_path / "r3", "rho_moco", *extra, "--resume")
    assert alone["pretrain"]["resumed_from_step"] > 0 and alone["costs"]["processes"] == 1
    two, log = _run(cache, tmp_path / "r2", "rho_moco", *extra, "--resume", nproc=2)
    assert 0 < two["pretrain"]["resumed_from_step"] < two["pretrain"]["total_steps"]
    assert f"resuming from step {two['pretrain']['resumed_from_step']}" in log
    _same_training(one, two)
    for r1, r3 in zip(one["results"], alone["results"]):
        assert abs(r1["metrics"]["top1"] - r3["metrics"]["top1"]) < 1.7
    for (_, x), (_, y) in zip(one["pretrain"]["loss_curve"], alone["pretrain"]["loss_curve"]):
        assert y == pytest.approx(x, rel=1e-3, abs=1e-4)


def test_global_batchnorm_is_plain_batchnorm_in_one_process():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm3d(4)
    x = torch.randn(6, 4, 2, 3, 3)
    g = dist.sync_batchnorm(torch.nn.Sequential(bn))[0]
    assert isinstance(g, dist.GlobalBatchNorm)
    with dist.synchronised():
        assert torch.equal(g(x), torch.nn.BatchNorm3d(4)(x))


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path, cache_dir, ci_manifest):
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "-m", "rho_byol", "--protocol", "knn", "-p", "ci",
                        "-q", "--set", "pretrain.batch_size=15", "--set", f"run.cache_dir='{tmp_path}'",
                        "--results-dir", str(tmp_path / "r"), "--nproc", "2"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode != 0 and "pretrain.batch_size 15 does not split over 2 processes" in p.stderr
