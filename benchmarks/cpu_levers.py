"""What each CPU lever of issue 8 buys: RIFE 4.0 forward passes at 1280x720 with the levers switched one by one.

Run: `.venv/bin/python benchmarks/cpu_levers.py [--rounds 3] [--compile]` (`build.py bench` runs it without
`--compile`). The module runs directly on two real frames of bigbuckbunny.mp4 padded to 1280x736 (no VapourSynth, no
conversions: those are the peer benchmark's business). Levers: the precision of the convolutions (fp32, bf16), their
memory format (NCHW, channels-last) and the glue between them (vsrife/kernels: the plain-PyTorch reference or the
native fused kernels). `--compile` adds torch.compile (inductor, freezing) of the default configuration and reports
its compile time. Median seconds per pass over alternating rounds; prints the table and replaces the "CPU levers"
section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
from conftest import decode_rgb  # noqa: E402
from report import update_section  # noqa: E402
from sample_media import fetch_sample  # noqa: E402

from mlrt_peer import load_rife40  # noqa: E402

from vsrife import kernels  # noqa: E402
from vsrife.engine import cpu_has_native_bf16  # noqa: E402
from vsrife.models.rife_v4_0 import RIFE40  # noqa: E402

SECTION = "## CPU levers"
PAD = 32  # RIFE 4.0's size multiple at scale 1


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


def frames() -> tuple[torch.Tensor, torch.Tensor]:
    video = decode_rgb(fetch_sample("bigbuckbunny.mp4"), 2)
    pair = torch.from_numpy(video).permute(0, 3, 1, 2)
    height, width = pair.shape[2:]
    padded = F.pad(pair, (0, -width % PAD, 0, -height % PAD), mode="replicate")
    return padded[0:1].contiguous(), padded[1:2].contiguous()


def time_pass(run: Callable[[], torch.Tensor]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def convolution_seconds(net: RIFE40, img0: torch.Tensor, img1: torch.Tensor) -> float:
    """Seconds oneDNN spends in the convolutions of one pass (profiled; median of three passes)."""
    from torch.profiler import ProfilerActivity, profile

    totals = []
    for _ in range(3):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            net(img0, img1, 0.5, 1.0, False)
        totals.append(sum(e.self_cpu_time_total for e in prof.key_averages() if e.key == "aten::mkldnn_convolution"))
    return statistics.median(totals) / 1e6


def measure(rounds: int, compile_too: bool) -> str:
    from bench import cpu_name

    img0, img1 = frames()
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
    compile_note = ""
    compiled: Callable[[], torch.Tensor] | None = None
    with torch.inference_mode():
        if compile_too:
            import torch._inductor.config as inductor

            inductor.freezing = True
            forward = torch.compile(compile_net)
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

            compile_note = f" torch.compile's first pass (compilation) took {compile_seconds:.0f} s."
        for config in configs:  # warm-up: oneDNN primitives, allocator
            with glue(config.native):
                nets[(config.dtype, config.channels_last)](img0, img1, 0.5, 1.0, False)
        for round_index in range(rounds):
            for config in configs:
                net = nets[(config.dtype, config.channels_last)]
                with glue(config.native):
                    run = compiled if "compile" in config.label and compiled else (
                        lambda net=net: net(img0, img1, 0.5, 1.0, False))
                    config.seconds.append(time_pass(run))
            print(f"round {round_index + 1}/{rounds}: " + ", ".join(f"{c.label} {c.seconds[-1]:.3f}"
                                                                     for c in configs), flush=True)
        conv_seconds = convolution_seconds(nets[(torch.bfloat16, True)], img0, img1)
    first = statistics.median(configs[0].seconds)
    rows = [f"| {c.label} | {statistics.median(c.seconds):.3f} | {first / statistics.median(c.seconds):.2f}x |"
            for c in configs]
    table = "| configuration | s/pass | speed-up |\n| --- | --- | --- |\n" + "\n".join(rows)
    print(table, flush=True)
    bf16_note = "has" if cpu_has_native_bf16() else "lacks"
    return (
        f"{SECTION}\n\n"
        f"RIFE 4.0, one forward pass on two real 1280x720 frames of bigbuckbunny.mp4 padded to "
        f"{img0.shape[3]}x{img0.shape[2]}, {datetime.date.today().isoformat()} on {cpu_name()} ({bf16_note} native "
        f"bf16), {torch.get_num_threads()} torch threads, torch {torch.__version__}. Command: "
        f"`benchmarks/cpu_levers.py --rounds {rounds}{' --compile' if compile_too else ''}` (`build.py bench` runs "
        f"it). Median over {rounds} alternating rounds after one warm-up pass each.{compile_note} The engine's "
        "default on the CPU is the last plain row: channels-last with the native glue, bf16 on CPUs with native "
        "bf16. In every row the flow, the warps and the blend are float32; only the convolutions change precision. "
        "Glue: the memory-bound work between the convolutions (warping both frames, resizing, concatenating, "
        "upsampling each block's output and adding it to the flow, the final blend); the reference is "
        "vsrife/kernels/reference.py in plain PyTorch (what CUDA runs), the native glue is vsrife/kernels/glue.cpp, "
        "which fuses each step into one pass and only warps the pixels that a downscaled block reads.\n\n"
        f"{table}\n\n"
        f"The convolutions alone (oneDNN's time for the 44 convolutions of one pass of the default configuration, "
        f"from torch.profiler): {conv_seconds:.3f} s; everything else in that pass: the rest of its time.\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    args = parser.parse_args()
    update_section(SECTION, measure(args.rounds, args.compile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
