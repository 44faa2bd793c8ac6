"""Files the harness writes, and the names it gives them.

- Atomic writes: whatever a reader finds under a name is complete, whenever a writer is killed
  (`atomic_write`, and its JSON and torch forms).
- `check_writable`: a folder that cannot take a file fails in one line before any work starts.
- `content_key`: the one way a cache entry is named after what shapes it (a short hash of its
  settings as sorted JSON), so two call sites never name the same thing two ways.

Nothing here imports torch until a tensor file is written.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import IO, Any, Callable

from harness.errors import StorageError


def atomic_write(path: Path, write: Callable[[IO], None], binary: bool = False) -> None:
    """Call `write` on a temporary file in the same folder, fsync, then rename it over `path`. A failed
    write (a full disk, an exception in `write`) removes the temporary file and leaves `path` as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (see `atomic_write`)."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=1))


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` atomically, creating its folder (see `atomic_write`)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_key(payload: Any, length: int = 12) -> str:
    """A short hex name for `payload`: SHA-256 of its sorted-key JSON (values JSON cannot hold as their
    `str`), cut to `length` characters. Every cache key of the harness is made here."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:length]


def describe_os_error(e: OSError) -> str:
    """The reason of a file-system error in a few words."""
    return {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
            errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}.get(
        e.errno, e.strerror or str(e))


def check_writable(path: Path, what: str) -> None:
    """Fail now, with one line, if `path` could not take a file: a file in the way, a read-only or full
    file system. Creates nothing: the probe goes into the deepest folder that exists and is removed."""
    path = Path(path)
    probe_dir = path
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise StorageError(f"{what} {path}: {probe_dir} is a file, not a folder")
    probe = probe_dir / f".bench-write-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)  # a record's size: a full disk fails here, not after pre-training
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise StorageError(f"{what} {path} cannot be written ({describe_os_error(e)})") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
