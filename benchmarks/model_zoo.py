"""What each RIFE 4.x network costs on the CPU at 1280x720: seconds and GFLOP per interpolated frame.

Run: `python -m benchmarks.model_zoo [--frames 2] [--rounds 2]`. One model per architecture (the first registry name
that uses it; the others are the same network), seeded random weights (a pass costs the same whatever the weights),
through `core.vfi.RIFE` at `multi=2` in fp32 on frames of bigbuckbunny.mp4: the fastest of `--frames` interpolated
frames (each round after one warm-up frame) over `--rounds` rounds that visit every network in turn, so that other
work on a shared machine, which only ever adds time, is unlikely to hit one network in all of them. With plugin 0.2
each source frame's encoder features are computed once, so a frame costs the blocks plus one encoder pass; GFLOP
counts exactly that, as this implementation computes it (torch's FlopCounterMode: convolutions, 2 FLOP per multiply-
add, the warps and resizes not counted; the upsampling layers run as 3x3 convolutions, 9/4 of a transposed
convolution's multiply-adds). Writes benchmarks/results/model_zoo-<CPU kind>.json (one result per harness.CPU_KINDS);
docs/BENCHMARKS.md shows each with every network's time per GFLOP relative to 4.0's (issue 21: at most 1.25).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import vapoursynth as vs
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, register_flop_formula

from testkit.frames import decode_rgb
from testkit.samples import fetch_sample
from vsrife import registry
from vsrife.models import ARCHITECTURES, InterpolationNet

from . import harness, render

WIDTH, HEIGHT = 1280, 720


def representatives() -> dict[str, list[str]]:
    """Architecture -> the RIFE 4.x model names that use it, in registry order."""
    names: dict[str, list[str]] = {}
    for name, entry in registry.MODELS.items():
        if entry.method == "rife" and name.startswith("4."):
            names.setdefault(entry.architecture, []).append(name)
    return names


@register_flop_formula(torch.ops.mkldnn._convolution_pointwise)
def _fused_convolution_flop(x_shape: list[int], *args: object, out_shape: list[int], **_: object) -> int:
    """The convolution's FLOP in oneDNN's fused convolution (vsrife.models.layers.conv3x3), which torch does not
    count: its weight is the second argument (.default) or the third (.binary, after the summand)."""
    shapes = [a for a in args[:2] if isinstance(a, (list, tuple, torch.Size)) and len(a) == 4]
    return int(conv_flop_count(list(x_shape), list(shapes[-1]), list(out_shape), transposed=False))


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


def measure(frame_count: int, rounds: int, architectures: list[str] | None = None) -> dict[str, object]:
    frames = decode_rgb(fetch_sample("bigbuckbunny.mp4"), frame_count + 3, width=WIDTH, height=HEIGHT)
    plugin = vs.core.vfi.version
    models = {a: names for a, names in representatives().items() if architectures is None or a in architectures}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        weight_files = {}
        for architecture in models:
            torch.manual_seed(0)
            weight_files[architecture] = Path(folder) / f"{architecture}.pkl"
            torch.save(ARCHITECTURES[architecture]().state_dict(), weight_files[architecture])
        for round_number in range(rounds):
            for architecture, names in models.items():
                fastest = min(harness.time_filter(frames, frame_count, model=names[0],
                                                  model_path=str(weight_files[architecture])))
                seconds[architecture] = min(fastest, seconds.get(architecture, fastest))
                print(f"round {round_number + 1}: {names[0]} {fastest:.2f} s", flush=True)
    rows = []
    for architecture, names in models.items():
        entry = registry.MODELS[names[0]]
        net = ARCHITECTURES[architecture]().eval()
        padded = (-(-HEIGHT // entry.padding) * entry.padding, -(-WIDTH // entry.padding) * entry.padding)
        rows.append({"family": entry.family, "models": names,
                     "parameters_m": sum(p.numel() for p in net.parameters()) / 1e6,
                     "padded": f"{padded[1]}x{padded[0]}", "gflop": gflop_per_frame(net, *padded),
                     "seconds": seconds[architecture]})
        print(rows[-1], flush=True)
    return {"frames": frame_count, "rounds": rounds, "plugin": f"{plugin.major}.{plugin.minor}", "width": WIDTH,
            "height": HEIGHT, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2, help="interpolated frames timed per model and round")
    parser.add_argument("--rounds", type=int, default=2, help="passes over all the networks")
    parser.add_argument("--architectures", nargs="*", default=None, help="only these (default: every 4.x network)")
    args = parser.parse_args(argv)
    return render.publish({f"model_zoo-{harness.cpu_kind()}": measure(args.frames, args.rounds, args.architectures)},
                          f"python -m benchmarks.model_zoo --frames {args.frames} --rounds {args.rounds}")


if __name__ == "__main__":
    sys.exit(main())
