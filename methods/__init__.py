"""Pre-training methods, one module each; importing this package registers them all."""
from methods import random_init, rho_byol  # noqa: F401
