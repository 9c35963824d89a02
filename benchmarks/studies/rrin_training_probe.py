"""Quick probes of RRIN training, on training frames only (never frames 0-39 of bikes.mp4, never other clips).

    python -m benchmarks.studies.rrin_training_probe insample WEIGHTS   # frame-drop PSNR on frames 40-188, vs average
    python -m benchmarks.studies.rrin_training_probe overfit --lr 5e-4 --flow-loss l1   # fit one batch's flows
    python -m benchmarks.studies.rrin_training_probe flow WEIGHTS --levels 1 2 3   # Flow_L coarse to fine

`insample` scores a weight file (e.g. a run's rrin_fp16.pth) on every 8th span-2 triplet of frames 40-188, which
the trainer also trains on: a sign of whether the net has learned motion at all, not a quality measurement.
`overfit` trains a fresh net on one fixed batch (4 crops of 64x64 from frames 40 onward) and prints the loss terms
every 15 steps: how fast the flow term can fall at all under a setting.
`flow` scores a weight file's Flow_L run coarse to fine over each number of levels on the flow stage's validation
pairs (the held-back end of bikes.mp4 from frame 40, against the teacher's flows; synthetic scenes with motion up
to --max-motion, against their exact flows), per motion range, as the trainer logs them.
"""

from __future__ import annotations

import argparse
import functools
import operator
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from testkit.samples import fetch_sample
from vsrife.models import build_model
from vsrife.models.rrin import RRIN
from vsrife.training.data import FrameSequence, open_source, sample_batch
from vsrife.training.trainer import TrainConfig, Trainer, psnr

TRAINING_FRAMES = "@40:189"  # in-sample frames: before the trainer's held-back tail


def insample(weights: Path) -> None:
    source = open_source(f"{fetch_sample('bikes.mp4')}{TRAINING_FRAMES}", 2, 0.0)
    assert isinstance(source, FrameSequence)
    firsts = sorted({first for first, span in source.starts if span == 2})[::8]
    net = build_model("rrin", {"model": torch.load(weights, map_location="cpu", weights_only=True)})
    scores, averages = [], []
    with torch.inference_mode():
        for first in firsts:
            img0, gt, img1 = (source.frames[first + i : first + i + 1].float() / 255 for i in range(3))
            height, width = img0.shape[2:]
            pad = (0, -width % 32, 0, -height % 32)
            out = net(F.pad(img0, pad, mode="replicate"), F.pad(img1, pad, mode="replicate"), 0.5, 1.0, False)
            scores.append(psnr(out[:, :, :height, :width], gt))
            averages.append(psnr((img0 + img1) / 2, gt))
    print(f"{len(firsts)} triplets: model {np.mean(scores):.2f} dB, frame average {np.mean(averages):.2f} dB")


def overfit(lr: float, flow_loss: str, precision: str, steps: int, out: Path) -> None:
    sources = [open_source(f"{fetch_sample('bikes.mp4')}@40:", 4, 0.1)]
    trainer = Trainer(TrainConfig(out=out, lr=lr, precision=precision, flow_loss=flow_loss), sources, [])
    batch = sample_batch(sources, np.random.default_rng(3), 4, 64)
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    for step in range(steps + 1):
        terms = trainer.losses(*batch)
        if step % 15 == 0:
            print(step, {name: round(value.item(), 4) for name, value in terms.items()}, flush=True)
        trainer.optimizer.zero_grad(set_to_none=True)
        functools.reduce(operator.add, terms.values()).backward()
        trainer.optimizer.step()


def flow(weights: Path, levels: list[int], max_motion: float) -> None:
    from vsrife.training.flow_stage import flow_scores
    from vsrife.training.flows import TeacherFlows
    from vsrife.training.synthetic import SyntheticMotion
    from vsrife.training.trainer import TEACHER_FLOWS_FOLDER, load_teacher
    from vsrife.weights import cache_dir

    teacher = load_teacher("rife-4.0", torch.device("cpu"))
    assert teacher is not None
    pair_flows = TeacherFlows(teacher, cache_dir() / "_training" / TEACHER_FLOWS_FOLDER / "rife-4.0")
    sources = [open_source(f"{fetch_sample('bikes.mp4')}@40:", 2, 0.1),
               open_source("synthetic", 2, 0.1, SyntheticMotion.up_to(max_motion))]
    pairs = {f"{source.name} (motion up to {max_motion:g} px)" if source.name == "synthetic" else source.name:
             source.validation_pairs(pair_flows) for source in sources}
    net = build_model("rrin", {"model": torch.load(weights, map_location="cpu", weights_only=True)})
    assert isinstance(net, RRIN)
    for count in levels:
        for name, source_pairs in pairs.items():
            print(f"levels {count}: {name}: {flow_scores(net.Flow_L, source_pairs, count).describe()}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    scoring = commands.add_parser("insample")
    scoring.add_argument("weights", type=Path)
    fitting = commands.add_parser("overfit")
    fitting.add_argument("--lr", type=float, default=5e-4)
    fitting.add_argument("--flow-loss", default="l1", choices=("l1", "l2"))
    fitting.add_argument("--precision", default="fp32")
    fitting.add_argument("--steps", type=int, default=60)
    fitting.add_argument("--out", type=Path, default=Path("/tmp/rrin-overfit"))
    flows = commands.add_parser("flow")
    flows.add_argument("weights", type=Path)
    flows.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3])
    flows.add_argument("--max-motion", type=float, default=24.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "insample":
        insample(args.weights)
    elif args.command == "flow":
        flow(args.weights, args.levels, args.max_motion)
    else:
        overfit(args.lr, args.flow_loss, args.precision, args.steps, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
