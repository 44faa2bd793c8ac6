"""A run's parts built by name from a configuration: the encoder, the method around it, the protocol. The
catalog names them; this is where a name becomes an object (models never look themselves up)."""
from __future__ import annotations

from typing import Any

from harness import catalog
from harness.config.sections import ClipConfig
from harness.models.encoder import ClipSpec, Encoder


def build_encoder(name: str, cfg: Any, clip: ClipConfig) -> Encoder:
    """Construct a registered encoder from its options and the profile's clip settings."""
    return catalog.BACKBONES.get(name)(cfg, ClipSpec.from_config(clip))


def build_parts(cfg) -> tuple[Encoder, Any, Any]:
    """The selected encoder (untrained), the selected method built around it and the selected protocol."""
    encoder = build_encoder(cfg.backbone.name, cfg.backbone_cfg, cfg.backbone.clip)
    method = catalog.METHODS.get(cfg.method)(encoder, cfg.method_cfg)
    protocol = catalog.PROTOCOLS.get(cfg.protocol)(cfg.protocol_cfg)
    return encoder, method, protocol
