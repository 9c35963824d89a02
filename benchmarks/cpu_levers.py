"""What each CPU lever of issue 8 buys: RIFE 4.0 forward passes at 1280x720 with the levers switched one by one.

Run: `python -m benchmarks.cpu_levers [--rounds 3] [--compile]` (`build.py bench` runs it without `--compile`). The
module runs directly on two real frames of bigbuckbunny.mp4 padded to 1280x736 (no VapourSynth, no conversions: those
are the peer benchmark's business). Levers: the precision of the convolutions (fp32, bf16), their memory format
(NCHW, channels-last) and the glue between them (vsrife/kernels: the plain-PyTorch reference or the native fused
kernels). `--compile` adds torch.compile (inductor, freezing) of the default configuration and reports its compile
time. Median seconds per pass over alternating rounds; writes benchmarks/results/cpu_levers.json.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F

from testkit.frames import decode_rgb
from testkit.mlrt import load_rife40
from testkit.samples import fetch_sample
from vsrife import kernels
from vsrife.models.rife_v4_0 import RIFE40

from . import harness, render

SAMPLE = "bigbuckbunny.mp4"
PAD = 32  # 1280x736: the multiple of 32 that vs-rife 5.x pads 4.0 to


@dataclass
class Config:
    label: str
    dtype: torch.dtype
    channels_last: bool
    native: bool
    seconds: list[float]


def load(dtype: torch.dtype, channels_last: bool) -> RIFE40:
    net = load_rife40().to(dtype)
    if channels_last:
        net.use_channels_last()
    return net


@contextlib.contextmanager
def glue(native: bool) -> Iterator[None]:
    with contextlib.nullcontext() if native else kernels.reference_only():
        yield


def frames(size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two real frames of the sample (scaled to width x height when given), padded to multiples of PAD."""
    video = decode_rgb(fetch_sample(SAMPLE), 2, *(size or (None, None)))
    pair = torch.from_numpy(video).permute(0, 3, 1, 2)
    height, width = pair.shape[2:]
    padded = F.pad(pair, (0, -width % PAD, 0, -height % PAD), mode="replicate")
    return padded[0:1].contiguous(), padded[1:2].contiguous()


# The convolutions of one RIFE 4.0 pass (four blocks of 2 + 8 + 1): what the profile sums.
CONVOLUTIONS = 44


def convolution_seconds(net: RIFE40, img0: torch.Tensor, img1: torch.Tensor) -> float:
    """Seconds oneDNN spends in the convolutions of one pass (profiled; median of three passes)."""
    from torch.profiler import ProfilerActivity, profile

    totals = []
    for _ in range(3):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            net(img0, img1, 0.5, 1.0, False)
        totals.append(sum(e.self_cpu_time_total for e in prof.key_averages() if e.key == "aten::mkldnn_convolution"))
    return statistics.median(totals) / 1e6


def measure(rounds: int, compile_too: bool, size: tuple[int, int] | None = None) -> dict[str, object]:
    img0, img1 = frames(size)
    width, height = size or (1280, 720)  # the sample's own size
    configs = [
        Config("fp32, NCHW, reference glue", torch.float32, False, False, []),
        Config("fp32, NCHW, native glue", torch.float32, False, True, []),
        Config("fp32, channels-last, native glue", torch.float32, True, True, []),
        Config("bf16, NCHW, reference glue", torch.bfloat16, False, False, []),
        Config("bf16, NCHW, native glue", torch.bfloat16, False, True, []),
        Config("bf16, channels-last, native glue", torch.bfloat16, True, True, []),
    ]
    nets = {(c.dtype, c.channels_last): load(c.dtype, c.channels_last) for c in configs}
    compile_net = load(torch.bfloat16, True) if compile_too else None  # outside inference mode: plain parameters
    compile_seconds = 0.0
    compiled: Callable[[], torch.Tensor] | None = None
    with torch.inference_mode():
        if compile_too:
            import torch._inductor.config as inductor

            inductor.freezing = True
            forward = cast(Callable[..., torch.Tensor], torch.compile(compile_net))
            started = time.perf_counter()
            # the compiler traces the plain-PyTorch glue (it cannot see into the native kernels), outside
            # inference mode, which its graph breaks do not support
            with glue(False), torch.inference_mode(False), torch.no_grad():
                forward(img0, img1, 0.5, 1.0, False)
            compile_seconds = time.perf_counter() - started
            configs.append(Config("bf16, channels-last, reference glue, torch.compile", torch.bfloat16, True, False,
                                  []))
            def compiled() -> torch.Tensor:
                with torch.inference_mode(False), torch.no_grad():
                    return forward(img0, img1, 0.5, 1.0, False)

        for config in configs:  # warm-up: oneDNN primitives, allocator
            with glue(config.native):
                nets[(config.dtype, config.channels_last)](img0, img1, 0.5, 1.0, False)
        for round_index in range(rounds):
            for config in configs:
                net = nets[(config.dtype, config.channels_last)]
                with glue(config.native):
                    run = compiled if "compile" in config.label and compiled else (
                        lambda net=net: net(img0, img1, 0.5, 1.0, False))
                    config.seconds.append(harness.seconds(run))
            print(f"round {round_index + 1}/{rounds}: " + ", ".join(f"{c.label} {c.seconds[-1]:.3f}"
                                                                     for c in configs), flush=True)
        conv_seconds = convolution_seconds(nets[(torch.bfloat16, True)], img0, img1)
    first = statistics.median(configs[0].seconds)
    rows = [{"configuration": c.label, "seconds": statistics.median(c.seconds),
             "speedup": first / statistics.median(c.seconds)} for c in configs]
    print(*rows, sep="\n", flush=True)
    return {"rounds": rounds, "compile": compile_too, "compile_s": compile_seconds, "sample": SAMPLE,
            "size": f"{width}x{height}",
            "padded": f"{img0.shape[3]}x{img0.shape[2]}", "rows": rows, "convolutions_s": conv_seconds,
            "convolutions": CONVOLUTIONS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--size", default=None, help="WIDTHxHEIGHT to scale the frames to (default: 1280x720)")
    args = parser.parse_args(argv)
    size = None
    if args.size:
        width, height = (int(v) for v in args.size.split("x"))
        size = (width, height)
    return render.publish({"cpu_levers": measure(args.rounds, args.compile, size)},
                          f"python -m benchmarks.cpu_levers --rounds {args.rounds}"
                          + (" --compile" if args.compile else ""))


if __name__ == "__main__":
    sys.exit(main())
