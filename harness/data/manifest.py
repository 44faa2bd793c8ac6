"""Dataset manifests: the JSON file that lists a dataset copy's videos with their checksums.

A manifest is written last and atomically, so its presence means the copy is complete. Each entry
holds the file's size and SHA-256: a run checks sizes (cheap, every time), `bench data prepare`
checks the hashes (every byte). The copy as a whole is named by `checksum`, a hash over all entry
checksums: two copies with the same checksum hold the same bytes, and every run record names
the copy it used.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DataError
from harness.storage import file_sha256


def sha256_file(path: Path) -> str:
    return file_sha256(path)


def content_checksum(entries: list[dict]) -> str:
    """One hash naming the bytes of a whole copy: over the sorted (id, sha256) pairs of its videos."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e["id"]):
        h.update(f"{e['id']}:{e['sha256']}\n".encode())
    return h.hexdigest()[:16]


def labels_checksum(entries: list[dict]) -> str:
    """One hash naming what a copy says about its videos beyond their bytes: labels and captions, by id."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e["id"]):
        h.update(json.dumps([e["id"], e.get("labels"), e.get("caption"), e.get("narrations")], sort_keys=True).encode())
    return h.hexdigest()[:16]


def load_manifest(path: Path) -> dict:
    """Read and check a manifest; a damaged one is a DataError that says what is wrong and what to do."""
    path = Path(path)
    remedy = "remove it and run `bench data prepare` for this dataset again (add --rebuild to regenerate every file)"
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: manifest is missing; run `bench data prepare` for this dataset") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: manifest is damaged ({e}); {remedy}") from None
    videos = body.get("videos") if isinstance(body, dict) else None
    if not isinstance(videos, list) or not all(
            isinstance(v, dict) and {"id", "path", "split", "frames", "sha256"} <= v.keys() for v in videos):
        raise DataError(f"{path}: manifest is damaged (no valid 'videos' list); {remedy}")
    if body.get("checksum") not in (None, content_checksum(videos)):
        raise DataError(f"{path}: manifest is damaged (its entries do not match its checksum); {remedy}")
    if body.get("labels_checksum") not in (None, labels_checksum(videos)):
        raise DataError(f"{path}: manifest is damaged (its labels or captions do not match their checksum); {remedy}")
    return body


@dataclass
class Verification:
    """What a check of a copy against its manifest found."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # wrong size or wrong checksum

    @property
    def bad(self) -> list[str]:
        return self.missing + self.damaged

    def summary(self) -> str:
        if not self.bad:
            return f"{self.checked} files match the manifest"
        shown = ", ".join(self.bad[:3]) + (" ..." if len(self.bad) > 3 else "")
        return f"{len(self.missing)} missing and {len(self.damaged)} damaged of {self.checked} files ({shown})"


def verify(root: Path, entries: list[dict], full: bool, remember: Path | None = None) -> Verification:
    """Compare files with their entries: size only (`full=False`, a stat per file) or SHA-256 too.

    With `remember` (a JSON file in the cache), a file whose size and modification time are those of its
    last good check is not hashed again: a copy is hashed once, then only what changed since (any write
    moves the modification time), so a run can check every file it reads for the cost of a stat."""
    out = Verification(checked=len(entries))
    state = _read_state(remember) if full and remember else {}
    good: dict[str, list] = {}
    for e in entries:
        p = Path(root) / e["path"]
        try:
            st = p.stat()
        except FileNotFoundError:
            out.missing.append(e["path"])
            continue
        stamp = [st.st_size, st.st_mtime_ns, e["sha256"]]
        if "bytes" in e and st.st_size != e["bytes"]:
            out.damaged.append(e["path"])
        elif full and state.get(e["path"]) != stamp and sha256_file(p) != e["sha256"]:
            out.damaged.append(e["path"])
        else:
            good[e["path"]] = stamp
    if full and remember and good != {k: v for k, v in state.items() if k in good}:
        from harness.storage import atomic_json

        Path(remember).parent.mkdir(parents=True, exist_ok=True)
        atomic_json(Path(remember), {**state, **good})
    return out


def _read_state(path: Path) -> dict:
    try:
        body = json.loads(Path(path).read_text())
        return body if isinstance(body, dict) else {}
    except (OSError, ValueError):
        return {}  # no earlier check (or a damaged record of one): hash everything again
