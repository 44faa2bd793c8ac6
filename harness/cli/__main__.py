"""`python -m harness.cli ...`: what torchrun starts for each process of `bench run --nproc N`."""
import os
import sys

if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun worker: it dies with its launcher, never an orphan
    from harness.distributed import die_with_parent

    die_with_parent()

from harness.cli import main  # noqa: E402  (after the worker is tied to its launcher)

sys.exit(main())
