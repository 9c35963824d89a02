"""Interpolation architectures by name, and strict loading of their weight files."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from .layers import InterpolationNet
from .rife_v3_1 import RIFE31
from .rife_v3_5 import RIFE35
from .rife_v3_8 import RIFE38
from .rife_v4_0 import RIFE40
from .rrin import RRIN, RRINFork, RRINOfficial

__all__ = ["ARCHITECTURES", "InterpolationNet", "build_model"]

ARCHITECTURES: dict[str, type[InterpolationNet]] = {
    "rife-4.0": RIFE40,
    "rife-3.1": RIFE31,
    "rife-3.5": RIFE35,
    "rife-3.8": RIFE38,
    "rrin": RRIN,
    "rrin-official": RRINOfficial,
    "rrin-fork": RRINFork,
}

_MODULE_PREFIX = "module."  # left by DataParallel/DDP in the published files


def _summarise(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _canonical_key(cls: type[InterpolationNet], key: str) -> str:
    for alias, name in cls.key_aliases.items():
        if key.startswith(alias):
            return name + key.removeprefix(alias)
    return key


def _merge_roles(cls: type[InterpolationNet], state_dicts: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """One state dict for the whole model: prefixes stripped and unused tensors dropped, role by role."""
    missing_roles = [r for r in cls.weight_roles if r not in state_dicts]
    extra_roles = [r for r in state_dicts if r not in cls.weight_roles]
    if missing_roles or extra_roles:
        raise ValueError(f"{cls.__name__} needs weight files for roles {list(cls.weight_roles)}; "
                         f"got {sorted(state_dicts)}")
    merged: dict[str, Tensor] = {}
    for role in cls.weight_roles:
        for key, value in state_dicts[role].items():
            key = _canonical_key(cls, key.removeprefix(_MODULE_PREFIX))
            if key.startswith(cls.unused_prefixes):
                continue
            merged[cls.role_prefixes[role] + key] = value
    return merged


def build_model(architecture: str, state_dicts: Mapping[str, Mapping[str, Tensor]]) -> InterpolationNet:
    """Build `architecture` and load its weights strictly; returns the model on the CPU, in eval mode."""
    cls = ARCHITECTURES.get(architecture)
    if cls is None:
        raise ValueError(f"unknown architecture {architecture!r}; choices: {', '.join(ARCHITECTURES)}")
    weights = _merge_roles(cls, state_dicts)
    model = cls()
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_summarise(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_summarise(unexpected)}")
        raise ValueError(f"the weights do not fit {architecture} (wrong file?); " + "; ".join(parts))
    wrong_shape = [f"{k} {tuple(getattr(v, 'shape', ()))} != {tuple(expected[k].shape)}"
                   for k, v in weights.items() if not isinstance(v, Tensor) or v.shape != expected[k].shape]
    if wrong_shape:
        raise ValueError(f"the weights do not fit {architecture} (wrong file?); "
                         f"shape mismatch: {_summarise(wrong_shape, 3)}")
    model.load_state_dict(weights, strict=True)
    model.requires_grad_(False)  # inference only
    return model.eval()
