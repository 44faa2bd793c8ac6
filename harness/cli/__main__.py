"""`python -m harness.cli ...`: what torchrun starts for each process of `bench run --nproc N`."""
import sys

from harness.cli import main

sys.exit(main())
