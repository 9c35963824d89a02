"""Peak resident memory of one interpolation pass, measured in a fresh process (its own VmHWM).

Run as a module from the repository root; prints one JSON object. Used by tests/test_tiling.py (tiled 4K through
RRIN) and benchmarks/rrin.py, benchmarks/memory_rrin.py (untiled passes at several sizes, for the bytes-per-pixel
model):

    python -m testkit.memory_probe --model rrin --width 3840 --height 2160 --tile 512 --overlap 64

The pair is frames 100 and 102 of bikes.mp4 scaled to the size (the content matters to RIFE 4.0, whose
large-motion retry runs block 0 twice). RRIN gets seeded random weights unless --weights names a file; RIFE 4.0 its
real weights. Everything runs on the CPU in fp32 under torch.inference_mode.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from testkit.samples import fetch_sample
from vsrife import registry, tiling, weights
from vsrife.models import InterpolationNet, build_model
from vsrife.models.rrin import RRIN

PAIR = (100, 102)  # real motion, no cut; frames 0-39 are the frame-drop protocol's and stay out of tuning


class StopAfterTiles(Exception):  # noqa: N818 - a signal that ends a pass early, not an error
    """Raised from synthesize to end a tiled pass early (see --max-tiles)."""


def decode_frames(path: Path, indices: tuple[int, ...], width: int, height: int) -> np.ndarray:
    """Frames `indices` (ascending) of a video as float32 RGB in [0, 1], shape (n, height, width, 3), via ffmpeg."""
    import imageio_ffmpeg

    select = "+".join(f"eq(n\\,{i})" for i in indices)
    raw = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path),
         "-vf", f"select='{select}',scale={width}:{height}", "-fps_mode", "passthrough",
         "-frames:v", str(len(indices)), "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
        check=True, capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(indices), height, width, 3).astype(np.float32) / 255.0


def load_net(model: str, weight_file: str | None = None, seed: int = 0) -> InterpolationNet:
    """RIFE 4.0 with its real weights, or RRIN with `weight_file` (else seeded random weights); eval, CPU, fp32."""
    if model == "rrin":
        if weight_file is not None:
            return build_model("rrin", weights.load_state_dicts({"model": Path(weight_file)}))
        torch.manual_seed(seed)
        return RRIN().requires_grad_(False).eval()
    entry = registry.get_model(model)
    return build_model(entry.architecture, weights.load_state_dicts(weights.resolve_weight_files(entry, None)))


def memory_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def command(*options: str) -> list[str]:
    """The command line that runs the probe in a fresh process (from the repository root: see ROOT)."""
    return [sys.executable, "-m", "testkit.memory_probe", *options]


# Where the probe's command runs, so that ``-m testkit.memory_probe`` finds the package.
ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rrin", help="rrin or a registry name such as 4.0")
    parser.add_argument("--weights", default=None, help="RRIN weight file (default: seeded random weights)")
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--tile", type=int, default=0, help="0: one untiled pass, padded to the alignment")
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--max-tiles", type=int, default=0, help="stop a tiled pass after this many tiles (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--levels", type=int, default=1, help="RRIN's coarse-to-fine levels (0: its automatic choice)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    net = load_net(args.model, args.weights)
    net.use_flow_levels(args.levels, args.width, args.height)
    align = net.alignment(1.0)
    frames = decode_frames(fetch_sample("bikes.mp4"), PAIR, args.width, args.height)
    img0, img1 = (torch.from_numpy(frames[i]).permute(2, 0, 1)[None].contiguous() for i in range(2))
    del frames
    before = memory_status()
    tile_rss: list[int] = []

    def synthesize(a: Tensor, b: Tensor) -> Tensor:
        if args.max_tiles and len(tile_rss) == args.max_tiles:
            raise StopAfterTiles
        tile_rss.append(memory_status()["VmRSS"])
        return net(a, b, 0.5, 1.0, False)

    started = time.perf_counter()
    completed = True
    with torch.inference_mode():
        try:
            if args.tile:
                out = tiling.interpolate_tiled(synthesize, img0, img1, tile=args.tile, overlap=args.overlap,
                                               align=align)
            else:
                pad = (0, -args.width % align, 0, -args.height % align)
                out = synthesize(F.pad(img0, pad, mode="replicate"), F.pad(img1, pad, mode="replicate"))
                out = out[:, :, : args.height, : args.width]
            assert out.shape[2:] == (args.height, args.width)
        except StopAfterTiles:
            completed = False
    elapsed = time.perf_counter() - started
    after = memory_status()
    print(json.dumps({
        "model": args.model, "width": args.width, "height": args.height, "tile": args.tile, "overlap": args.overlap,
        "align": align, "levels": args.levels, "threads": args.threads, "tiles": len(tile_rss), "completed": completed,
        "seconds": round(elapsed, 2), "rss_before": before["VmRSS"], "hwm_before": before["VmHWM"],
        "peak_rss": after["VmHWM"], "rss_after": after["VmRSS"], "tile_rss": tile_rss,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
