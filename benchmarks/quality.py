"""Frame-drop quality on frames 0-39 of bikes.mp4 for every model with published weights, and the neighbour average.

Frame-drop protocol: keep the even frames, interpolate the odd ones with `multi=2` (CPU fp32), mean PSNR against
the real odd frames (full-range RGB); the published column is the published inference code's score (the
registry's reference_psnr_db). RRIN is scored once real weights are measured (--rrin-weights or the shipped ones).

Run: `python -m benchmarks.quality [--rrin-weights FILE]`; writes benchmarks/results/quality.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from testkit.frames import decode_rgb, frame_drop_psnr, psnr
from testkit.samples import fetch_sample
from vsrife import registry

from . import render

# (model, extra filter arguments); ensembles where the model has an optional one
RUNS: tuple[tuple[str, dict[str, int]], ...] = (
    ("4.0", {}), ("4.0", {"ensemble": 1}), ("3.1", {}), ("3.5", {}), ("3.8", {}), ("3.8", {"ensemble": 1}),
)


def neighbour_average_psnr(frames: np.ndarray) -> float:
    """The frame-drop protocol with the mean of the two kept neighbours as the 'interpolation'."""
    return float(np.mean([psnr((frames[2 * k] + frames[2 * k + 2]) / 2, frames[2 * k + 1])
                          for k in range((len(frames) - 1) // 2)]))


def measure(rrin_weights: Path | None = None,
            runs: tuple[tuple[str, dict[str, int]], ...] = RUNS) -> dict[str, list[dict[str, object]]]:
    bikes40 = decode_rgb(fetch_sample("bikes.mp4"), 40)
    rows: list[dict[str, object]] = [{"model": "neighbour average", "ours_db": neighbour_average_psnr(bikes40),
                                      "published_db": None}]
    for name, extra in runs:
        published = registry.get_model(name).reference_psnr_db if not extra else None
        label = f"RIFE {name}" + "".join(f", {key}={value}" for key, value in extra.items())
        rows.append({"model": label, "ours_db": frame_drop_psnr(bikes40, "RIFE", "fp32", model=name, **extra),
                     "published_db": published})
        print(rows[-1], flush=True)
    if rrin_weights is not None or registry.get_model("rrin").released:
        extra_args = {} if rrin_weights is None else {"model_path": str(rrin_weights)}
        label = "shipped weights" if rrin_weights is None else f"weights {rrin_weights.name}"
        rows.append({"model": f"RRIN ({label})", "ours_db": frame_drop_psnr(bikes40, "RRIN", model="rrin",
                                                                             **extra_args), "published_db": None})
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rrin-weights", type=Path, default=None, help="also score RRIN with these weights")
    parser.add_argument("--models", nargs="*", default=None, help="only these RIFE models (default: all above)")
    parser.add_argument("--no-record", action="store_true",
                        help="print the scores only; keep the recorded result (a trial with --models or weights)")
    args = parser.parse_args(argv)
    runs = RUNS if args.models is None else tuple(run for run in RUNS if run[0] in args.models)
    data = measure(args.rrin_weights, runs)
    if args.no_record:
        for row in data["rows"]:
            print(f"{row['model']}: {row['ours_db']:.2f} dB", flush=True)
        return 0
    return render.publish({"quality": data}, "python -m benchmarks.quality")


if __name__ == "__main__":
    sys.exit(main())
