"""RRIN's published modules as a yardstick: seeded weights and frames, and the outputs the authors' code recorded.

The authors' `model.py`/`unet.py` (HopLee6/RRIN-PyTorch) and the fork's (Thomasedv/RRIN) are run from checkouts the
user makes outside this repository, never copied into it; tests compare against what they recorded:

    git clone https://github.com/HopLee6/RRIN-PyTorch /tmp/rrin-official && git -C /tmp/rrin-official checkout e868adb
    git clone https://github.com/Thomasedv/RRIN /tmp/rrin-fork && git -C /tmp/rrin-fork checkout 180161f
    python -m testkit.rrin_authors --official /tmp/rrin-official --fork /tmp/rrin-fork

writes `tests/data/rrin_authors.npz` and `.json`. Their code ran on PyTorch 1.0, whose `grid_sample` behaved as
`align_corners=True`; it is run under that behaviour on the CPU (their `warp` calls `.cuda()`, made a no-op here).
Weights and frames come from NumPy's PCG64 and exact float64 arithmetic, so every CPU regenerates them bit for bit.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "data" / "rrin_authors"
WEIGHT_SEED = 2020
FRAME_SEED = 426
SIZES = ((32, 64), (64, 96))  # height, width: multiples of the nets' 16 (the filter pads to 32)
TIMES = (0.5, 0.25)
CELL = 8  # the frames are bilinear over a random grid of this many pixels per cell: smooth enough to warp


def case_name(height: int, width: int, t: float) -> str:
    return f"{height}x{width}_t{t:g}"


def seeded_state(shapes: Mapping[str, tuple[int, ...]], seed: int = WEIGHT_SEED) -> dict[str, Tensor]:
    """Weights for the keys in `shapes` (the authors' names), drawn in sorted key order: convolutions normal /
    sqrt(fan-in), biases normal * 0.05, which keeps the activations of the unnormalised U-Nets in range."""
    rng = np.random.default_rng(seed)
    state = {}
    for name in sorted(shapes):
        shape = shapes[name]
        values = rng.standard_normal(shape)
        values = values / np.sqrt(shape[1] * shape[2] * shape[3]) if len(shape) == 4 else values * 0.05
        state[name] = torch.from_numpy(values.astype(np.float32))
    return state


def seeded_frames(height: int, width: int, seed: int = FRAME_SEED) -> tuple[Tensor, Tensor]:
    """Two smooth 1 x 3 x height x width frames in [0, 1]: a random grid, bilinear between its points."""
    rng = np.random.default_rng(seed + 1000 * height + width)
    fy = (np.arange(height) % CELL / CELL)[:, None]
    fx = (np.arange(width) % CELL / CELL)[None, :]
    rows, columns = (np.arange(height) // CELL)[:, None], (np.arange(width) // CELL)[None, :]
    frames = []
    for _ in range(2):
        grid = rng.random((3, height // CELL + 1, width // CELL + 1))
        top = (1 - fx) * grid[:, rows, columns] + fx * grid[:, rows, columns + 1]
        bottom = (1 - fx) * grid[:, rows + 1, columns] + fx * grid[:, rows + 1, columns + 1]
        frames.append(torch.from_numpy(((1 - fy) * top + fy * bottom).astype(np.float32)).unsqueeze(0))
    return frames[0], frames[1]


@contextmanager
def pytorch_1_0_cpu() -> Iterator[None]:
    """grid_sample as PyTorch 1.0 ran it (align_corners=True), and Tensor.cuda a no-op, while the block runs."""
    grid_sample, cuda = F.grid_sample, torch.Tensor.cuda
    setattr(F, "grid_sample", functools.partial(grid_sample, align_corners=True))  # noqa: B010 (patched for them)
    setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)  # noqa: B010
    try:
        yield
    finally:
        setattr(F, "grid_sample", grid_sample)  # noqa: B010
        setattr(torch.Tensor, "cuda", cuda)  # noqa: B010


def load_published(checkout: Path, alias: str) -> ModuleType:
    """The checkout's `model.py` as module `alias`, with its `unet.py` importable as `unet`."""
    sys.modules.pop("unet", None)
    sys.path.insert(0, str(checkout))
    try:
        spec = importlib.util.spec_from_file_location(alias, checkout / "model.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(checkout))
        sys.modules.pop("unet", None)
    return module


def _commit(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def record(official: Path, fork: Path) -> None:
    """Run both published Nets on the seeded weights and frames; write the fixture (outputs and their provenance)."""
    torch.set_num_threads(1)
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, object] = {"weight_seed": WEIGHT_SEED, "frame_seed": FRAME_SEED, "sizes": SIZES,
                               "times": TIMES, "torch": torch.__version__, "cases": {}}
    outputs: dict[str, dict[str, Tensor]] = {}
    for variant, checkout, flow_name in (("official", official, "Flow_L"), ("fork", fork, "Flow")):
        net = load_published(checkout, f"rrin_{variant}").Net().eval()
        shapes = {key.replace(f"{flow_name}.", "Flow_L.", 1): tuple(value.shape)
                  for key, value in net.state_dict().items()}
        state = {key.replace("Flow_L.", f"{flow_name}.", 1): value for key, value in seeded_state(shapes).items()}
        net.load_state_dict(state, strict=True)
        meta[f"{variant}_commit"] = _commit(checkout)
        outputs[variant] = {}
        with torch.no_grad(), pytorch_1_0_cpu():
            for height, width in SIZES:
                img0, img1 = seeded_frames(height, width)
                for t in TIMES:
                    name = case_name(height, width, t)
                    exact = net.double()(img0.double(), img1.double(), t)
                    single = net.float()(img0, img1, t)
                    outputs[variant][name] = exact
                    cases = meta["cases"]
                    assert isinstance(cases, dict)
                    case = cases.setdefault(name, {})
                    case[f"{variant}_fp32_error"] = float((single.double() - exact).abs().max())
                    case[f"{variant}_sha256"] = hashlib.sha256(exact.numpy().tobytes()).hexdigest()
                    case["clamped_fraction"] = float(((exact == 0) | (exact == 1)).double().mean())
                    if variant == "official":
                        arrays[name] = exact.numpy().astype(np.float32)  # float64 rounded: 3e-8 at most
    for name, exact in outputs["fork"].items():  # the fork's Net is the authors' with Flow_L renamed Flow
        if not torch.equal(exact, outputs["official"][name]):
            arrays[f"fork_{name}"] = exact.numpy().astype(np.float32)
    meta["fork_equals_official"] = not any(name.startswith("fork_") for name in arrays)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE.with_suffix(".npz"), allow_pickle=False, **arrays)
    FIXTURE.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of HopLee6/RRIN-PyTorch")
    parser.add_argument("--fork", type=Path, required=True, help="checkout of Thomasedv/RRIN")
    args = parser.parse_args()
    record(args.official, args.fork)
    return 0


if __name__ == "__main__":
    sys.exit(main())
