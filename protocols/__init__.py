"""Evaluation protocols, one module each; `harness.catalog` names them (nothing is imported here)."""
