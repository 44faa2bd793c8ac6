"""What the integrity checks cost a warm run: `bench run` with everything cached (encoder, features, fits),
timed with the checks as they are and with them switched off in the same process layout, in interleaved
rounds (ratios within a round: a busy machine moves both sides alike).

The checks: every cached file's sha256 checked when read (`harness.storage.read_verified`), and every
moving-digits file a run reads hashed once per copy and then checked by size and modification time
(`harness.data.manifest.verify(..., remember=...)`). "Off" reads cached files without the hash and checks
the data files by size only, as the harness did before.

    python tools/integrity_cost.py [--rounds 3] [-- bench run arguments]
    (default arguments: run --method rho_byol --profile embedded -q)
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OFF = """
import sys
from pathlib import Path
import harness.storage as storage, harness.data.manifest as manifest

# read_verified compares file_sha256 with the sidecar: answering with the sidecar skips the hash everywhere
storage.file_sha256 = lambda p: storage.digest_path(Path(p)).read_text().strip()
size_only = manifest.verify
manifest.verify = lambda root, entries, full, remember=None: size_only(root, entries, False)
import harness.data.moving_digits as md
md.verify = manifest.verify
from harness.cli.app import main
sys.exit(main(sys.argv[1:]))
"""

ON = "import sys\nfrom harness.cli.app import main\nsys.exit(main(sys.argv[1:]))\n"


def timed(code: str, args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    argv = sys.argv[1:]
    rounds = 3
    if argv[:1] == ["--rounds"]:
        rounds, argv = int(argv[1]), argv[2:]
    args = argv[argv.index("--") + 1:] if "--" in argv else ["run", "--method", "rho_byol", "--profile", "embedded",
                                                              "-q"]
    timed(ON, args)  # warm: everything cached, checksums recorded
    on, off = [], []
    for _ in range(rounds):
        on.append(timed(ON, args))
        off.append(timed(OFF, args))
    ratio = statistics.median(a / b for a, b in zip(on, off))
    print(f"bench {' '.join(args)}: with checks {statistics.median(on):.2f} s, without {statistics.median(off):.2f} s "
          f"(medians of {rounds} interleaved rounds); with / without = {ratio:.3f}")


if __name__ == "__main__":
    main()
