"""Fused glue between RIFE's convolutions: native CPU kernels (glue.cpp) with reference.py as their definition.

Each function takes the arguments of its reference and runs the native kernel when one applies: the library was
built (pip builds it with the plugin), every tensor is on the CPU in a supported dtype, and no gradient is needed.
Otherwise, or with VSRIFE_KERNELS=reference in the environment, the reference runs.

The native kernels' hot loops are built for AVX-512F, AVX2 and generic x86-64; the best one the CPU runs is used.
VSRIFE_KERNELS=generic, avx2 or avx512f caps that choice (read when the library loads), as ONEDNN_MAX_CPU_ISA caps
oneDNN's.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..errors import VfiError
from . import reference
from .reference import Constant, Part, Scaled, Warped, resize

__all__ = [
    "ISAS",
    "Constant",
    "KernelsError",
    "Part",
    "Scaled",
    "Warped",
    "block_input",
    "block_output",
    "native_available",
    "native_isa",
    "reference_only",
    "resize",
    "warp",
    "warp_blend",
]

LIBRARY = Path(__file__).resolve().parent / "libvfi_kernels.so"
_DTYPES = {torch.float32: 0, torch.bfloat16: 1}
_PART_KINDS = {"plain": 0, "warped": 1, "constant": 2}
# The builds of the native hot loops, numbered as vfi_select_isa numbers them (each a superset of the one before).
ISAS = ("generic", "avx2", "avx512f")
SETTING = "VSRIFE_KERNELS"


class KernelsError(VfiError, ValueError):
    """VSRIFE_KERNELS holds a value that names no choice."""


class _View(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int32), ("channels", ctypes.c_int32),
                ("stride", ctypes.c_int64 * 4)]


class _Part(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int32), ("flow_channel", ctypes.c_int32), ("gain", ctypes.c_float),
                ("values", ctypes.c_void_p), ("view", _View)]


def _requested_isa() -> str | None:
    """The highest build VSRIFE_KERNELS allows (None: reference only)."""
    value = os.environ.get(SETTING, "").strip().lower()
    if value in ("", "native"):
        return ISAS[-1]
    if value == "reference":
        return None
    if value not in ISAS:
        raise KernelsError(f"{SETTING}={value}: choose native (the default), reference, {', '.join(ISAS)}")
    return value


@functools.cache
def _library() -> tuple[ctypes.CDLL, str] | None:
    """The native library and the build of its hot loops it runs, or None when the reference must run."""
    highest = _requested_isa()
    if highest is None or not LIBRARY.exists():
        return None
    library = ctypes.CDLL(str(LIBRARY))
    view, i32, f32, ptr = _View, ctypes.c_int32, ctypes.c_float, ctypes.c_void_p
    library.vfi_block_input.argtypes = [i32, i32, i32, ctypes.POINTER(_Part), i32, ctypes.POINTER(view), view, i32,
                                        i32, f32, i32]
    library.vfi_block_output.argtypes = [i32, i32, i32, view, i32, i32, i32, f32, f32, ptr, ptr, ptr, ptr, i32, ptr,
                                         ptr, i32]
    library.vfi_warp_blend.argtypes = [i32, i32, i32, view, view, view, view, view, i32]
    library.vfi_select_isa.argtypes = [i32]
    for function in (library.vfi_block_input, library.vfi_block_output, library.vfi_warp_blend,
                     library.vfi_select_isa):
        function.restype = i32
    return library, ISAS[library.vfi_select_isa(ISAS.index(highest))]


_reference_only = False


def native_available() -> bool:
    """True when the native kernels are built and not switched off (VSRIFE_KERNELS=reference)."""
    return _library() is not None


def native_isa() -> str | None:
    """The build of the native hot loops in use (one of ISAS), or None when the reference runs."""
    loaded = _library()
    return None if loaded is None else loaded[1]


@contextlib.contextmanager
def reference_only() -> Iterator[None]:
    """Run the reference for every call inside the block (benchmarks and tests compare the two; not thread-safe)."""
    global _reference_only
    previous, _reference_only = _reference_only, True
    try:
        yield
    finally:
        _reference_only = previous


def _native(*tensors: Tensor | None) -> ctypes.CDLL | None:
    """The library when it can run on these tensors, else None."""
    loaded = _library()
    if loaded is None or _reference_only:
        return None
    library = loaded[0]
    for tensor in tensors:
        if tensor is None:
            continue
        if tensor.device.type != "cpu" or tensor.dtype not in _DTYPES or tensor.dim() != 4:
            return None
        if tensor.requires_grad and torch.is_grad_enabled():
            return None
    return library


def _rows(*tensors: Tensor | None) -> bool:
    """True when every tensor's rows are contiguous (the native kernels read their inputs a row at a time)."""
    return all(t is None or t.stride(3) == 1 or t.shape[3] == 1 for t in tensors)


def _view(tensor: Tensor) -> _View:
    return _View(tensor.data_ptr(), _DTYPES[tensor.dtype], tensor.shape[1], (ctypes.c_int64 * 4)(*tensor.stride()))


def _check(status: int, name: str) -> None:
    if status != 0:
        raise ValueError(f"native kernel {name} rejected its arguments (status {status})")


def block_input(parts: Sequence[Part], flow: Tensor | None, factor: float, dtype: torch.dtype,
                channels_last: bool) -> Tensor:
    """reference.block_input."""
    images = [t for t in map(reference.part_tensor, parts) if t is not None]
    library = _native(flow, *images)
    if (library is None or dtype not in _DTYPES or any(t.dtype != torch.float32 for t in images)
            or (flow is not None and flow.dtype != torch.float32) or not _rows(flow, *images)):
        return reference.block_input(parts, flow, factor, dtype, channels_last)
    batch, _, height, width = images[0].shape
    keep: list[Tensor] = []  # the constants' buffers live until the call returns
    native_parts = (_Part * len(parts))()
    for slot, part in zip(native_parts, parts, strict=True):
        if isinstance(part, Constant):
            values = part.values.to(torch.float32).reshape(-1).expand(batch).contiguous()
            keep.append(values)
            slot.kind, slot.values = _PART_KINDS["constant"], values.data_ptr()
        elif isinstance(part, Warped):
            slot.kind, slot.flow_channel, slot.view = _PART_KINDS["warped"], part.flow_channel, _view(part.image)
        else:
            tensor, gain = (part.tensor, part.gain) if isinstance(part, Scaled) else (part, 1.0)
            slot.kind, slot.gain, slot.view = _PART_KINDS["plain"], gain, _view(tensor)
    channels = sum(1 if t is None else t.shape[1] for t in map(reference.part_tensor, parts))
    out_height, out_width = round(height / factor), round(width / factor)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(batch, channels, out_height, out_width, dtype=dtype, memory_format=memory_format)
    flow_view = ctypes.pointer(_view(flow)) if flow is not None else None
    _check(library.vfi_block_input(batch, height, width, native_parts, len(parts), flow_view, _view(out), out_height,
                                   out_width, float(factor), torch.get_num_threads()), "block_input")
    return out


def block_output(head: Tensor, factor: float, gain: float, flow: Tensor | None, mask: Tensor | None,
                 extra_channels: int, shuffles: int = 0) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """reference.block_output."""
    library = _native(head, flow, mask)
    state_ok = all(t is None or (t.dtype == torch.float32 and t.is_contiguous()) for t in (flow, mask))
    if library is None or not state_ok:
        return reference.block_output(head, factor, gain, flow, mask, extra_channels, shuffles)
    batch, _, src_height, src_width = head.shape
    src_height, src_width = src_height << shuffles, src_width << shuffles  # the shuffled head's size
    height, width = round(src_height * factor), round(src_width * factor)
    new_flow = torch.empty(batch, 4, height, width)
    new_mask = torch.empty(batch, 1, height, width)
    extra = torch.empty(batch, extra_channels, height, width) if extra_channels else None
    peaks = torch.empty(2)
    _check(library.vfi_block_output(batch, height, width, _view(head), shuffles, src_height, src_width,
                                    1.0 / factor, gain, None if flow is None else flow.data_ptr(),
                                    new_flow.data_ptr(), None if mask is None else mask.data_ptr(),
                                    new_mask.data_ptr(), extra_channels, None if extra is None else extra.data_ptr(),
                                    peaks.data_ptr(), torch.get_num_threads()), "block_output")
    return new_flow, new_mask, extra, peaks


def warp_blend(img0: Tensor, img1: Tensor, flow: Tensor, mask: Tensor) -> Tensor:
    """reference.warp_blend."""
    library = _native(img0, img1, flow, mask)
    if library is None or any(t.dtype != torch.float32 for t in (img0, img1, flow, mask)) or not _rows(
            img0, img1, flow, mask):
        return reference.warp_blend(img0, img1, flow, mask)
    batch, channels, height, width = img0.shape
    out = torch.empty(batch, channels, height, width)
    _check(library.vfi_warp_blend(batch, height, width, _view(img0), _view(img1), _view(flow), _view(mask),
                                  _view(out), torch.get_num_threads()), "warp_blend")
    return out


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """reference.warp (the output keeps the image's dtype)."""
    if _native(image, flow) is None:
        return reference.warp(image, flow)
    return block_input([Warped(image.float(), 0)], flow.float(), 1.0, image.dtype, False)
