"""Run records: one self-describing JSON per run, written atomically, read back with a line for each file
that is not one. What a record holds is built by `harness.report.record.build_record` (one docstring per key)."""
from __future__ import annotations

import json
import platform
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import StorageError
from harness.storage import atomic_write, describe_os_error, sweep_temp

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout holding harness/, methods/, protocols/

RECORD_KEYS = ("method", "protocol", "profile", "seed", "results", "identity", "code_version")


def versions() -> dict[str, str]:
    """Versions of what shapes the numbers: Python, torch (+CUDA/cuDNN), torchvision, PyAV, numpy."""
    import av
    import numpy
    import torch
    import torchvision

    v = {"harness": __version__, "python": platform.python_version(), "torch": torch.__version__,
         "torchvision": torchvision.__version__, "av": av.__version__, "numpy": numpy.__version__}
    if torch.cuda.is_available():
        v["cuda"] = str(torch.version.cuda)
        v["cudnn"] = str(torch.backends.cudnn.version())
        v["gpu"] = torch.cuda.get_device_name()
    return v


def git_commit() -> str:
    """The commit of the harness's own checkout (+dirty), or "unknown" for an installed copy."""
    root = ROOT
    if not (root / ".git").exists():
        return "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_record(record: dict[str, Any], directory: Path, outputs: dict[str, dict] | None = None) -> Path:
    """Write `record` under a unique name via temp file + fsync + rename: readers never see half a
    record and two runs finishing together cannot overwrite each other. `outputs` (per task, the per-video
    outputs) are written first, beside it, and the record names them (`per_video`)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"results folder {directory} cannot be created ({describe_os_error(e)})") from None
    sweep_temp(directory)  # records of runs killed mid-write: their temp files, never read as records
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    rid = record.setdefault("id", f"{stamp}-{record['method']}-{record['protocol']}-{uuid.uuid4().hex[:8]}")
    final = directory / f"{rid}.json"
    try:
        if outputs:
            from harness.report.outputs import VERSION, write_outputs

            record["per_video"] = {"file": write_outputs(directory, rid, outputs), "version": VERSION}
        atomic_write(final, lambda f: json.dump(record, f, indent=1, default=str))
    except OSError as e:
        raise StorageError(f"run record {final} could not be written ({describe_os_error(e)}); nothing was saved") from None
    return final


def load_records(directory: Path) -> tuple[list[dict], list[str]]:
    """All complete run records in `directory`, and one line for each file that was skipped and why
    (temp files of runs in progress are not records and are ignored silently)."""
    records, skipped = [], []
    if not directory.exists():
        return records, skipped
    if not directory.is_dir():
        raise StorageError(f"results folder {directory} is a file, not a folder")
    for p in sorted(directory.glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            skipped.append(f"{p.name}: not valid JSON ({e})")
            continue
        except OSError as e:
            skipped.append(f"{p.name}: cannot be read ({describe_os_error(e)})")
            continue
        missing = [k for k in RECORD_KEYS if not isinstance(rec, dict) or k not in rec]
        if missing:
            skipped.append(f"{p.name}: not a run record of this harness version (missing {', '.join(missing)})")
            continue
        problem = record_problem(rec)
        if problem:
            skipped.append(f"{p.name}: {problem}; skipped")
            continue
        records.append(rec)
    return records, skipped


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)  # NaN and inf are numbers: shown as such


def _typed(value: Any, kind: Any) -> bool:
    """`kind`: a type, a tuple of types, "number", "number?" (or None), or ("list", item kind) /
    ("dict", value kind)."""
    if kind == "number":
        return _number(value)
    if kind == "number?":
        return value is None or _number(value)
    if isinstance(kind, tuple) and kind and kind[0] in ("list", "dict"):
        if kind[0] == "list":
            return isinstance(value, list) and all(_typed(v, kind[1]) for v in value)
        return isinstance(value, dict) and all(isinstance(k, str) and _typed(v, kind[1]) for k, v in value.items())
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


# what the readers (leaderboard, tables, compare, regress) take from a record, by field; optional ones may be absent
RECORD_FIELDS: dict[str, tuple[Any, bool]] = {
    "method": (str, True), "protocol": (str, True), "profile": (str, True), "seed": (int, True),
    "tasks": (("list", str), False), "results": (list, True), "identity": (dict, True), "code_version": (dict, True),
    "id": (str, False), "backbone": (str, False), "pretrain": ((dict, type(None)), False), "costs": (dict, False),
    "unreadable_videos": (("list", str), False), "finished": (str, False), "per_video": (dict, False),
    "versions": (dict, False),
}
RESULT_FIELDS: dict[str, tuple[Any, bool]] = {
    "task": (str, True), "metrics": (("dict", "number"), True), "ci95": (("dict", ("list", "number")), False),
    "costs": (("dict", "number?"), False), "counts": (dict, False),
}


def record_problem(rec: dict) -> str | None:
    """The first field of `rec` that a reader could not use (wrong type, missing), named by its path; None
    when the record is sound. Metric values may be NaN or infinite (a diverged run): they are numbers."""
    def check(d: dict, fields: dict, where: str) -> str | None:
        for key, (kind, required) in fields.items():
            if key not in d:
                if required:
                    return f"field {where}{key} is missing"
                continue
            if not _typed(d[key], kind):
                return f"field {where}{key} is {type(d[key]).__name__} {str(d[key])[:40]!r}, not what a record holds"
        return None

    problem = check(rec, RECORD_FIELDS, "")
    if problem:
        return problem
    for part in ("encoder", "protocol"):
        if not isinstance(rec["identity"].get(part, {}), dict):
            return f"field identity.{part} is not a table"
    for part in ("pretrain", "protocol"):
        if not isinstance(rec["code_version"].get(part), (str, type(None))):
            return f"field code_version.{part} is not a version string"
    for i, r in enumerate(rec["results"]):
        if not isinstance(r, dict):
            return f"field results[{i}] is not a table"
        problem = check(r, RESULT_FIELDS, f"results[{i}].")
        if problem:
            return problem
        if any(len(b) != 2 for b in r.get("ci95", {}).values()):
            return f"field results[{i}].ci95 holds an interval that is not [low, high]"
    return None


def build_record(cfg, results: list, card: dict, *, pretrain: dict, stages: dict, pretrain_key: str | None,
                 pretrain_version: str | None, protocol_version: str, scored_encoder: str, datasets: dict,
                 costs: dict, started: str) -> dict[str, Any]:
    """The run record (schema 2), every key of it here. `cfg` is the run's `Config`; `results` its protocol's
    `TaskResult`s; `card` the protocol's card (`Protocol.card`, with what it read).

    - `schema`: 2, the layout of this record.
    - `method`, `protocol`, `profile`, `backbone`, `seed`: what ran.
    - `tasks`: the tasks scored, in the protocol's order (`<task>@split<k>` for one official split).
    - `results`: per task its metrics (percent), costs, counts, unreadable videos, bootstrap CIs and extras.
    - `code_version`: of the training path that made the encoder (None without pre-training) and of the
      protocol; runs of different versions are never averaged.
    - `identity`: the settings that shape the encoder (`encoder`) and the measurement (`protocol`), flat;
      the leaderboard's rows are told apart by them.
    - `protocol_card`: how the number was measured (views, resolutions, splits, short and unreadable
      videos) and which encoder was scored (its key, or the file / the untrained encoder).
    - `datasets`: the identity of every copy the run read; `unreadable_videos`: what it left out.
    - `pretrain`: what pre-training did or reused (steps, time, loss curves, its own key and data).
    - `tokenizer`, `text_tokenizer`: the reports of an encoder's or a method's stage, when it has one.
    - `costs`: seconds in total, pre-training and protocol, device, precision, threads, processes.
    - `config`, `config_files`: the whole resolved configuration and the files it came from.
    - `pretrain_key`: names the cached encoder (None without pre-training).
    - `versions`, `git_commit`, `host`, `started`, `finished`, `command`, `cwd`: where and when it ran.
    - `id`: added when the record is written (`write_record`); `per_video`: the file of per-video outputs
      written beside it (`report.outputs`), when the protocol gives them.
    """
    import os
    import sys
    from dataclasses import asdict

    unreadable = sorted({*pretrain.get("bad_videos", {}), *(p for r in results for p in r.bad_videos)})
    return {
        "schema": 2,
        "method": cfg.method, "protocol": cfg.protocol, "profile": cfg.profile, "backbone": cfg.backbone.name,
        "seed": cfg.run.seed, "tasks": [r.task for r in results],
        "results": [{k: v for k, v in asdict(r).items() if k != "outputs"} for r in results],
        "code_version": {"pretrain": pretrain_version, "protocol": protocol_version},
        "identity": {"encoder": cfg.encoder_identity(cfg.pretrains), "protocol": cfg.protocol_identity()},
        "protocol_card": {"protocol": cfg.protocol, **card, "scored_encoder": scored_encoder},
        "datasets": datasets, "unreadable_videos": unreadable,
        "pretrain": pretrain, **stages,
        "costs": costs,
        "config": cfg.to_dict(), "config_files": cfg.sources, "pretrain_key": pretrain_key,
        "versions": versions(), "git_commit": git_commit(), "host": platform.node(),
        "started": started, "finished": datetime.now(timezone.utc).isoformat(),
        "command": " ".join(sys.argv), "cwd": os.getcwd(),
    }
