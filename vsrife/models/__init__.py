"""Interpolation architectures by name, and strict loading of their weight files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, partial

import torch
from torch import Tensor

from ..errors import VfiError
from .layers import InterpolationNet
from .rife_v3_1 import RIFE31
from .rife_v3_5 import RIFE35
from .rife_v3_8 import RIFE38
from .rife_v4_0 import PLAIN_SHAPES, RIFE40
from .rife_v4_5 import RESIDUAL_SHAPES, RIFE45
from .rrin import RRIN, RRINOfficial

__all__ = ["ARCHITECTURES", "InterpolationNet", "NetTraits", "WeightsMismatchError", "build_model", "fitting_weights",
           "skeleton", "traits"]

# architecture name -> constructor of the untrained net; the registry names one for each model
ARCHITECTURES: dict[str, Callable[[], InterpolationNet]] = {
    **{name: partial(RIFE40, shape) for name, shape in PLAIN_SHAPES.items()},
    **{name: partial(RIFE45, shape) for name, shape in RESIDUAL_SHAPES.items()},
    "rife-3.1": RIFE31,
    "rife-3.5": RIFE35,
    "rife-3.8": RIFE38,
    "rrin": RRIN,
    "rrin-official": RRINOfficial,
    "rrin-fork": RRINOfficial,  # the authors' Net with the flow net renamed (key_aliases)
}

_MODULE_PREFIX = "module."  # left by DataParallel/DDP in the published files


def _summarise(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def skeleton(architecture: str) -> InterpolationNet:
    """`architecture` without weights (on the meta device): its structure, key names, shapes and properties."""
    build = ARCHITECTURES.get(architecture)
    if build is None:
        raise ValueError(f"unknown architecture {architecture!r}; choices: {', '.join(ARCHITECTURES)}")
    with torch.device("meta"):
        return build()


@dataclass(frozen=True)
class NetTraits:
    """What the registry and `models list` say about an architecture, asked of the net itself."""

    padding: int  # frames are padded to multiples of this at scale 1 (the net's alignment)
    ensemble: bool  # whether ensemble=1 is defined


@cache
def traits(architecture: str) -> NetTraits:
    net = skeleton(architecture)
    return NetTraits(padding=net.alignment(1.0), ensemble=net.supports_ensemble)


class WeightsMismatchError(VfiError, ValueError):
    """Weight files that do not fit the architecture (a model_path of another model, say); names the keys."""


def _canonical_key(net: InterpolationNet, key: str) -> str:
    for alias, name in net.key_aliases.items():
        if key.startswith(alias):
            return name + key.removeprefix(alias)
    return key


def _merge_roles(net: InterpolationNet, state_dicts: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """One state dict for the whole model: prefixes stripped and unused tensors dropped, role by role."""
    missing_roles = [r for r in net.weight_roles if r not in state_dicts]
    extra_roles = [r for r in state_dicts if r not in net.weight_roles]
    if missing_roles or extra_roles:
        raise WeightsMismatchError(f"{type(net).__name__} needs weight files for roles {list(net.weight_roles)}; "
                         f"got {sorted(state_dicts)}")
    merged: dict[str, Tensor] = {}
    for role in net.weight_roles:
        for key, value in state_dicts[role].items():
            key = _canonical_key(net, key.removeprefix(_MODULE_PREFIX))
            if key.startswith(net.unused_prefixes):
                continue
            merged[net.role_prefixes[role] + key] = value
    return merged


def fitting_weights(architecture: str, state_dicts: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The one state dict `architecture` loads from these files; WeightsMismatchError naming the keys that do not
    fit."""
    net = skeleton(architecture)
    weights = _merge_roles(net, state_dicts)
    expected = net.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_summarise(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_summarise(unexpected)}")
        raise WeightsMismatchError(f"the weights do not fit {architecture} (wrong file?); " + "; ".join(parts))
    wrong_shape = [f"{k} {tuple(getattr(v, 'shape', ()))} != {tuple(expected[k].shape)}"
                   for k, v in weights.items() if not isinstance(v, Tensor) or v.shape != expected[k].shape]
    if wrong_shape:
        raise WeightsMismatchError(f"the weights do not fit {architecture} (wrong file?); "
                                   f"shape mismatch: {_summarise(wrong_shape, 3)}")
    return weights


def build_model(architecture: str, state_dicts: Mapping[str, Mapping[str, Tensor]]) -> InterpolationNet:
    """Build `architecture` and load its weights strictly; returns the model on the CPU, in eval mode."""
    weights = fitting_weights(architecture, state_dicts)
    model = ARCHITECTURES[architecture]()
    model.load_state_dict(weights, strict=True)
    model.requires_grad_(False)  # inference only
    return model.eval()
