"""The errors a user can cause, each with the exit code `bench` ends with.

They live apart from the modules that raise them so that the command line can map them to exit
codes without importing torch, and so that light modules (the config schemas) can raise them.

| code | meaning |
|---|---|
| 0 | success |
| 1 | an unexpected internal error (a bug: the traceback is printed) |
| 2 | a usage or configuration mistake, found before any work starts |
| 3 | data that is missing, damaged or unreadable |
| 4 | training failed (a non-finite loss or weights) |
| 5 | a file system problem (a folder that is read-only, full, or a file) |
| 130 | interrupted (Ctrl-C); what was written so far is complete |
"""
from __future__ import annotations


class BenchError(Exception):
    """Base of the errors `bench` reports as one line and an exit code."""

    exit_code = 1


class ConfigError(BenchError, ValueError):
    """A configuration or usage mistake: the message says which key, what is wrong and what is allowed."""

    exit_code = 2


class DataError(BenchError):
    """A dataset that is missing, damaged or malformed, or too many unreadable videos."""

    exit_code = 3


class VideoDecodeError(DataError):
    """A file that cannot be opened or decoded; the message names the file and the cause."""


class TrainingError(BenchError):
    """Training cannot go on; the message says where and what the last good checkpoint is."""

    exit_code = 4


class NonFiniteLossError(TrainingError):
    """Training produced NaN/inf (loss, gradients or weights)."""


class StorageError(BenchError):
    """A results or cache location that cannot be written."""

    exit_code = 5


EXIT_CODES = {0: "success", 1: "internal error (a bug)", 2: "usage or configuration mistake",
              3: "missing, damaged or unreadable data", 4: "training failed (non-finite values)",
              5: "file system problem (read-only, full, or not a folder)", 130: "interrupted"}
