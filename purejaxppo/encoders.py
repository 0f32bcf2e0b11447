"""Observation encoders of one's own: the hook in front of each MLP (pure).

`PPOConfig.encoder` names one by import string (`mypackage.encoders:GridCNN`), for YAML
run configs; `make_train(config, encoder=GridCNN)` takes it directly. Either way it is a
zero-argument callable returning a Flax module `enc(obs) -> [B, F]`, called on observations
with one batch axis, leaves `[B, *leaf_shape]` (`ActorCritic.encoder`).
"""

from __future__ import annotations

import importlib
from typing import Any


def import_encoder(spec: str) -> Any:
    """The factory an import string `module:Attr` (attr may be dotted) names; a one-line
    `ValueError("encoder: ...")` when it cannot be imported or is not callable."""
    module_name, _, attr = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"encoder: cannot import {module_name} ({err}); put it on PYTHONPATH or run from "
            "the folder that holds it"
        ) from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"encoder: {module_name} has no attribute {attr}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(
            f"encoder: {spec} is a {type(target).__name__}, expected a Flax module class or a "
            "zero-argument factory of one"
        )
    return target


def resolve_encoder(config: Any, encoder: Any = None) -> Any:
    """The encoder factory of a run: `encoder` if given, else the one `config.encoder`
    names, else None (the default features)."""
    if encoder is not None:
        if config.encoder is not None:
            raise ValueError(
                f"encoder: both config.encoder ({config.encoder}) and encoder= were given; pass one"
            )
        if not callable(encoder):
            raise ValueError(
                f"encoder: expected a Flax module class or a zero-argument factory of one, got "
                f"{type(encoder).__name__}"
            )
        return encoder
    if config.encoder is None:
        return None
    return import_encoder(config.encoder)
