"""One inference engine per filter instance: device, precision, padding, frame <-> tensor.

The native plugin calls `create_engine` once per `core.vfi.RIFE(...)` or `core.vfi.RRIN(...)` and then
`Engine.interpolate` from VapourSynth's worker threads. The engine never sees a VSMap or a VSFrame: planes arrive as
memoryviews.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from . import parameters, registry, rules, tiling, weights
from .devices import select_device
from .errors import EngineError
from .frame_cache import FrameCache
from .models import InterpolationNet, build_model
from .precision import select_precision
from .scale import AUTO_SCALE, auto_scale
from .scene import repeat_difference, scene_change_metric

# A plane as the plugin hands it over: the plane's bytes (stride * height) and its stride in bytes.
Plane = tuple[memoryview, int]
Frame = Sequence[Plane]

SAMPLE_TYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}
MASK_SAMPLE_TYPES: dict[str, np.dtype[Any]] = {**SAMPLE_TYPES, "uint8": np.dtype(np.uint8),
                                               "uint16": np.dtype(np.uint16)}
# A mask plane as the plugin hands it over, with its frame number in the mask clip.
Mask = tuple[Plane, int]

# Midpoint-only (3.x) nets reach other positions by bisection; t is rounded to a multiple of 1/2**depth.
MIDPOINT_BISECTION_DEPTH = 4

# Source frames an engine keeps (tensors, features): the pair in hand and one more, so that pairs arriving slightly
# out of order (VapourSynth's threads) still find theirs; in order, each frame is converted and encoded once.
SOURCE_CACHE_FRAMES = 3


@dataclass
class SourceFrame:
    """What an engine keeps of one source frame: the unpadded 1x3xHxW tensor on the device, the padded one (made
    when first needed) and the net's features of each tile (0: the whole padded frame)."""

    image: torch.Tensor
    padded: torch.Tensor | None = None
    features: dict[int, torch.Tensor] = field(default_factory=dict)
    keep_features: bool = True  # False for a frame without a number: nothing is kept for it


def check_arguments(**arguments: float) -> None:
    """EngineError with the plugin's words for a value the parameter table does not allow (direct callers)."""
    for name, value in arguments.items():
        message = parameters.refusal(name, value)
        if message is not None:
            raise EngineError(message)


def resolve_scale(scale: float, width: int, height: int) -> float:
    """`scale` itself (one the parameter table allows), or the automatic choice for this frame size when it is
    AUTO_SCALE (0)."""
    check_arguments(scale=scale)
    return auto_scale(width, height) if scale == AUTO_SCALE else scale


def select_model(name: str, method: str) -> registry.ModelEntry:
    """The registry entry `name`, which must belong to `method` (a key of registry.METHODS: the filter that asked
    for it)."""
    try:
        entry = registry.get_model(name, method)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    if entry.method != method:
        owner = registry.METHODS[entry.method]
        raise EngineError(f"model '{entry.name}' is {owner.describe()}; use vfi.{owner.filter}")
    return entry


def _given_or_default[T](value: T | None, name: str, filter_name: str) -> T:
    """The value of engine row `name`, or, for None, the table's default for that filter."""
    return value if value is not None else cast(T, parameters.PARAMETERS[name].default_for(filter_name))


def create_engine(
    *,
    method: str,
    width: int,
    height: int,
    sample_type: str,
    model: str | None = None,
    model_path: str | None = None,
    scale: float | None = None,
    ensemble: int | None = None,
    sc_threshold: float | None = None,
    device: str | None = None,
    precision: str | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    levels: int | None = None,
    mask_sample_type: str | None = None,
    mask_peak: float = 1.0,
) -> Engine:
    """Build the engine for one filter instance: resolve weights (fetching them if needed) and load the net.

    The keywords from `model` to `levels` are the filter's parameters (vsrife/parameters.py, the rows marked
    engine): None takes the table's default for `method`'s filter (the plugin passes None for a parameter not given,
    or one its filter does not take), and they are checked against that table and the rules between them
    (vsrife/rules.py) as the plugin checks a call.
    tile: 0 picks a tile size from the device's free memory (0 again when the whole frame fits), > 0 is the tile
    size in pixels; tile_overlap: pixels shared by neighbouring tiles. scale: the flow resolution, or AUTO_SCALE (0)
    for the one auto_scale picks for width x height; Engine.scale is the resolved value. mask_sample_type: the
    sample type of the mask planes interpolate() receives (None: no mask), mask_peak the sample value meaning 1.
    """
    if method not in registry.METHODS:
        raise EngineError(f"unknown method '{method}'; choose {', '.join(registry.METHODS)}")
    if mask_sample_type is not None and mask_sample_type not in MASK_SAMPLE_TYPES:
        raise EngineError(f"mask sample type '{mask_sample_type}' is not supported; choose "
                          f"{', '.join(MASK_SAMPLE_TYPES)}")
    if sample_type not in SAMPLE_TYPES:
        raise EngineError(f"sample type '{sample_type}' is not supported; choose {', '.join(SAMPLE_TYPES)} (RGBS or "
                          "RGBH frames)")
    filter_name = registry.METHODS[method].filter
    ensemble = _given_or_default(ensemble, "ensemble", filter_name)
    sc_threshold = _given_or_default(sc_threshold, "sc_threshold", filter_name)
    tile = _given_or_default(tile, "tile", filter_name)
    levels = _given_or_default(levels, "levels", filter_name)
    check_arguments(ensemble=ensemble, sc_threshold=sc_threshold, tile=tile, levels=levels,
                    **({} if tile_overlap is None else {"tile_overlap": tile_overlap}))
    tile_overlap = rules.tile_overlap(tile, tile_overlap)
    entry = select_model(_given_or_default(model, "model", filter_name), method)
    scale = resolve_scale(_given_or_default(scale, "scale", filter_name), width, height)
    precision = _given_or_default(precision, "precision", filter_name)
    torch_device = select_device(_given_or_default(device, "device", filter_name))
    select_precision(precision, torch_device)  # a bad precision fails before any weights are fetched
    paths = weights.resolve_weight_files(entry, model_path)
    net = build_model(entry.architecture, weights.load_state_dicts(paths))
    net.use_flow_levels(levels, width, height)  # before the alignment: coarser levels need larger multiples
    dtype = select_precision(precision, torch_device, mixed=net.float32_frames)
    if ensemble and not net.supports_ensemble:
        raise EngineError(f"model {entry.name} has no ensemble mode; use ensemble=0")
    if torch_device.type == "cuda":
        # The padded frame size is fixed per instance, so cuDNN's autotuned choice is reused for every frame.
        torch.backends.cudnn.benchmark = True
    net = net.to(device=torch_device, dtype=dtype)
    if torch_device.type == "cpu":
        net.use_channels_last()  # oneDNN's convolutions are faster on channels-last tensors (docs/BENCHMARKS.md)
    align = net.alignment(scale)
    if 0 < tile < align:
        # interpolate_tiled pads every tile to the alignment, so a smaller tile only adds work
        raise EngineError(f"tile must be at least {align} for model {entry.name} at scale {scale:g} "
                          f"(its frames are padded to multiples of {align}); got {tile}")
    if tile == 0:
        tile = choose_tile(net, torch_device, dtype, width=width, height=height, scale=scale, overlap=tile_overlap)
    return Engine(
        net,
        device=torch_device,
        dtype=dtype,
        width=width,
        height=height,
        sample_type=SAMPLE_TYPES[sample_type],
        scale=scale,
        ensemble=bool(ensemble),
        sc_threshold=sc_threshold,
        tile=tile,
        tile_overlap=tile_overlap,
        mask_sample_type=None if mask_sample_type is None else MASK_SAMPLE_TYPES[mask_sample_type],
        mask_peak=mask_peak,
    )


def choose_tile(net: InterpolationNet, device: torch.device, dtype: torch.dtype, *, width: int, height: int,
                scale: float, overlap: int) -> int:
    """Tile size for frames of this size on this device from the net's measured memory per pixel (0: no tiles)."""
    # memory_bytes_per_pixel is measured in fp32; activations scale with the element size. The engine keeps
    # SOURCE_CACHE_FRAMES source frames besides: their unpadded and padded RGB and the net's per-frame features.
    fp32_bytes_per_pixel = net.memory_bytes_per_pixel + SOURCE_CACHE_FRAMES * (6 + net.feature_channels) * 4
    # nets that keep float32 frames, flow and warps only save on their convolutions: count them as float32
    bytes_per_pixel = fp32_bytes_per_pixel * (1.0 if net.float32_frames else dtype.itemsize / 4)
    # the net is already on the device, so the available memory no longer counts its weights
    return tiling.choose_tile(height, width, bytes_per_pixel=bytes_per_pixel,
                              available_bytes=tiling.available_memory(device), overlap=overlap,
                              align=net.alignment(scale))


class Engine:
    """Runs one interpolation net on frames of one size; safe to call from many threads."""

    def __init__(
        self,
        net: InterpolationNet,
        *,
        device: torch.device,
        dtype: torch.dtype,
        width: int,
        height: int,
        sample_type: np.dtype,
        scale: float,
        ensemble: bool,
        sc_threshold: float,
        tile: int,
        tile_overlap: int,
        mask_sample_type: np.dtype | None = None,
        mask_peak: float = 1.0,
    ) -> None:
        self.net = net
        self.device = device
        self.dtype = dtype
        self.width = width
        self.height = height
        self.sample_type = sample_type
        self.scale = scale
        self.ensemble = ensemble
        self.sc_threshold = sc_threshold
        self.align = net.alignment(scale)
        self.padded_height = -(-height // self.align) * self.align
        self.padded_width = -(-width // self.align) * self.align
        self.tile = tile
        self.tile_overlap = tile_overlap
        # One forward pass at a time: bounds memory and keeps results independent of VapourSynth's thread count.
        self._lock = threading.Lock()
        # source frame number -> its tensor, padded tensor and the net's features: each is made once per frame
        self.sources: FrameCache[int, SourceFrame] = FrameCache(SOURCE_CACHE_FRAMES)
        self.mask_sample_type = mask_sample_type
        self.mask_peak = mask_peak
        # mask frame number -> its 1x1xHxW float32 weights on the device (one frame for a one-frame mask)
        self.masks: FrameCache[int, torch.Tensor] = FrameCache(2)

    def interpolate(self, frame0: Frame, frame1: Frame, out: Frame, t: float, detect_scene_change: bool,
                    source_frames: tuple[int, int] | None = None, mask: Mask | None = None) -> bool:
        """Write the frame at position t between frame0 and frame1 into out; False if they straddle a cut.

        source_frames: the numbers of frame0 and frame1 in the source clip, which key what the engine keeps per
        frame (tensors, the net's features); None keeps nothing. mask: a plane of weights (mask_sample_type, 0 to
        mask_peak) and its number in the mask clip: 0 keeps the nearest source frame's pixel, 1 the synthesized one.
        """
        with torch.inference_mode():
            numbers = source_frames or (None, None)
            source0, source1 = self._source(frame0, numbers[0]), self._source(frame1, numbers[1])
            if detect_scene_change and scene_change_metric(source0.image, source1.image) > self.sc_threshold:
                return False
            with self._lock:
                result = self._synthesize_frame(source0, source1, t)
            if mask is not None:
                result = self._masked(result, frame0 if t < 0.5 else frame1, mask)
            self._tensor_to_frame(result, out)
        return True

    def difference(self, frame0: Frame, frame1: Frame, source_frames: tuple[int, int] | None = None) -> float:
        """How far frame1 is from being a repeat of frame0 (dedup compares it with dedup_threshold)."""
        with torch.inference_mode():
            numbers = source_frames or (None, None)
            return repeat_difference(self._source(frame0, numbers[0]).image, self._source(frame1, numbers[1]).image)

    def _masked(self, result: torch.Tensor, nearest: Frame, mask: Mask) -> torch.Tensor:
        """mask * result + (1 - mask) * nearest in float32, nearest read from its frame as it is: a weight of 0 gives
        its samples bit for bit, 1 the result's."""
        if self.mask_sample_type is None:
            raise EngineError("a mask was passed to an engine created without mask_sample_type")
        plane, number = mask
        weights = self.masks.get(number, lambda: self._mask_tensor(plane))
        original = np.stack([self._plane_array(p) for p in nearest]).astype(np.float32)
        source = torch.from_numpy(original).unsqueeze(0).to(self.device)
        return result.float() * weights + source * (1.0 - weights)

    def _mask_tensor(self, plane: Plane) -> torch.Tensor:
        assert self.mask_sample_type is not None
        values = self._plane_array(plane, self.mask_sample_type).astype(np.float32) / self.mask_peak
        return torch.from_numpy(np.clip(values, 0.0, 1.0))[None, None].to(self.device)

    def _source(self, frame: Frame, number: int | None) -> SourceFrame:
        """The source frame as a tensor on the device: converted once per source frame number (every time when
        the number is unknown)."""
        if number is None:
            return SourceFrame(self._frame_to_tensor(frame), keep_features=False)
        return self.sources.get(number, lambda: SourceFrame(self._frame_to_tensor(frame)))

    def _synthesize_frame(self, source0: SourceFrame, source1: SourceFrame, t: float) -> torch.Tensor:
        """The frame at t between two source frames: in tiles when a tile size is set, else in one pass."""
        if self.tile > 0:
            # interpolate_tiled visits the tiles in the same order for every frame: the call number is the tile
            tile_index = itertools.count()

            def synthesize_tile(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
                index = next(tile_index)
                return self._synthesize(a, b, t, self._pair_features(source0, source1, index, a, b))

            return tiling.interpolate_tiled(synthesize_tile, source0.image, source1.image, tile=self.tile,
                                            overlap=self.tile_overlap, align=self.align)
        img0, img1 = self._padded(source0), self._padded(source1)
        result = self._synthesize(img0, img1, t, self._pair_features(source0, source1, 0, img0, img1))
        return result[:, :, : self.height, : self.width]

    def _padded(self, source: SourceFrame) -> torch.Tensor:
        if source.padded is None:
            source.padded = self._pad(source.image)
        return source.padded

    def _pair_features(self, source0: SourceFrame, source1: SourceFrame, tile_index: int, img0: torch.Tensor,
                       img1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The net's features of both padded frames (or tiles), kept per source frame when its number is known;
        None for nets without features, or to let the net compute them when the frames are anonymous."""
        if not self.net.feature_channels or not (source0.keep_features and source1.keep_features):
            return None
        return self._features(source0, tile_index, img0), self._features(source1, tile_index, img1)

    def _features(self, source: SourceFrame, tile_index: int, image: torch.Tensor) -> torch.Tensor:
        if tile_index not in source.features:
            features = self.net.encode_frame(image)
            assert features is not None  # feature_channels > 0
            source.features[tile_index] = features
        return source.features[tile_index]

    def _synthesize(self, img0: torch.Tensor, img1: torch.Tensor, t: float,
                    features: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        if self.net.midpoint_only:
            return self._bisect(img0, img1, t)
        if features is not None:
            return self.net(img0, img1, t, self.scale, self.ensemble, features)
        return self.net(img0, img1, t, self.scale, self.ensemble)

    def _bisect(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        """Reach position t with a midpoint-only net by recursive halving of the interval."""
        steps = 2**MIDPOINT_BISECTION_DEPTH
        target = round(t * steps) / steps
        low, high, low_t, high_t = img0, img1, 0.0, 1.0
        while True:
            if target == low_t:
                return low
            if target == high_t:
                return high
            middle = self.net(low, high, 0.5, self.scale, self.ensemble)
            middle_t = (low_t + high_t) / 2
            if target == middle_t:
                return middle
            if target < middle_t:
                high, high_t = middle, middle_t
            else:
                low, low_t = middle, middle_t

    def _pad(self, image: torch.Tensor) -> torch.Tensor:
        bottom, right = self.padded_height - self.height, self.padded_width - self.width
        if bottom == 0 and right == 0:
            return image
        return F.pad(image, (0, right, 0, bottom), mode="replicate")

    def _plane_array(self, plane: Plane, sample_type: np.dtype | None = None) -> np.ndarray:
        sample_type = self.sample_type if sample_type is None else sample_type
        buffer, stride = plane
        row_length = stride // sample_type.itemsize
        rows = np.frombuffer(buffer, dtype=sample_type, count=row_length * self.height)
        return rows.reshape(self.height, row_length)[:, : self.width]

    def _frame_to_tensor(self, frame: Frame) -> torch.Tensor:
        stacked = np.stack([self._plane_array(plane) for plane in frame])
        dtype = torch.float32 if self.net.float32_frames else self.dtype
        return torch.from_numpy(stacked).unsqueeze(0).to(self.device, dtype=dtype, non_blocking=True)

    def _tensor_to_frame(self, image: torch.Tensor, out: Frame) -> None:
        # float32 on the host: numpy has no bfloat16, and copyto casts to the frame's sample type
        planes = image[0].to(dtype=torch.float32).cpu().numpy()
        for plane, values in zip(out, planes, strict=True):
            np.copyto(self._plane_array(plane), values, casting="unsafe")

