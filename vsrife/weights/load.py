"""Loading weight files as tensors only (``weights_only=True``), and saying in our words what is wrong with a file
PyTorch refused."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import WeightsError
from .pickles import PICKLE_PROTO, ZIP_MAGIC, code_calling_globals

if TYPE_CHECKING:
    from torch import Tensor


def load_state_dicts(paths: dict[str, Path]) -> dict[str, dict[str, Tensor]]:
    """role -> state dict, loaded on the CPU with ``weights_only=True`` (never arbitrary pickles)."""
    return {role: load_state_dict(Path(path)) for role, path in paths.items()}


def load_state_dict(path: Path) -> dict[str, Tensor]:
    import torch  # lazily: the registry, cache and CLI work without importing torch

    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols before refusing them; the refusal is reported in our words
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling raises many types (UnpicklingError, RuntimeError, EOFError, KeyError, ...)
        raise _load_failure(path, exc) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a training checkpoint {"model": state dict, "optim": ..., "epoch": ...} (RRIN fork)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weight file {path} does not hold a state dict (name -> tensor)")
    return dict(state)


_SNIFF_BYTES = 4096


def _load_failure(path: Path, error: Exception) -> WeightsError:
    """What is wrong with a file torch.load refused, in our words (torch's advice is never repeated)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as exc:
        return WeightsError(f"cannot read weight file {path}: {exc.strerror or exc}")
    if not head:
        return WeightsError(f"weight file {path} is empty (0 bytes)")
    code = code_calling_globals(path, head)
    if code:
        return WeightsError(
            f"refused to load {path}: it is a pickle that would call {', '.join(code)} when loaded, which can run "
            f"any code; only weight files of tensors (a state dict saved with torch.save) are loaded"
        )
    if head.startswith(ZIP_MAGIC):
        return WeightsError(f"weight file {path} is damaged: a zip archive PyTorch cannot read "
                            f"({_short_reason(error)}); was it truncated or changed after it was saved?")
    if head[0] != PICKLE_PROTO:
        kind = "a text file" if _looks_like_text(head) else "neither a torch.save archive nor a pickle"
        return WeightsError(f"{path} is not a weight file: it is {kind}")
    return WeightsError(f"weight file {path} is damaged or holds more than tensors: PyTorch's safe loader rejects "
                        f"it ({_short_reason(error)})")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _short_reason(error: Exception) -> str:
    """One short line about torch's refusal, without its advice (which names ``weights_only``)."""
    text = str(error)
    for pattern, template in ((r"GLOBAL ([\w.]+)", "it names {0}"), (r"Unsupported operand (\d+)",
                                                                     "pickle opcode {0} is not allowed")):
        match = re.search(pattern, text)
        if match:
            return template.format(match[1])
    first = text.split(". ")[0].splitlines()[0].strip() if text.strip() else ""
    if not first or "weights_only" in first or "Weights only" in first:
        return type(error).__name__
    return f"{type(error).__name__}: {first[:200]}"
