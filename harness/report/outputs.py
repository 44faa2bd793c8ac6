"""Per-video outputs of a run: for each task and each aggregation, what every test video's metric is read
from (its predicted class, the rank and score of its true class; retrieval's first hit; a text query's rank).
They live beside the record as `<record id>.videos.json.gz` (compact, gzip'd JSON, written atomically before
the record that names them), so two runs scored on the same test videos can be compared video by video.

Version 1 layout: {"version": 1, "record": id, "tasks": {task: {"ids", "label", "views": {"all" | "1view":
{"pred", "true_rank", "true_score"} | {"first_hit"} | {"t2v_rank", "v2t_rank"}}}}}.
"""
from __future__ import annotations

import gzip
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.storage import atomic_write

VERSION = 1
SUFFIX = ".videos.json.gz"


def write_outputs(directory: Path, record_id: str, outputs: dict[str, dict]) -> str:
    """Write a run's per-video outputs beside its record; returns the file's name."""
    name = f"{record_id}{SUFFIX}"
    body = json.dumps({"version": VERSION, "record": record_id, "tasks": outputs}, separators=(",", ":"))
    atomic_write(Path(directory) / name, lambda f: f.write(gzip.compress(body.encode(), mtime=0)), binary=True)
    return name


def load_outputs(record: dict[str, Any], directory: Path) -> dict[str, dict] | None:
    """The per-video outputs a record names, by task; None for a record made before they were kept."""
    ref = record.get("per_video")
    if not isinstance(ref, dict) or not ref.get("file"):
        return None
    path = Path(directory) / ref["file"]
    try:
        stat = path.stat()
        body = _read(str(path), stat.st_mtime_ns, stat.st_size)
    except (OSError, EOFError, ValueError) as e:
        raise ConfigError(f"{path}: the per-video outputs of record {record.get('id')} cannot be read ({e})") from None
    if body.get("version") != VERSION:
        raise ConfigError(f"{path}: per-video outputs of version {body.get('version')}; this harness reads {VERSION}")
    return body["tasks"]


@lru_cache(maxsize=256)
def _read(path: str, mtime_ns: int, size: int) -> dict:
    """A file's parsed outputs, read once while it is unchanged: a leaderboard's ranks compare each record's
    outputs with several others'. Callers must not modify what it returns."""
    return json.loads(gzip.decompress(Path(path).read_bytes()))


_METRIC = re.compile(r"^(?:(?P<dir>t2v|v2t)_)?(?P<name>top|R@)(?P<k>\d+)(?P<one>_1view)?$")


def hits(task: dict, metric: str) -> tuple[list[str], list[int]]:
    """Per test video (or text query), whether it counts for `metric` (top1, top5_1view, R@10, t2v_R@5, ...):
    the ids and 0/1 hits whose mean is the metric."""
    m = _METRIC.match(metric)
    if not m:
        raise ConfigError(f"metric {metric!r} has no per-video form; use top1/top5, R@k or t2v_R@k/v2t_R@k, "
                          "each optionally with _1view")
    view = task["views"].get("1view" if m["one"] else "all")
    if view is None:
        raise ConfigError(f"metric {metric!r}: the outputs hold no {'1view' if m['one'] else 'all-views'} numbers")
    k = int(m["k"])
    if m["dir"]:
        ranks = view[f"{m['dir']}_rank"]
        return [str(i) for i in range(len(ranks))], [int(r <= k) for r in ranks]  # queries are caption/video indices
    if m["name"] == "top":
        return task["ids"], [int(r <= k) for r in view["true_rank"]]
    return task["ids"], [int(0 < r <= k) for r in view["first_hit"]]
