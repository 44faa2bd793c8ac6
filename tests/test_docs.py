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


# ----------------------------------------------------------------------------- every documented command

PLACEHOLDER = re.compile(r"^(M|S|R|N|P|B|NAME|METHOD|KEY|VALUE|DIR|FILE|POINTS|\.\.\.)$")


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for every `bench ...` line of a code block and every inline `bench ...` span in the
    README and docs/: continuation lines joined, comments cut, `[optional]` parts and `a|b` alternatives
    reduced to their first form."""
    out = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        lines = []
        for _, body in BLOCK.findall(text):
            joined = re.sub(r"\\\n\s*", " ", body)
            lines += [ln for ln in joined.splitlines() if ln.startswith("bench ")]
        lines += re.findall(r"`(bench [^`]+)`", text)
        for line in lines:
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(r"\[([^\[\]]*)\]", r"\1", line)  # an optional part: shown
            line = re.sub(r"(\S+?)\|\S+", r"\1", line) if "'" not in line and '"' not in line else line
            out.append((doc.name, line))
    return out


def _command(group, words: list[str]):
    """The (sub)command `words` name and the words after it; typer vendors its own click, so groups are
    told by their `commands`."""
    cmd, used = group, 0
    while hasattr(cmd, "commands") and used < len(words) and words[used] in cmd.commands:
        cmd, used = cmd.commands[words[used]], used + 1
    return cmd, words[used:]


def test_every_documented_command_names_real_commands_options_and_settings():
    """Each `bench` command in the README and docs/ names a command that exists, options it has, and `--set`
    keys the configuration resolves (under its own profile and method); a doc naming a flag or setting that
    no longer exists fails here. Placeholders (M, S, /path/to/...) are allowed where a value goes."""
    import typer

    import harness.cli  # noqa: F401  (registers every command)
    from harness.cli.app import app
    from harness.config import load_config
    from harness.errors import ConfigError

    group = typer.main.get_command(app)
    problems, checked, runnable = [], 0, []
    for where, line in documented_commands():
        try:
            words = shlex.split(line)[1:]
        except ValueError as e:
            problems.append(f"{where}: {line}: cannot be split ({e})")
            continue
        if not words or words[0] in ("...",):
            continue
        cmd, rest = _command(group, words)
        if hasattr(cmd, "commands"):
            problems.append(f"{where}: {line}: no command {' '.join(words[:2])!r}")
            continue
        opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        sets, method, protocol, profile = [], None, None, "ci"
        it = iter(range(len(rest)))
        for i in it:
            w = rest[i]
            if not w.startswith("-") or w == "-":
                continue
            name = w.split("=", 1)[0]
            if name not in opts:
                problems.append(f"{where}: {line}: {cmd.name} has no option {name}")
                continue
            value = rest[i + 1] if "=" not in w and i + 1 < len(rest) else w.partition("=")[2]
            if name in ("--set", "-s"):
                sets.append(value)
            elif name in ("--method", "-m"):
                method = value
            elif name == "--protocol":
                protocol = value
            elif name in ("--profile", "-p"):
                profile = value
        checked += 1
        if cmd.name in ("list", "show") and not any(PLACEHOLDER.match(w) for w in words):
            runnable.append((where, line, words))
        if cmd.name in ("run", "suite", "perf", "regress") or sets:
            if PLACEHOLDER.match(method or "") or any(PLACEHOLDER.match(part) for s in sets for part in s.split("=", 1)):
                continue
            try:
                load_config(profile if not PLACEHOLDER.match(profile) else "ci", sets,
                            method=method if cmd.name != "suite" else None, protocol=protocol)
            except ConfigError as e:
                if not re.search(r"/(path/to|data)/", line) and "two_view" not in line and "centroid" not in line \
                        and "video-list" not in line:
                    problems.append(f"{where}: {line}: {e}")
    from harness.cli import main

    for where, line, words in runnable:  # the commands that need no data run for real
        if main(words) != 0:
            problems.append(f"{where}: {line}: exit code not 0")
    assert checked > 60 and len(runnable) >= 3
    assert not problems, "\n".join(problems)
