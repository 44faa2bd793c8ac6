"""The documentation's examples run as written: each file block is saved as given, each `bench` command
is run from that folder, and each must write a run record."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(doc: Path) -> tuple[dict[str, str], list[str]]:
    """Files (blocks whose first line is `# <name>` with a dot in it) and the `bench run` commands of the
    shell blocks that follow the first file (earlier ones are usage summaries, not an example)."""
    files, commands = {}, []
    for lang, body in BLOCK.findall(doc.read_text()):
        first = body.splitlines()[0] if body.strip() else ""
        m = re.match(r"# ([\w.-]+\.(py|toml))\b", first)
        if m and lang in ("python", "toml"):
            files[m.group(1)] = body
        elif lang == "bash" and files:
            commands += [line for line in body.splitlines() if line.startswith("bench run ")]
    return files, commands


def _video_lists(ci_manifest: Path, root: Path) -> None:
    """The dataset example's input: the ci videos listed as 'path label' lines."""
    root.mkdir()
    body = json.loads(ci_manifest.read_text())
    for split in ("train", "test"):
        (root / split).symlink_to(ci_manifest.parent / split)
        lines = [f"{v['path']} {v['labels']['digit']}" for v in body["videos"] if v["split"] == split]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.e2e
@pytest.mark.parametrize("doc", ["README.md", "docs/extending.md"])
def test_examples_run_as_written(doc, tmp_path, cache_dir, ci_manifest):
    files, commands = blocks(ROOT / doc)
    assert files and commands, f"{doc} has no runnable example"
    work = tmp_path / "work"
    work.mkdir()
    for name, body in files.items():
        (work / name).write_text(body.replace("/path/to/your/videos", str(tmp_path / "videos")))
    _video_lists(ci_manifest, tmp_path / "videos")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "datasets").symlink_to(cache_dir / "datasets")
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache)}
    script = Path(sys.executable).parent / "bench"  # the installed entry point: plugins found from bench.toml's folder
    bench = [str(script)] if script.exists() else [sys.executable, "-m", "harness.cli"]
    for n, command in enumerate(commands, 1):
        argv = [*bench, *shlex.split(command)[1:], "-q"]
        p = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"{command}\n{p.stderr[-3000:]}"
        assert len(list((work / "results" / "runs").glob("*.json"))) == n


def test_the_hooks_extending_md_names_have_the_signatures_it_shows():
    """`name(args)` in docs/extending.md, for every hook a base class declares: the same parameters, so the
    prose cannot drift from the code (it once showed `after_step(progress)` for `after_step(info)`)."""
    import inspect

    from harness.data.source import Dataset, DatasetConfig
    from harness.models.encoder import Encoder
    from methods.base import Method
    from protocols.base import Protocol

    text = (ROOT / "docs" / "extending.md").read_text()
    shown = set(re.findall(r"`(\w+)\(([\w, ]*)\)`", text))
    checked, wrong = [], []
    for name, args in shown:
        for cls in (Method, Encoder, Protocol, Dataset, DatasetConfig):
            hook = getattr(cls, name, None)
            if not callable(hook) or name.startswith("_"):
                continue
            params = [p for p in inspect.signature(hook).parameters if p not in ("self", "cls")]
            documented = [a.strip() for a in args.split(",") if a.strip()]
            checked.append(f"{cls.__name__}.{name}")
            if params != documented:
                wrong.append(f"{cls.__name__}.{name}({', '.join(params)}) is shown as {name}({args})")
    assert len(checked) >= 8, checked
    assert not wrong, wrong
