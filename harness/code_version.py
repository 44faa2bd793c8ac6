"""Code versions of the training and evaluation paths, so results are reused only by the same code.

A pre-trained encoder is keyed by, among other things, the version of the code that trained it:
the shared training path (engine, data path, backbones, method building blocks) and the method's
own module. A run record carries the same for the protocol that scored it, and the leaderboard
never averages runs of different versions. Versions are numbers bumped by hand in
`code_versions.json` when a change alters what is learned or measured. So that a change cannot
slip through unbumped, the file also records a digest of each component's source (its syntax
tree without docstrings and comments); `tests/test_code_version.py` fails when a digest is stale,
and the author then decides: bump the version if results change, and record the new digest either
way with `python -m harness.code_version --update`.

The digest is over the files' contents, not their paths, but the import lines are part of the tree: moving
a file (or a function between files of one component) changes the digest of every file that imports it.
A move changes no number, so it is recorded with `--update` and no version bump; the keys of cached
encoders, features and fits use the versions alone, so everything cached before a move is reused after it.

Modules that are not listed (a plugin's method) are versioned by their digest alone, so any
change to them invalidates their checkpoints.
"""
from __future__ import annotations

import ast
import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

from harness import catalog

ROOT = Path(__file__).resolve().parent.parent  # the folder holding harness/, methods/, protocols/
VERSIONS_PATH = Path(__file__).resolve().parent / "code_versions.json"

_DATA_PATH = ("harness/data/datasets.py", "harness/data/transforms.py", "harness/data/sampling.py",
              "harness/data/video.py", "harness/data/formats.py", "harness/data/real.py", "harness/models/encoder.py",
              "harness/models/backbones.py", "harness/models/vimpac.py", "harness/models/vq.py", "harness/models/vatt.py",
              "harness/models/clipbert.py", "harness/models/text.py")
SHARED = {
    # what every pre-training runs through
    "training": (*_DATA_PATH, "harness/engine.py", "harness/optim.py", "harness/distributed.py", "methods/base.py",
                 "methods/heads.py", "methods/losses.py", "methods/momentum.py"),
    # what every protocol runs through
    "eval": (*_DATA_PATH, "protocols/base.py", "protocols/multiview.py", "protocols/frozen.py", "protocols/trained.py"),
}


def module_file(module: str) -> Path:
    """The source file of a module: ours by path (nothing imported), a plugin's through its import spec."""
    ours = ROOT / (module.replace(".", "/") + ".py")
    if ours.exists():
        return ours
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"no source file for module {module!r}")
    return Path(spec.origin)


def source_digest(files: list[Path] | tuple[Path, ...]) -> str:
    """A digest of the files' syntax trees without docstrings: comments, formatting and docs do not count."""
    h = hashlib.sha256()
    for f in files:
        tree = ast.parse(Path(f).read_text(), filename=str(f))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        h.update(ast.dump(tree, include_attributes=False).encode())
    return h.hexdigest()[:16]


def components() -> dict[str, tuple[Path, ...]]:
    """Every versioned component and its source files: the shared paths, each method and each protocol."""
    out = {k: tuple(ROOT / f for f in v) for k, v in SHARED.items()}
    for kind, registry in (("method", catalog.METHODS), ("protocol", catalog.PROTOCOLS)):
        for name in registry.names():
            out[f"{kind}:{name}"] = (module_file(registry.module(name)),)
    return out


@lru_cache(maxsize=1)
def recorded() -> dict[str, dict]:
    return json.loads(VERSIONS_PATH.read_text())


def version(component: str) -> str:
    """The recorded version of a component, or `d<digest>` for one that is not recorded (plugins)."""
    entry = recorded().get(component)
    if entry is not None:
        return str(entry["version"])
    return "d" + source_digest(components()[component])


def pretrain_version(method: str) -> str:
    """Version of the code that pre-trains `method`, e.g. "1.2" (shared training path 1, method 2)."""
    return f"{version('training')}.{version(f'method:{method}')}"


def protocol_version(protocol: str) -> str:
    """Version of the code that scores with `protocol`, e.g. "1.1"."""
    return f"{version('eval')}.{version(f'protocol:{protocol}')}"


def stale() -> dict[str, tuple[str | None, str]]:
    """Components whose recorded digest differs from their source now: name -> (recorded, current)."""
    rec = recorded()
    out = {}
    for name, files in components().items():
        now = source_digest(files)
        was = rec.get(name, {}).get("digest")
        if was != now:
            out[name] = (was, now)
    return out


def update() -> list[str]:
    """Record the current digests (versions stay as they are; new components start at 1)."""
    rec = dict(recorded())
    changed = []
    for name, files in components().items():
        now = source_digest(files)
        entry = dict(rec.get(name, {"version": 1}))
        if entry.get("digest") != now:
            changed.append(name)
        entry["digest"] = now
        entry["files"] = [f.relative_to(ROOT).as_posix() for f in files]
        rec[name] = entry
    VERSIONS_PATH.write_text(json.dumps(dict(sorted(rec.items())), indent=1) + "\n")
    recorded.cache_clear()
    return changed


def main(argv: list[str]) -> int:
    if argv[1:] == ["--update"]:
        changed = update()
        print("recorded new digests for: " + (", ".join(changed) if changed else "(nothing changed)"))
        return 0
    s = stale()
    for name in components():
        print(f"{name:24} version {version(name):>4}  {'STALE: source changed' if name in s else 'ok'}")
    return 1 if s else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
