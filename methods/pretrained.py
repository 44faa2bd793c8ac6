"""`pretrained`: an encoder from a released checkpoint file, scored as it is (no pre-training here).

The reference rows of the papers' own models: the ρ study's released Slow R-50 checkpoints (PySlowFast
`.pyth`), pytorchvideo's model zoo, or an `encoder.pt` of this harness. The file is read when the run
starts, strictly (harness.models.checkpoints), so a file that does not fit fails before any work; its hash
names the encoder, so every score of it is keyed by the file's content.
"""
from __future__ import annotations

from harness.models.checkpoints import load_released
from methods.base import Method
from methods.configs import PretrainedConfig


class Pretrained(Method):
    def __init__(self, encoder, cfg: PretrainedConfig):
        super().__init__(encoder, cfg)
        self.format = load_released(encoder, cfg.path, cfg.format)
