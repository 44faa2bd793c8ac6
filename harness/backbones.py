"""The encoder contract under the path plugins were first told to import it from (`docs/extending.md`); the
networks themselves live in `harness.models`."""
from harness.models.encoder import ClipSpec, Encoder

__all__ = ["ClipSpec", "Encoder"]
