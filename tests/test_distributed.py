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


_BN_GROUPS = r'''
import os, sys, json
import torch, torch.nn as nn, torch.distributed as tdist
from harness import distributed as hd
from harness.engine import _sync_bn
rank, world, mode = int(sys.argv[1]), 2, sys.argv[2]
tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{sys.argv[3]}", rank=rank, world_size=world)
torch.manual_seed(0)
net = nn.ModuleDict({"backbone": nn.BatchNorm3d(1, momentum=1.0), "head": nn.BatchNorm1d(1, momentum=1.0)})
if mode != "none":
    _sync_bn(net, mode)
x = torch.full((4, 1, 1, 1, 1), float(rank))  # process r sees 4 clips of value r
with hd.synchronised():  # as the engine's training step
    net["backbone"](x)
    net["head"](x.flatten(1))
# momentum 1: the running mean is the batch mean of the BN's group; 0 or 1 alone, 0.5 over both processes
print(json.dumps({k: float(m.running_mean[0]) for k, m in net.items()}))
tdist.destroy_process_group()
'''


@pytest.mark.parametrize(("mode", "synced"), [("all", {"backbone", "head"}), ("heads", {"head"}), ("none", set())])
def test_bn_groups_of_each_sync_bn_mode_under_two_gloo_processes(tmp_path, mode, synced):
    """`pretrain.sync_bn`: "all" normalises every BN over both processes' clips (group 8), "heads" only the
    MLP heads' BatchNorm1d (the backbone's BN over each process's 4), "none" nothing (4 each)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "bn.py"
    script.write_text(_BN_GROUPS)
    procs = [subprocess.Popen([sys.executable, str(script), str(r), mode, str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
             for r in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    means = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    for name in ("backbone", "head"):
        group = 8 if name in synced else 4
        expected = [0.5, 0.5] if group == 8 else [0.0, 1.0]
        assert [m[name] for m in means] == pytest.approx(expected), (mode, name, means)


def _started(cache: Path, proc, deadline: float = 300) -> list[int]:
    """Wait until the workers are pre-training (a checkpoint folder exists); their process tree then."""
    end = time.time() + deadline
    while not list(cache.glob("checkpoints/*/scalars.csv")) and proc.poll() is None and time.time() < end:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    return _descendants(proc.pid)


def _gone(pids: list[int], within: float = 20) -> bool:
    end = time.time() + within
    while time.time() < end:
        if not any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _long(cache: Path, results: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "harness.cli", "run", "--method", "rho_simclr", "--protocol", "linear-cached",
           "--profile", "ci", "-q", "--set", f"run.cache_dir='{cache}'", "--set", "run.threads=1", "--set",
           "pretrain.epochs=400", "--results-dir", str(results), "--nproc", "2"]
    # Ctrl-C's default action, as in a terminal's foreground job: a suite started in the background of a
    # non-interactive shell inherits SIGINT ignored, and `bench` rightly keeps what it inherits
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_workers_die_with_a_killed_launcher_and_write_nothing(tmp_path, cache_dir, ci_manifest):
    """SIGKILL of `bench` alone (no chance to clean up): torchrun and its workers, which run in sessions of
    their own, die with it, and no record appears afterwards."""
    cache = _cache(tmp_path / "c", cache_dir)
    proc = _long(cache, tmp_path / "r")
    tree = _started(cache, proc)
    assert len(tree) >= 3  # torchrun and two workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone(tree), "orphaned processes survived the launcher"
    time.sleep(1)
    assert not list((tmp_path / "r").glob("runs/*.json"))


def test_ctrl_c_stops_every_process_with_one_line_and_exit_130(tmp_path, cache_dir, ci_manifest):
    cache = _cache(tmp_path / "c", cache_dir)
    proc = _long(cache, tmp_path / "r")
    tree = _started(cache, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends the foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("error: interrupted;")
    assert "Traceback" not in err, err[-2000:]
    assert _gone(tree)
