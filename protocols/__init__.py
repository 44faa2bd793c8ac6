"""Evaluation protocols, one module each; importing this package registers them all."""
from protocols import linear  # noqa: F401
