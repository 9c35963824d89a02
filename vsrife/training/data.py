"""Training data: triplets (frame 0, frame at t, frame 1) from videos, folders of frames, or synthetic scenes.

A data spec on the command line is one of
    PATH[@START:END]        a video file (decoded with ffmpeg to RGB24), optionally frames START..END-1 only
    DIR[@START:END]         a folder of numbered images (sorted by name)
    synthetic[:DIR]         synthetic scenes over the natural images in DIR (default: scikit-image's sample images)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from ..errors import VfiError
from ..ffmpeg_binary import find_ffmpeg
from ..frames import image_files
from ..parameters import SC_THRESHOLD
from ..registry import WeightFile, WheelSource
from ..scene import scene_change_metric
from .synthetic import DEFAULT_MOTION, SyntheticMotion, synthetic_pair, synthetic_triplet

# A triplet is skipped when two neighbouring frames inside it differ by more than the filter's default cut threshold
# (scene cut or wild motion), measured by the filter's scene-change metric.
MAX_NEIGHBOUR_DIFFERENCE = SC_THRESHOLD

# The flow stage validates on held-back pairs this many frames apart (half the frame-drop protocol's span, and it).
VALIDATION_PAIR_SPANS = (1, 2)
# The other stages validate on held-back triplets (i, i + span/2, i + span) at t = 0.5: the frame-drop protocol's
# span, and twice it, whose motion is nearer the quality gate's (bikes.mp4 from frame 40, frames four apart:
# 95th percentile 16 px; the gate's pairs: 23 px).
VALIDATION_TRIPLET_SPANS = (2, 4)

# Natural images inside the scikit-image wheel (read out of it like a weight file, never installed).
_SKIMAGE = "scikit-image==0.26.0"
SKIMAGE_IMAGES = tuple(
    WeightFile("image", name, sha256, size, (WheelSource(_SKIMAGE, f"skimage/data/{name}"),))
    for name, sha256, size in (
        ("astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", 791555),
        ("brick.png", "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf", 106634),
        ("camera.png", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a", 139512),
        ("chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", 240512),
        ("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", 466706),
        ("coins.png", "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba", 75825),
        ("grass.png", "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89", 217893),
        ("gravel.png", "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12", 194247),
        ("hubble_deep_field.jpg", "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4", 527940),
        ("ihc.png", "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef", 477916),
        ("logo.png", "f2c57fe8af089f08b5ba523d95573c26e62904ac5967f4c8851b27d033690168", 179723),
        ("moon.png", "78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577", 50177),
        ("motorcycle_left.png", "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179", 644701),
        ("motorcycle_right.png", "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797", 640373),
        ("page.png", "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3", 47679),
        ("retina.jpg", "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6", 269564),
        ("rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", 112525),
        ("text.png", "bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1", 42704),
    )
)


class DataError(VfiError, ValueError):
    """A data spec or file that cannot be used; the message is meant for the user."""


@dataclass
class Triplet:
    img0: Tensor  # 3 x H x W float32 in [0, 1]
    gt: Tensor
    img1: Tensor
    t: float
    span: int = 0  # source frames from img0 to img1 (0: not from a video)


@dataclass
class FlowPair:
    """Two frames and the flows between them, the flow stage's sample."""

    img0: Tensor   # 3 x H x W float32 in [0, 1]
    img1: Tensor
    flow: Tensor   # 4 x H x W: F0->1 (x, y) then F1->0 (x, y), pixels
    valid: Tensor  # 2 x H x W bool: where F0->1 and F1->0 are known (not occluded, not a soft edge)


class PairFlows(Protocol):
    """Flows between two frames of a real video (a teacher's, computed on the whole frames)."""

    def flows(self, source: FrameSequence, first: int, last: int) -> tuple[Tensor, Tensor]:
        """(flow 4 x H x W, valid 2 x H x W) between frames first and last of the source."""
        ...


class TripletSource(Protocol):
    name: str

    def sample(self, rng: np.random.Generator, crop: int) -> Triplet: ...

    def validation(self) -> list[Triplet]: ...

    def sample_pair(self, rng: np.random.Generator, crop: int, flows: PairFlows | None) -> FlowPair: ...

    def validation_pairs(self, flows: PairFlows | None) -> list[FlowPair]: ...


def ffmpeg_executable() -> str:
    """ffmpeg on PATH, else the binary that imageio-ffmpeg bundles."""
    found = find_ffmpeg()
    if found is None:
        raise DataError("decoding needs ffmpeg: put it on PATH or `pip install imageio-ffmpeg`")
    return found


def decode_rgb(path: Path, start: int = 0, end: int | None = None) -> Tensor:
    """Frames [start, end) of a video or image file as uint8 N x 3 x H x W, decoded with ffmpeg to RGB24."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
    except (RuntimeError, StopIteration, OSError) as exc:
        raise DataError(f"cannot decode {path}: {exc}") from None
    width, height = meta["size"]
    frames = []
    try:
        for index, raw in enumerate(reader):
            if end is not None and index >= end:
                break
            if index >= start:
                frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3))
    finally:
        reader.close()
    if not frames:
        raise DataError(f"{path} has no frames in the range {start}:{'' if end is None else end}")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def _to_float(frames: Tensor) -> Tensor:
    return frames.to(torch.float32) / 255.0


def _neighbour_differences(frames: Tensor) -> list[float]:
    """The filter's scene-change metric of each pair of neighbouring frames."""
    return [scene_change_metric(_to_float(frames[i : i + 1]), _to_float(frames[i + 1 : i + 2]))
            for i in range(frames.shape[0] - 1)]


class FrameSequence:
    """Consecutive frames of one shot-cut video; triplets never straddle a cut or too-large motion."""

    def __init__(self, name: str, frames: Tensor, max_span: int, validation_fraction: float) -> None:
        self.name = name
        self.frames = frames  # uint8 N x 3 x H x W
        count = frames.shape[0]
        bad = [d > MAX_NEIGHBOUR_DIFFERENCE for d in _neighbour_differences(frames)]
        # the last validation_fraction of the frames are held back from training
        held_back = count - math.ceil(count * validation_fraction) if validation_fraction > 0 else count
        # (first frame, span) of the training triplets, and of the validation triplets
        self.starts = [(first, span) for span in range(2, max_span + 1) for first in range(held_back - span)
                       if not any(bad[first:first + span])]
        self.validation_starts = [(first, span) for span in VALIDATION_TRIPLET_SPANS
                                  for first in range(held_back, count - span) if not any(bad[first:first + span])]
        # a flow pair (a, a + k) needs frames a - k .. a + 2k (flows.py: the teacher sees the triplets around it)
        self.pair_starts = [(first, span) for span in range(1, max_span + 1)  # training pairs (first frame, span)
                            for first in range(span, held_back - 2 * span)
                            if not any(bad[first - span:first + 2 * span])]
        self.validation_pair_starts = [(first, span) for span in VALIDATION_PAIR_SPANS
                                       for first in range(held_back + span, count - 2 * span)
                                       if not any(bad[first - span:first + 2 * span])]
        # a validation-only sequence (fraction 1, as for --val) needs validation triplets, a training one training ones
        usable = self.validation_starts if validation_fraction >= 1 else self.starts
        if not usable:
            raise DataError(f"{name}: no usable triplets (too few frames, or every pair is a cut)")

    def sample(self, rng: np.random.Generator, crop: int) -> Triplet:
        first, span = self.starts[int(rng.integers(len(self.starts)))]
        middle = int(rng.integers(1, span))
        _, _, height, width = self.frames.shape
        if height < crop or width < crop:
            raise DataError(f"{self.name}: frames of {width}x{height} are smaller than the crop {crop}")
        y = int(rng.integers(0, height - crop + 1))
        x = int(rng.integers(0, width - crop + 1))
        picked = _to_float(self.frames[[first, first + middle, first + span], :, y:y + crop, x:x + crop])
        return Triplet(picked[0], picked[1], picked[2], middle / span)

    def validation(self) -> list[Triplet]:
        out = []
        for first, span in self.validation_starts:
            picked = _to_float(self.frames[[first, first + span // 2, first + span]])
            out.append(Triplet(picked[0], picked[1], picked[2], 0.5, span))
        return out

    def sample_pair(self, rng: np.random.Generator, crop: int, flows: PairFlows | None) -> FlowPair:
        if flows is None:
            raise DataError(f"{self.name}: the flow stage needs a teacher for the flows of real frames")
        if not self.pair_starts:
            raise DataError(f"{self.name}: no usable pairs for the flow stage (a pair k frames apart needs k more "
                            "uncut frames on each side)")
        first, span = self.pair_starts[int(rng.integers(len(self.pair_starts)))]
        _, _, height, width = self.frames.shape
        if height < crop or width < crop:
            raise DataError(f"{self.name}: frames of {width}x{height} are smaller than the crop {crop}")
        y = int(rng.integers(0, height - crop + 1))
        x = int(rng.integers(0, width - crop + 1))
        flow, valid = flows.flows(self, first, first + span)
        window = (..., slice(y, y + crop), slice(x, x + crop))
        pair = _to_float(self.frames[[first, first + span]][window])
        return FlowPair(pair[0], pair[1], flow[window], valid[window])

    def validation_pairs(self, flows: PairFlows | None) -> list[FlowPair]:
        if flows is None:
            return []
        out = []
        for first, span in self.validation_pair_starts:
            flow, valid = flows.flows(self, first, first + span)
            pair = _to_float(self.frames[[first, first + span]])
            out.append(FlowPair(pair[0], pair[1], flow, valid))
        return out


class SyntheticScenes:
    """Random layered scenes over natural images (see synthetic.py); ground truth is exact."""

    VALIDATION_SEED = 1234
    VALIDATION_COUNT = 8
    VALIDATION_SIZE = (192, 256)

    def __init__(self, name: str, images: list[Tensor], motion: SyntheticMotion = DEFAULT_MOTION) -> None:
        self.name = name
        self.images = images
        self.motion = motion

    def sample(self, rng: np.random.Generator, crop: int) -> Triplet:
        t = float(rng.uniform(0.1, 0.9))
        img0, gt, img1 = synthetic_triplet(rng, self.images, crop, crop, t, self.motion)
        return Triplet(img0, gt, img1, t)

    def sample_pair(self, rng: np.random.Generator, crop: int, flows: PairFlows | None) -> FlowPair:
        return FlowPair(*synthetic_pair(rng, self.images, crop, crop, self.motion))

    def validation_pairs(self, flows: PairFlows | None) -> list[FlowPair]:
        rng = np.random.default_rng(self.VALIDATION_SEED)
        height, width = self.VALIDATION_SIZE
        return [FlowPair(*synthetic_pair(rng, self.images, height, width, self.motion))
                for _ in range(self.VALIDATION_COUNT)]

    def validation(self) -> list[Triplet]:
        rng = np.random.default_rng(self.VALIDATION_SEED)
        height, width = self.VALIDATION_SIZE
        out = []
        for _ in range(self.VALIDATION_COUNT):
            img0, gt, img1 = synthetic_triplet(rng, self.images, height, width, 0.5, self.motion)
            out.append(Triplet(img0, gt, img1, 0.5))
        return out


def _skimage_image_paths() -> list[Path]:
    from .. import weights

    paths = []
    for image in SKIMAGE_IMAGES:
        target = weights.cache_dir() / "_training" / image.filename
        if not weights.is_verified(target, image):
            weights.fetch(image, target)
        paths.append(target)
    return paths


def _image_files(folder: Path) -> list[Path]:
    """The image files in `folder` in natural name order."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    return image_files(folder)


def _load_images(paths: Sequence[Path]) -> list[Tensor]:
    images = []
    for path in paths:
        frame = decode_rgb(path, 0, 1)[0]
        images.append(_to_float(frame))
    if not images:
        raise DataError("no images for the synthetic scenes")
    return images


def _split_range(spec: str) -> tuple[str, int, int | None]:
    if "@" not in spec:
        return spec, 0, None
    path, _, frame_range = spec.rpartition("@")
    first, sep, last = frame_range.partition(":")
    try:
        start = int(first) if first else 0
        end = int(last) if sep and last else None
    except ValueError:
        raise DataError(f"bad frame range {frame_range!r} in {spec!r}; use PATH@START:END") from None
    if start < 0 or (end is not None and end <= start):
        raise DataError(f"bad frame range {frame_range!r} in {spec!r}; START must be >= 0 and END greater than START")
    return path, start, end


def open_source(spec: str, max_span: int, validation_fraction: float,
                motion: SyntheticMotion = DEFAULT_MOTION) -> TripletSource:
    """A triplet source for one data spec (see the module docstring); motion: the synthetic scenes' ranges."""
    if max_span < 2:
        raise DataError(f"the widest triplet span must be at least 2 frames (got {max_span})")
    if not 0 <= validation_fraction <= 1:
        raise DataError(f"the validation fraction must be between 0 and 1 (got {validation_fraction})")
    if spec == "synthetic" or spec.startswith("synthetic:"):
        folder = spec.partition(":")[2]
        paths = _image_files(Path(folder).expanduser()) if folder else _skimage_image_paths()
        return SyntheticScenes(spec, _load_images(paths), motion)
    path_text, start, end = _split_range(spec)
    path = Path(path_text).expanduser()
    if path.is_dir():
        files = _image_files(path)[start:end]
        if len(files) < 3:
            raise DataError(f"{path}: a folder of frames needs at least 3 images, found {len(files)}")
        frames = torch.cat([decode_rgb(f, 0, 1) for f in files])
    elif path.is_file():
        frames = decode_rgb(path, start, end)
    else:
        raise DataError(f"{path} is neither a video file nor a folder of frames")
    return FrameSequence(spec, frames, max_span, validation_fraction)


def augment(triplet: Triplet, rng: np.random.Generator) -> Triplet:
    """Random horizontal and vertical flips and temporal reversal (t -> 1 - t)."""
    img0, gt, img1, t = triplet.img0, triplet.gt, triplet.img1, triplet.t
    for axis in (2, 1):
        if rng.random() < 0.5:
            img0, gt, img1 = img0.flip(axis), gt.flip(axis), img1.flip(axis)
    if rng.random() < 0.5:
        img0, img1, t = img1, img0, 1.0 - t
    return Triplet(img0, gt, img1, t)


def augment_pair(pair: FlowPair, rng: np.random.Generator) -> FlowPair:
    """augment's flips and temporal reversal for a pair: flows flip and change sign with the frames."""
    img0, img1, flow, valid = pair.img0, pair.img1, pair.flow, pair.valid
    for axis, components in ((2, [0, 2]), (1, [1, 3])):  # width flips negate x, height flips negate y
        if rng.random() < 0.5:
            img0, img1, flow, valid = img0.flip(axis), img1.flip(axis), flow.flip(axis).clone(), valid.flip(axis)
            flow[components] = -flow[components]
    if rng.random() < 0.5:
        img0, img1, flow, valid = img1, img0, flow[[2, 3, 0, 1]], valid[[1, 0]]
    return FlowPair(img0, img1, flow, valid)


def sample_pairs(sources: Sequence[TripletSource], rng: np.random.Generator, batch: int, crop: int,
                 flows: PairFlows | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(img0, img1, flow, valid) stacked: N x 3, N x 3, N x 4 and N x 2 (bool) x crop x crop."""
    pairs = [augment_pair(sources[int(rng.integers(len(sources)))].sample_pair(rng, crop, flows), rng)
             for _ in range(batch)]
    return tuple(torch.stack([getattr(p, name) for p in pairs])  # type: ignore[return-value]
                 for name in ("img0", "img1", "flow", "valid"))


def sample_batch(sources: Sequence[TripletSource], rng: np.random.Generator, batch: int,
                 crop: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(img0, gt, img1, t) stacked: N x 3 x crop x crop each, t N x 1 x 1 x 1; sources are drawn uniformly."""
    triplets = [augment(sources[int(rng.integers(len(sources)))].sample(rng, crop), rng) for _ in range(batch)]
    img0 = torch.stack([s.img0 for s in triplets])
    gt = torch.stack([s.gt for s in triplets])
    img1 = torch.stack([s.img1 for s in triplets])
    t = torch.tensor([s.t for s in triplets], dtype=torch.float32).view(-1, 1, 1, 1)
    return img0, gt, img1, t
