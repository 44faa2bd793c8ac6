"""`bench data verify <dataset>`: is a copy of a real dataset usable, and what is wrong with it?

Every annotated video is checked once (in parallel processes, with a progress bar): that it exists,
is not empty, has a video stream, decodes its first frame, decodes to its last frame (a truncated
file whose header promises more frames than it holds is caught here, not silently padded later) and
is at least one clip long. The annotation files are checked for lines the readers had to leave out
(unknown classes, paths leading outside the root), and the folder for video files no annotation
lists. The report names each file and the reason; a manifest (every listed file with its size, and a
hash of the list) goes to the cache so a result can name the exact copy. Checks are saved as they
finish, so an interrupted verify resumes where it stopped. The copy is usable when every split keeps a
readable video and loses no more than `data.max_bad_fraction` of them.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness.data import formats
from harness.errors import VideoDecodeError
from harness.progress import progress_bar
from harness.storage import atomic_json


def _last_frame_index(path: str, frames: int) -> int:
    """Index of the last frame that decodes: seek near the end the header promises, decode to the end."""
    import av

    from harness.data.video import video_stream

    with av.open(path) as c:
        s = video_stream(c, path)
        s.thread_count = 1
        fps = float(s.average_rate or s.guessed_rate or 1)
        start = s.start_time or 0
        c.seek(int(start + max(frames - 64, 0) / fps / s.time_base), stream=s, backward=True, any_frame=False)
        last = -1
        for f in c.decode(s):
            last = int(round((f.pts - start) * s.time_base * fps)) if f.pts is not None else last + 1
        return last


def check_video(path: str, min_frames: int) -> dict:
    """What is wrong with one video, if anything: {"status": ok|missing|empty|unreadable|truncated|short, ...}."""
    from harness.data.video import decode_frames, probe

    if not os.path.exists(path):
        return {"status": "missing", "reason": "no such file"}
    if os.path.getsize(path) == 0:
        return {"status": "empty", "reason": "zero-byte file"}
    try:
        info = probe(path)
        decode_frames(path, [0])
        last = _last_frame_index(path, info.num_frames)
    except VideoDecodeError as e:
        return {"status": "unreadable", "reason": str(e).split(": ", 1)[-1]}
    except Exception as e:  # av raises several types; all mean the file cannot be read to its end
        return {"status": "unreadable", "reason": f"{type(e).__name__}: {e}"}
    out = {"frames": info.num_frames, "fps": info.fps, "width": info.width, "height": info.height}
    if info.num_frames and last < info.num_frames - 1 - max(1, info.num_frames // 50):
        return {**out, "status": "truncated",
                "reason": f"the header says {info.num_frames} frames, it decodes to frame {last}"}
    if info.num_frames < min_frames:
        return {**out, "status": "short", "reason": f"{info.num_frames} frames, one clip needs {min_frames}"}
    return {**out, "status": "ok"}


def _check(args: tuple[str, int]) -> dict:
    return check_video(*args)


def _stamp(path: Path) -> list[int]:
    try:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return [-1, 0]


def _check_all(name: str, root: Path, rels: list[str], min_frames: int, cache_root: Path,
               progress: bool) -> dict[str, dict]:
    """`check_video` of every file, in parallel; results are saved as they come (every 64 files, atomically)
    with each file's size and modification time, so an interrupted verify resumes where it stopped and a
    file that changed is checked again."""
    state_path = cache_root / "verify" / f"{name}-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("min_frames") != min_frames:
        state = {"min_frames": min_frames, "files": {}}
    done = {rel: r["result"] for rel, r in state["files"].items() if r["stamp"] == _stamp(root / rel)}
    todo = [rel for rel in rels if rel not in done]
    bar = progress_bar(len(rels), len(rels) - len(todo), f"verifying {name}", "video", progress)
    state_path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        state["files"] = {rel: {"stamp": _stamp(root / rel), "result": r} for rel, r in done.items()}
        atomic_json(state_path, state)

    jobs = [(str(root / rel), min_frames) for rel in todo]
    pool = ProcessPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) if len(jobs) > 32 else None
    try:
        results = pool.map(_check, jobs, chunksize=8) if pool else map(_check, jobs)
        for n, (rel, r) in enumerate(zip(todo, results), 1):
            done[rel] = r
            bar.update()
            if n % 64 == 0:
                save()
    finally:
        save()
        if pool:
            pool.shutdown(cancel_futures=True)
        bar.close()
    return {rel: done[rel] for rel in rels}


@dataclass
class Report:
    name: str
    root: Path
    classes: int
    splits: dict[str, dict[str, int]]  # split -> status -> count
    per_class: dict[str, Counter]  # split -> class index -> readable videos
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, where, why)
    summary: dict = field(default_factory=dict)
    usable: bool = True
    verdict: str = ""
    manifest: Path | None = None

    def text(self) -> str:
        lines = [f"{self.name} at {self.root}: {self.classes} classes"]
        for s, counts in self.splits.items():
            per = self.per_class[s].values()
            spread = f"; readable per class {min(per)}-{max(per)}" if per else ""
            lines.append(f"  {s}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v) + spread)
        if self.summary:
            lines.append("  " + ", ".join(f"{k} {v}" for k, v in self.summary.items()))
        if self.problems:
            lines.append(f"{len(self.problems)} problems:")
            lines += [f"  {kind:12} {where}: {why}" for kind, where, why in self.problems]
        if self.manifest:
            lines.append(f"manifest: {self.manifest}")
        lines.append(self.verdict)
        return "\n".join(lines)


def verify(name: str, listing: formats.Listing, cache_root: Path, min_frames: int, max_bad_fraction: float,
           progress: bool = True) -> Report:
    root = listing.videos_dir.resolve()
    listed = sorted({rel for items in listing.splits.values() for rel, _, _ in items})
    inside = [rel for rel in listed if (root / rel).resolve().is_relative_to(root)]
    checked = _check_all(name, root, inside, min_frames, Path(cache_root), progress)
    report = Report(name, root, len(listing.classes), {}, {})
    for where, why in listing.problems:
        report.problems.append(("annotation", where, why))
    for rel in sorted(set(listed) - set(inside)):
        report.problems.append(("outside root", rel, "the annotated path leads outside the dataset folder"))
    for rel, r in checked.items():
        if r["status"] != "ok":
            report.problems.append((r["status"], rel, r["reason"]))
    on_disk = {os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names
               if os.path.splitext(n)[1] in formats.VIDEO_EXTENSIONS}
    for rel in sorted(on_disk - set(listed)):
        report.problems.append(("unannotated", rel, "a video file no annotation lists"))
    reasons = []
    for s, items in listing.splits.items():
        counts = Counter(checked.get(rel, {"status": "outside root"})["status"] for rel, _, _ in items)
        report.splits[s] = {"annotated": len(items), **counts}
        report.per_class[s] = Counter(label for rel, label, _ in items if checked.get(rel, {}).get("status") == "ok")
        bad = len(items) - counts["ok"]
        if items and counts["ok"] == 0:
            reasons.append(f"split {s!r} has no readable video")
        elif items and bad > max_bad_fraction * len(items):
            reasons.append(f"split {s!r} loses {bad} of {len(items)} videos, more than data.max_bad_fraction="
                           f"{max_bad_fraction}")
    good = [r for r in checked.values() if r["status"] in ("ok", "short")]
    if good:
        seconds = [r["frames"] / r["fps"] for r in good if r["fps"]]
        report.summary = {
            "duration s (min/median/max)": "/".join(f"{x:.1f}" for x in (min(seconds), statistics.median(seconds),
                                                                          max(seconds))) if seconds else "?",
            "fps": ", ".join(f"{k:g} ({v})" for k, v in Counter(round(r["fps"], 2) for r in good).most_common(4)),
            "sizes": ", ".join(f"{w}x{h} ({v})" for (w, h), v in
                               Counter((r["width"], r["height"]) for r in good).most_common(4))}
    files = [{"path": rel, "size": (root / rel).stat().st_size} for rel in inside if (root / rel).exists()]
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    report.manifest = Path(cache_root) / "manifests" / f"{name}-{digest}.json"
    report.manifest.parent.mkdir(parents=True, exist_ok=True)
    atomic_json(report.manifest, {"name": name, "root": str(root), "hash": digest, "files": files,
                                  "problems": report.problems})
    report.usable = not reasons
    report.verdict = ("usable: runs skip and count the problem videos" if report.usable and report.problems
                      else "usable" if report.usable else "NOT usable: " + "; ".join(reasons))
    return report
