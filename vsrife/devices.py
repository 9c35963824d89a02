"""The torch device a filter runs on: ``device=`` resolved, or refused with the devices there are."""

from __future__ import annotations

import torch

from .errors import EngineError


def available_devices() -> list[str]:
    """Device names torch can use in this process, in the form `device=` accepts."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    for kind in ("xpu", "mps"):
        backend = getattr(torch, kind, None)
        if backend is not None and backend.is_available():
            names.append(kind)
    return names


def select_device(name: str) -> torch.device:
    """Resolve `auto`, `cpu`, `cuda`, `cuda:N` or another torch device type that is available."""
    requested = name.strip().lower()
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        device = None
    if device is not None and _device_is_available(device):
        return device
    choices = ", ".join(["auto", *available_devices()])
    raise EngineError(f"device '{name}' is not available; available devices: {choices}")


def _device_is_available(device: torch.device) -> bool:
    if device.type == "cpu":
        return device.index in (None, 0)
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    backend = getattr(torch, device.type, None)
    return backend is not None and hasattr(backend, "is_available") and bool(backend.is_available())
