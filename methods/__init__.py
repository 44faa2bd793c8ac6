"""Pre-training methods, one module each; `harness.catalog` names them (nothing is imported here)."""
