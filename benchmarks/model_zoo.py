"""What each RIFE 4.x network costs on the CPU at 1280x720: seconds and GFLOP per interpolated frame.

Run: `.venv/bin/python benchmarks/model_zoo.py [--frames 2] [--rounds 2]`. One model per architecture (the first registry name
that uses it; the others are the same network), seeded random weights (a pass costs the same whatever the
weights), through `core.vfi.RIFE` at `multi=2` in fp32 on frames of bigbuckbunny.mp4: the fastest of `--frames`
interpolated frames (each round after one warm-up frame) over `--rounds` rounds that visit every network in turn,
so that other work on a shared machine, which only ever adds time, is unlikely to hit one network in all of them. With plugin 0.2 each source frame's encoder features are computed
once, so a frame costs the blocks plus one encoder pass; GFLOP counts exactly that, as this implementation
computes it (torch's FlopCounterMode: convolutions, 2 FLOP per multiply-add, the warps and resizes not counted;
the upsampling layers run as 3x3 convolutions, 9/4 of a transposed convolution's multiply-adds). Replaces the "Model zoo" section
of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

import torch
import vapoursynth as vs
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import cpu_name, time_ours  # noqa: E402
from conftest import decode_rgb  # noqa: E402
from report import update_section  # noqa: E402
from sample_media import fetch_sample  # noqa: E402

from vsrife import registry  # noqa: E402
from vsrife.models import ARCHITECTURES, InterpolationNet  # noqa: E402

SECTION = "## Model zoo"
WIDTH, HEIGHT = 1280, 720


def representatives() -> dict[str, list[str]]:
    """Architecture -> the RIFE 4.x model names that use it, in registry order."""
    names: dict[str, list[str]] = {}
    for name, entry in registry.MODELS.items():
        if entry.method == "rife" and name.startswith("4."):
            names.setdefault(entry.architecture, []).append(name)
    return names


def gflop_per_frame(net: InterpolationNet, padded_height: int, padded_width: int) -> float:
    """The blocks on one padded pair plus one encoder pass (the new source frame's features), fp32."""
    img0, img1 = torch.rand(2, 1, 3, padded_height, padded_width)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        features = net.encode_frame(img1)
        if features is None:
            net(img0, img1, 0.5, 1.0, False)
        else:
            net(img0, img1, 0.5, 1.0, False, (features, features))
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2, help="interpolated frames timed per model and round")
    parser.add_argument("--rounds", type=int, default=2, help="passes over all the networks")
    args = parser.parse_args()
    frames = decode_rgb(fetch_sample("bigbuckbunny.mp4"), args.frames + 3, width=WIDTH, height=HEIGHT)
    plugin = vs.core.vfi.version  # type: ignore[attr-defined]
    models = representatives()
    seconds: dict[str, float] = {}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        weight_files = {}
        for architecture in models:
            torch.manual_seed(0)
            weight_files[architecture] = Path(folder) / f"{architecture}.pkl"
            torch.save(ARCHITECTURES[architecture]().state_dict(), weight_files[architecture])
        for round_number in range(args.rounds):
            for architecture, names in models.items():
                fastest = min(time_ours(frames, args.frames, model=names[0],
                                        model_path=str(weight_files[architecture])))
                seconds[architecture] = min(fastest, seconds.get(architecture, fastest))
                print(f"round {round_number + 1}: {names[0]} {fastest:.2f} s", flush=True)
    for architecture, names in models.items():
        entry = registry.MODELS[names[0]]
        net = ARCHITECTURES[architecture]().eval()
        padded = (-(-HEIGHT // entry.padding) * entry.padding, -(-WIDTH // entry.padding) * entry.padding)
        parameters = sum(p.numel() for p in net.parameters()) / 1e6
        rows.append(f"| {entry.family} | {', '.join(names)} | {parameters:.1f} M | {padded[1]}x{padded[0]} | "
                    f"{gflop_per_frame(net, *padded):.0f} | {seconds[architecture]:.2f} |")
        print(rows[-1], flush=True)
    update_section(SECTION, (
        f"{SECTION}\n\n"
        f"Every RIFE 4.x network at {WIDTH}x{HEIGHT} on the CPU in fp32 (`benchmarks/model_zoo.py --frames "
        f"{args.frames} --rounds {args.rounds}`): seconds per interpolated frame through `core.vfi.RIFE`, the "
        f"fastest of {args.frames} frames in each of {args.rounds} rounds over all networks (`multi=2`, plugin "
        f"{plugin.major}.{plugin.minor}, each round after one warm-up frame) and GFLOP per frame (the blocks on the "
        f"padded pair plus one encoder pass, as computed here: torch's FlopCounterMode counts the convolutions, "
        f"not the warps and resizes, and our upsampling layers run as 3x3 convolutions). Seeded "
        f"random weights: a pass costs the same whatever the weights, except that 4.0/4.1 rerun blocks on large "
        f"motion, which random weights do not trigger. One run, {datetime.date.today().isoformat()} on "
        f"{cpu_name()} with {torch.get_num_threads()} torch threads, torch {torch.__version__}; the machine was "
        f"shared with other work (the same network measured 1.1 to 1.8 s/frame within a minute there), so the "
        f"fastest frame counts and differences under about 20 % are noise; GFLOP is exact.\n\n"
        "| family | models (same network) | parameters | padded to | GFLOP/frame | s/frame |\n"
        "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"))


if __name__ == "__main__":
    main()
