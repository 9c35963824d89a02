"""The RRIN trainer: stages, sampling, losses, mixed precision, checkpoints that resume bit for bit, validation, logs.

Stages (docs/TRAINING.md), each a run folder of its own that starts from the previous one's weights (--init):
- flow: `Flow_L` alone regresses the bidirectional flows F0->1, F1->0 (exact ones of synthetic scenes, a teacher's
  on real frames), masked where they are unknown (occlusions, soft edges, inconsistent teacher flows);
- fuse: `refine_flow`, `Mask` and `final` on the image losses with the flow net frozen;
- joint: everything: Charbonnier on the final frame and on the blend before the image residue, plus, with a
  teacher, an L1 distillation of the intermediate flows towards RIFE 4.0's flows for the same triplet and t.
"""

from __future__ import annotations

import functools
import math
import operator
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..devices import select_device
from ..errors import VfiError
from ..models.rrin import RRIN, RRINOutputs, coarse_to_fine, pyramid_alignment
from ..parameters import MAX_FLOW_LEVELS
from ..precision import cpu_has_native_bf16
from .data import PairFlows, Triplet, TripletSource, sample_batch, sample_pairs
from .flow_stage import flow_scores, pyramid_flow_loss

CHARBONNIER_EPS = 1e-3
CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "rrin_fp16.pth"
LOG_NAME = "train.log"
WARMUP_STEPS = 50
FINAL_LR_FRACTION = 0.05
TEACHER_FLOWS_FOLDER = "teacher_flows"  # under the model cache's _training folder, per teacher

# What each stage trains (the others stay frozen at their --init weights).
STAGE_NETS = {
    "flow": ("Flow_L",),
    "fuse": ("refine_flow", "Mask", "final"),
    "joint": ("Flow_L", "refine_flow", "Mask", "final"),
}


class TrainingError(VfiError, ValueError):
    """A training setting or checkpoint that cannot be used; the message is meant for the user."""


@dataclass
class TrainConfig:
    out: Path
    steps: int = 3000
    batch: int = 4
    crop: int = 128
    lr: float = 2e-4
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    teacher: str = "rife-4.0"  # or "none"
    flow_weight: float = 0.01  # per pixel of flow error, relative to the Charbonnier image terms
    flow_loss: str = "l1"  # distance to the teacher's flows: "l1" (pixels) or "l2" (pixels squared)
    blend_weight: float = 0.5
    validate_every: int = 250
    checkpoint_every: int = 50
    stage: str = "joint"  # flow, fuse or joint (STAGE_NETS)
    init: str = ""  # weights to start from (a weight file or a run's checkpoint.pt); "" = fresh init
    clip_grad_norm: float = 0.0  # 0: no clipping
    head_lr_scale: float = 1.0  # learning-rate factor of each trained U-Net's last convolution
    levels: int = 1  # Flow_L coarse to fine over this many levels, in training and validation
    data: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)


# L1 gives every flow error the same pull; L2 weights large (coherent, whole-crop) motion errors more.
FLOW_DISTANCES = {
    "l1": lambda error: error.abs().mean(),
    "l2": lambda error: error.square().mean(),
}


def charbonnier(x: Tensor, y: Tensor) -> Tensor:
    return torch.sqrt((x - y) ** 2 + CHARBONNIER_EPS**2).mean()


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then a cosine decay to FINAL_LR_FRACTION of the peak."""
    if step < WARMUP_STEPS:
        return config.lr * (step + 1) / WARMUP_STEPS
    progress = min(1.0, (step - WARMUP_STEPS) / max(1, config.steps - WARMUP_STEPS))
    return config.lr * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` (None: plain fp32); auto = bf16 on native-bf16 CPUs, fp16 on CUDA."""
    name = precision.strip().lower()
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    choices = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in choices:
        raise TrainingError(f"precision '{precision}' is not supported; choose auto, fp32, bf16 or fp16")
    if name == "fp16" and device.type != "cuda":
        raise TrainingError("fp16 training needs CUDA; use bf16 or fp32 on the CPU")
    return choices[name]


# The heads start small but not zero: a zero head passes no gradient into its U-Net, and with random features the
# head itself cannot grow either, so nothing learns (measured: no flow gain in 440 steps with zeroed heads).
HEAD_INIT_SCALE = 0.1


def init_for_training(model: RRIN) -> None:
    """He init for the LeakyReLU convs with zero biases; each U-Net's head scaled down to HEAD_INIT_SCALE.

    PyTorch's default conv init shrinks the signal at every layer, so through a U-Net's ~20 unnormalised convs the
    heads would see almost constant features.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, a=0.1, nonlinearity="leaky_relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    with torch.no_grad():
        for unet in (model.Flow_L, model.refine_flow, model.Mask, model.final):
            unet.last.weight.mul_(HEAD_INIT_SCALE)


def load_teacher(name: str, device: torch.device) -> nn.Module | None:
    if name == "none":
        return None
    from .. import registry, weights
    from ..models import build_model, skeleton

    try:
        entry = registry.get_model(name.removeprefix("rife-"))
    except ValueError as exc:
        raise TrainingError(f"teacher {name!r}: {exc}") from None
    if entry.method != "rife" or not hasattr(skeleton(entry.architecture), "estimate"):
        raise TrainingError(f"teacher {name!r} does not expose RIFE's flows; use a RIFE 4.x model or none")
    net = build_model(entry.architecture, weights.load_state_dicts(weights.resolve_weight_files(entry, None)))
    return net.to(device)


def teacher_flows(teacher: nn.Module, img0: Tensor, img1: Tensor, t: Tensor) -> Tensor:
    """The teacher's flows from time t to frames 0 and 1 (N x 4), computed at its own size multiple."""
    align = teacher.alignment(1.0)  # type: ignore[operator]
    height, width = img0.shape[2:]
    bottom, right = -height % align, -width % align
    pad = (0, right, 0, bottom)
    with torch.no_grad():
        flow = teacher.estimate(F.pad(img0, pad, mode="replicate"), F.pad(img1, pad, mode="replicate"),  # type: ignore[operator]
                                t, 1.0, False)[0]
    return flow[:, :, :height, :width]


def load_init(model: RRIN, path: str) -> None:
    """Start from the weights in `path`: a state dict (fp16 or fp32, the authors' names) or a run's checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"--init: cannot read {path}: {type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    own = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(own):
        raise TrainingError(f"--init: {path} is not an RRIN weight file (its keys differ from the network's)")
    model.load_state_dict({name: value.to(own[name].dtype) for name, value in state.items()})


def psnr(x: Tensor, y: Tensor) -> float:
    mse = float(((x.clamp(0, 1) - y) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


class Trainer:
    """One training run in `config.out`: resumable, logged, validated."""

    def __init__(self, config: TrainConfig, sources: Sequence[TripletSource],
                 val_sources: Sequence[TripletSource]) -> None:
        if not sources:
            raise TrainingError("no training data; give --data PATH ...")
        if not 1 <= config.levels <= MAX_FLOW_LEVELS:
            raise TrainingError(f"--levels must be 1 to {MAX_FLOW_LEVELS} (got {config.levels})")
        align = pyramid_alignment(config.levels)
        if config.crop <= 0 or config.crop % align:
            raise TrainingError(f"--crop must be a positive multiple of {align}"
                                + (f" with --levels {config.levels}" if align > 32 else "") + f" (got {config.crop})")
        if config.batch <= 0 or config.steps <= 0:
            raise TrainingError("--batch and --steps must be positive")
        if config.validate_every <= 0 or config.checkpoint_every <= 0:
            raise TrainingError("--validate-every and --checkpoint-every must be positive")
        if not (config.lr > 0 and math.isfinite(config.lr)):
            raise TrainingError(f"--lr must be a positive number (got {config.lr})")
        if not (config.flow_weight >= 0 and config.blend_weight >= 0):
            raise TrainingError("the loss weights must not be negative")
        if config.flow_loss not in FLOW_DISTANCES:
            raise TrainingError(f"--flow-loss must be one of {', '.join(FLOW_DISTANCES)} (got {config.flow_loss!r})")
        if config.stage not in STAGE_NETS:
            raise TrainingError(f"--stage must be one of {', '.join(STAGE_NETS)} (got {config.stage!r})")
        if not (config.head_lr_scale > 0 and math.isfinite(config.head_lr_scale)):
            raise TrainingError(f"--head-lr-scale must be positive (got {config.head_lr_scale})")
        if not (config.clip_grad_norm >= 0 and math.isfinite(config.clip_grad_norm)):
            raise TrainingError(f"--clip-grad-norm must be 0 (off) or positive (got {config.clip_grad_norm})")
        if config.stage == "flow" and config.teacher == "none" and any(
                isinstance(getattr(source, "frames", None), Tensor) for source in sources):
            raise TrainingError("the flow stage needs --teacher for the flows of real frames (or synthetic data only)")
        for source in sources:  # found now rather than at the first batch that draws from it
            frames = getattr(source, "frames", None)
            if isinstance(frames, Tensor) and min(frames.shape[-2:]) < config.crop:
                height, width = frames.shape[-2:]
                raise TrainingError(f"{source.name}: frames of {width}x{height} are smaller than --crop {config.crop}")
        self.config = config
        self.sources = list(sources)
        try:
            self.device = select_device(config.device)
        except ValueError as exc:  # the engine's EngineError: the message names the available devices
            raise TrainingError(f"--device: {exc}") from None
        self.amp_dtype = autocast_dtype(config.precision, self.device)
        torch.manual_seed(config.seed)
        self.model = RRIN()
        init_for_training(self.model)
        if config.init:
            load_init(self.model, config.init)
        self.model.flow_levels = config.levels
        self.model = self.model.to(self.device)
        self.model.train()
        trained = [getattr(self.model, name) for name in STAGE_NETS[config.stage]]
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        for net in trained:
            net.requires_grad_(True)
        heads = [p for net in trained for p in net.last.parameters()]
        bodies = [p for net in trained for p in net.parameters() if all(p is not head for head in heads)]
        # For Adam a larger rate on the head is an output scale: flows of tens of pixels need large head weights.
        groups = [{"params": bodies, "lr_scale": 1.0}, {"params": heads, "lr_scale": config.head_lr_scale}]
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=1e-4)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.rng = np.random.default_rng(config.seed)
        random.seed(config.seed)
        self.step = 0
        # fuse trains on the image alone; flow needs the teacher on real frames only; joint distils at every step
        self.teacher = None if config.stage == "fuse" else load_teacher(config.teacher, self.device)
        config.out.mkdir(parents=True, exist_ok=True)
        self.pair_flows: PairFlows | None = None
        if config.stage == "flow":
            from .flows import TeacherFlows

            if self.teacher is not None:
                # shared by every run: a pair's flows depend only on its frames and the teacher
                from .. import weights

                folder = weights.cache_dir() / "_training" / TEACHER_FLOWS_FOLDER / config.teacher
                self.pair_flows = TeacherFlows(self.teacher, folder)
            self.validation_pairs = {source.name: source.validation_pairs(self.pair_flows)
                                     for source in val_sources}
        else:
            self.validation: dict[str, list[Triplet]] = {}  # by source and span: motion of different sizes
            for source in val_sources:
                for triplet in source.validation():
                    name = source.name + (f" span {triplet.span}" if triplet.span else "")
                    self.validation.setdefault(name, []).append(triplet)

    # ------------------------------------------------------------------------------------------ checkpoints

    def checkpoint_path(self) -> Path:
        return self.config.out / CHECKPOINT_NAME

    def save_checkpoint(self) -> None:
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "python_rng": random.getstate(),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.config).items()},
        }
        _atomic_save(state, self.checkpoint_path())
        self.export_weights(self.config.out / WEIGHTS_NAME)

    def resume(self) -> None:
        path = self.checkpoint_path()
        if not path.is_file():
            raise TrainingError(f"--resume: no checkpoint at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise TrainingError(f"--resume: cannot read {path}: {type(exc).__name__}: {exc}") from None
        stage = state.get("config", {}).get("stage", "joint")
        if stage != self.config.stage:
            raise TrainingError(f"--resume: {path} is a {stage} stage run; resume it with --stage {stage}, or "
                                f"start the {self.config.stage} stage in a new --out with --init {path}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        random.setstate(_as_tuple(state["python_rng"]))
        self.step = int(state["step"])

    def export_weights(self, path: Path) -> None:
        """The inference state dict in fp16 (what ships as model="rrin")."""
        half = {k: v.detach().to("cpu", torch.float16) for k, v in self.model.state_dict().items()}
        _atomic_save(half, path)

    # ------------------------------------------------------------------------------------------ steps

    def losses(self, img0: Tensor, gt: Tensor, img1: Tensor, t: Tensor) -> dict[str, Tensor]:
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            out: RRINOutputs = self.model.estimate(img0, img1, t)
        terms = {
            "image": charbonnier(out.output.float(), gt),
            "blend": self.config.blend_weight * charbonnier(out.blend.float(), gt),
        }
        if self.teacher is not None:
            target = teacher_flows(self.teacher, img0, img1, t)
            flows = torch.cat((out.flow_t0, out.flow_t1), 1).float()
            terms["flow"] = self.config.flow_weight * FLOW_DISTANCES[self.config.flow_loss](flows - target)
        return terms

    def flow_losses(self, img0: Tensor, img1: Tensor, flow: Tensor, valid: Tensor) -> dict[str, Tensor]:
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            estimates = coarse_to_fine(self.model.Flow_L, img0, img1, self.config.levels)
        return pyramid_flow_loss(estimates, flow, valid)

    def batch_terms(self) -> dict[str, Tensor]:
        """The loss terms of one freshly drawn batch for this stage."""
        config = self.config
        if config.stage == "flow":
            batch = sample_pairs(self.sources, self.rng, config.batch, config.crop, self.pair_flows)
            img0, img1, flow, valid = (x.to(self.device) for x in batch)
            return self.flow_losses(img0, img1, flow, valid)
        img0, gt, img1, t = (x.to(self.device) for x in sample_batch(self.sources, self.rng, config.batch,
                                                                      config.crop))
        return self.losses(img0, gt, img1, t)

    def train_step(self) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, self.step) * group["lr_scale"]
        terms = self.batch_terms()
        loss: Tensor = functools.reduce(operator.add, terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for group in self.optimizer.param_groups for p in group["params"]], self.config.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}}

    def validate(self) -> float | None:
        """Mean PSNR (dB) on the held-back triplets, on whole frames padded like the filter pads them; for the flow
        stage the end-point error (pixels) on the held-back pairs, with its ranges written to the log."""
        if self.config.stage == "flow":
            pairs = [pair for source_pairs in self.validation_pairs.values() for pair in source_pairs]
            if not pairs:
                return None
            self.model.eval()
            self.flow_scores = {name: flow_scores(self.model.Flow_L, source_pairs, self.config.levels)
                                for name, source_pairs in self.validation_pairs.items() if source_pairs}
            self.model.train()
            return float(np.mean([scores.epe for scores in self.flow_scores.values()]))
        if not self.validation:
            return None
        self.model.eval()
        self.psnr_scores: dict[str, tuple[float, float, int]] = {}  # (model, frame average, triplets) per group
        align = self.model.alignment(1.0)
        with torch.no_grad():
            for name, triplets in self.validation.items():
                scores, averages = [], []
                for triplet in triplets:
                    img0, gt, img1 = (x.unsqueeze(0).to(self.device) for x in (triplet.img0, triplet.gt, triplet.img1))
                    height, width = img0.shape[2:]
                    pad = (0, -width % align, 0, -height % align)
                    out = self.model(F.pad(img0, pad, mode="replicate"), F.pad(img1, pad, mode="replicate"),
                                     triplet.t, 1.0, False)
                    scores.append(psnr(out[:, :, :height, :width].float(), gt))
                    averages.append(psnr((1 - triplet.t) * img0 + triplet.t * img1, gt))
                self.psnr_scores[name] = (float(np.mean(scores)), float(np.mean(averages)), len(triplets))
        self.model.train()
        return float(np.mean([score for score, _, count in self.psnr_scores.values() for _ in range(count)]))

    def run(self, progress: bool = True) -> float | None:
        """Train until config.steps; checkpoint and validate at their intervals; returns the last validation PSNR."""
        from tqdm import tqdm

        config = self.config
        log = open(config.out / LOG_NAME, "a", encoding="utf-8")  # noqa: SIM115 (closed in the finally below)
        last_val: float | None = None
        started = time.perf_counter()
        start_step = self.step
        bar = tqdm(total=config.steps, initial=self.step, disable=not progress, unit="step", dynamic_ncols=True)
        try:
            _log(log, f"start step={self.step} device={self.device} autocast={self.amp_dtype} "
                      f"threads={torch.get_num_threads()} config={asdict(config)}")
            while self.step < config.steps:
                terms = self.train_step()
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss']:.4f}", refresh=False)
                if self.step % 10 == 0 or self.step == config.steps:
                    rate = (self.step - start_step) / (time.perf_counter() - started)
                    _log(log, f"step {self.step} lr {learning_rate(config, self.step - 1):.2e} "
                              + " ".join(f"{k} {v:.5f}" for k, v in terms.items()) + f" steps/s {rate:.3f}")
                if self.step % config.validate_every == 0 or self.step == config.steps:
                    last_val = self.validate()
                    if last_val is not None and config.stage == "flow":
                        for name, scores in self.flow_scores.items():
                            _log(log, f"step {self.step} validation {name} {scores.describe()}")
                        bar.write(f"step {self.step}: validation end-point error {last_val:.3f} px")
                    elif last_val is not None:
                        for name, (score, average, count) in self.psnr_scores.items():
                            _log(log, f"step {self.step} validation {name} psnr {score:.3f} (frame average "
                                      f"{average:.3f}, {count} triplets)")
                        _log(log, f"step {self.step} validation_psnr {last_val:.3f}")
                        bar.write(f"step {self.step}: validation PSNR {last_val:.2f} dB")
                if self.step % config.checkpoint_every == 0 or self.step == config.steps:
                    self.save_checkpoint()
            _log(log, f"done step={self.step} wall_s={time.perf_counter() - started:.0f}")
        finally:
            bar.close()
            log.close()
        return last_val


def _as_tuple(value: Any) -> Any:
    """random.setstate needs tuples where torch.save may hand back lists."""
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def _atomic_save(obj: object, path: Path) -> None:
    partial = path.with_name(f".{path.name}.part")
    torch.save(obj, partial)
    os.replace(partial, path)


def _log(log: object, line: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    log.write(f"{stamp} {line}\n")  # type: ignore[attr-defined]
    log.flush()  # type: ignore[attr-defined]
