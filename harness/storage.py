"""Files the harness writes, and the names it gives them.

- Atomic writes: whatever a reader finds under a name is complete, whenever a writer is killed
  (`atomic_write`, and its JSON and torch forms).
- Checksums: a cached file carries its sha256 beside it (`<name>.sha256`) and is read back only through
  `read_verified`, which sets a damaged one aside and has it built again.
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

DIGEST_SUFFIX = ".sha256"


def digest_path(path: Path) -> Path:
    """Where the checksum of a cached file is kept: beside it, `<name>.sha256`."""
    return path.with_name(path.name + DIGEST_SUFFIX)


def atomic_write(path: Path, write: Callable[[IO], None], binary: bool = False, digest: bool = False) -> None:
    """Call `write` on a temporary file in the same folder, fsync, then rename it over `path`. A failed
    write (a full disk, an exception in `write`) removes the temporary file and leaves `path` as it was.
    With `digest`, the finished bytes' sha256 goes to `digest_path(path)` before the rename, so a file and its
    checksum never disagree unnoticed (`read_verified` checks them)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sweep_temp(path.parent, path.name)
    try:
        with open(tmp, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if digest:
            sha = file_sha256(tmp)
            atomic_write(digest_path(path), lambda f: f.write(sha))
        os.replace(tmp, path)
    except OSError as e:  # a full disk inside torch.save, a folder that vanished: exit 5, not a traceback
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path} could not be written ({describe_os_error(e)}); the file is as it was") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sweep_temp(folder: Path, name: str = "*") -> int:
    """Remove the temporary files (`.<name>.<pid>.tmp`) that writers killed mid-write left in `folder`:
    those whose process is gone. Returns how many went."""
    gone = 0
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        pid = tmp.name[:-len(".tmp")].rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            gone += 1
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def atomic_json(path: Path, obj: Any, digest: bool = False) -> None:
    """Write JSON atomically (see `atomic_write`); `digest` for a cached file read back with `read_verified`."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=1), digest=digest)


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` atomically with its checksum beside it, creating its folder (see
    `atomic_write`): every tensor file the harness writes is a cache entry read back by `read_verified`."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(obj, f), binary=True, digest=True)


def read_verified(path: Path, read: Callable[[Path], Any], what: str, log: Callable[[str], None]) -> Any:
    """`read(path)` when the cached file is whole, else None so that the caller builds it again.

    Whole: its bytes match the checksum written with it, and `read` succeeds. A file whose bytes changed
    (same size or not), that is truncated or zeroed, or that `read` cannot parse is moved aside to
    `<name>.corrupt` with one line from `log` naming it. A file written before checksums were kept is read
    as it is and its checksum recorded from then on. A missing file is None, silently."""
    path = Path(path)
    if not path.exists():
        return None
    side = digest_path(path)
    try:
        want = side.read_text().strip() if side.exists() else None
        if want is not None and file_sha256(path) != want:
            return _set_aside(path, what, "its bytes do not match the checksum written with it", log)
    except OSError as e:
        return _set_aside(path, what, f"it cannot be read ({describe_os_error(e)})", log)
    try:
        obj = read(path)
    except Exception as e:  # truncated, zeroed, not the format: never trusted, never a traceback
        return _set_aside(path, what, f"it cannot be read ({type(e).__name__})", log)
    if want is None:
        sha = file_sha256(path)
        atomic_write(side, lambda f: f.write(sha))
    return obj


def _set_aside(path: Path, what: str, why: str, log: Callable[[str], None]) -> None:
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    digest_path(path).unlink(missing_ok=True)
    log(f"{what} {path}: {why}; moved to {aside.name}, building it again")
    return None


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
