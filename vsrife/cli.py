"""``python -m vsrife``: where the plugin is, which models exist, fetch their weights, train RRIN."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

from vsrife import __version__
from vsrife.registry import METHODS, MODELS, ModelEntry, get_model

DISTRIBUTION = "vapoursynth-vfi"
PLUGIN_FILENAME = "libvfi.so"


class CliError(Exception):
    """A failure reported as ``error: <message>`` with exit code 1."""


# ---------------------------------------------------------------------------------------------- plugin-path


def find_plugin() -> Path:
    """The installed native plugin: from our wheel's file list, else VapourSynth's autoload folder."""
    for candidate in (_plugin_from_distribution(), _plugin_from_vapoursynth()):
        if candidate is not None and candidate.is_file():
            return candidate.resolve()
    raise CliError(
        f"{PLUGIN_FILENAME} not found: {DISTRIBUTION} is not installed as a wheel in {sys.prefix} "
        f"and VapourSynth's plugin folder has no {PLUGIN_FILENAME}"
    )


def _plugin_from_distribution() -> Path | None:
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.as_posix().endswith(f"vapoursynth/plugins/{PLUGIN_FILENAME}"):
            return Path(str(file.locate()))
    return None


def _plugin_from_vapoursynth() -> Path | None:
    try:
        import vapoursynth
    except ImportError:
        return None
    return Path(vapoursynth.get_plugin_dir()) / PLUGIN_FILENAME


def _cmd_plugin_path(args: argparse.Namespace) -> int:
    print(find_plugin())
    return 0


# ---------------------------------------------------------------------------------------------- models


def _format_size(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def _model_row(entry: ModelEntry) -> list[str]:
    from vsrife.weights import cache_status

    # Files without a verifiable copy (model_path only, or not released yet) have no hash worth showing.
    hashes = ",".join(w.sha256[:12] if w.sha256 and w.released else "-" for w in entry.files)
    psnr = "-" if entry.reference_psnr_db is None else f"{entry.reference_psnr_db:.2f} dB"
    filter_name = f"vfi.{METHODS[entry.method].filter}"
    return [entry.name, entry.architecture, _format_size(entry.total_size), hashes, cache_status(entry), psnr,
            filter_name]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _cmd_models_list(args: argparse.Namespace) -> int:
    from vsrife.weights import cache_dir, unavailable_reason

    header = ["NAME", "ARCHITECTURE", "SIZE", "SHA256", "CACHED", "REFERENCE PSNR", "FILTER"]
    _print_table(header, [_model_row(entry) for entry in MODELS.values()])
    print(f"\ncache: {cache_dir()}")
    notes = [reason for entry in MODELS.values() if (reason := unavailable_reason(entry)) is not None]
    if notes:
        print("\nnot downloadable (use model_path=):")
        for note in notes:
            print(f"  {note}")
    return 0


def _selected_models(args: argparse.Namespace) -> list[ModelEntry]:
    if args.all and args.names:
        raise CliError("give model names or --all, not both")
    if not args.all and not args.names:
        raise CliError(f"name the models to download or use --all; available: {', '.join(MODELS)}")
    try:
        return list(MODELS.values()) if args.all else [get_model(name) for name in args.names]
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _cmd_models_download(args: argparse.Namespace) -> int:
    from vsrife.weights import WeightsError, ensure_cached, unavailable_reason

    for entry in _selected_models(args):
        reason = unavailable_reason(entry)
        if reason is not None:
            if not args.all:
                raise CliError(reason)
            print(f"{entry.name}: skipped: {reason}")  # --all fetches everything that can be fetched
            continue
        try:
            paths = ensure_cached(entry, progress=not args.quiet)
        except WeightsError as exc:
            raise CliError(f"model {entry.name}: {exc}") from None
        for role, path in paths.items():
            print(f"{entry.name} {role}: {path} (sha256 verified)")
    return 0


# ---------------------------------------------------------------------------------------------- train


def _cmd_train(args: argparse.Namespace) -> int:
    from vsrife.training.data import DataError, open_source
    from vsrife.training.trainer import TrainConfig, Trainer, TrainingError
    from vsrife.weights import WeightsError

    config = TrainConfig(
        out=Path(args.out), steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr, device=args.device,
        precision=args.precision, seed=args.seed, teacher=args.teacher, flow_weight=args.flow_weight,
        flow_loss=args.flow_loss, validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every, data=list(args.data), val=list(args.val or []),
    )
    try:
        validation_fraction = 0.0 if args.val else args.validation_fraction
        sources = [open_source(spec, args.max_span, validation_fraction) for spec in args.data]
        val_sources = [open_source(spec, 2, 1.0) for spec in args.val] if args.val else sources
        trainer = Trainer(config, sources, val_sources)
        if args.resume:
            trainer.resume()
        final = trainer.run(progress=not args.quiet)
    except (DataError, TrainingError, WeightsError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # an unwritable --out, a full disk, a file that vanished mid-run
        raise CliError(f"{exc.strerror or exc}: {exc.filename or args.out}") from None
    print(f"weights: {config.out / 'rrin_fp16.pth'}"
          + ("" if final is None else f" (validation PSNR {final:.2f} dB)"))
    return 0


# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vsrife", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    plugin = commands.add_parser("plugin-path", help="print the path of the installed libvfi.so")
    plugin.set_defaults(run=_cmd_plugin_path)

    models = commands.add_parser("models", help="list models or download their weights")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    listing = model_commands.add_parser("list", help="show the known models and whether they are cached")
    listing.set_defaults(run=_cmd_models_list)
    download = model_commands.add_parser("download", help="fetch and verify model weights into the cache")
    download.add_argument("names", nargs="*", metavar="NAME", help=f"model names ({', '.join(MODELS)})")
    download.add_argument("--all", action="store_true", help="every model in the registry")
    download.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    download.set_defaults(run=_cmd_models_download)

    train = commands.add_parser("train", help="train an interpolation network (RRIN)")
    train_commands = train.add_subparsers(dest="train_command", required=True)
    rrin = train_commands.add_parser(
        "rrin", help="train RRIN from videos, folders of frames and synthetic scenes",
        description="Data specs: PATH[@START:END] (a video or a folder of numbered frames, optionally frames "
                    "START..END-1), synthetic[:DIR] (moving layers cut from the images in DIR; default "
                    "scikit-image's sample images). See docs/TRAINING.md.")
    rrin.add_argument("--data", nargs="+", required=True, metavar="SPEC", help="training data specs")
    rrin.add_argument("--out", required=True, help="run folder: checkpoint.pt, rrin_fp16.pth, train.log")
    rrin.add_argument("--steps", type=int, default=3000, help="optimizer steps in all (default 3000)")
    rrin.add_argument("--batch", type=int, default=4, help="triplets per step (default 4)")
    rrin.add_argument("--crop", type=int, default=128, help="crop size, a multiple of 32 (default 128)")
    rrin.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (default 2e-4)")
    rrin.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    rrin.add_argument("--precision", default="auto",
                      help="auto (bf16 on CPUs with native bf16, fp16 AMP on CUDA, else fp32), fp32, bf16, fp16")
    rrin.add_argument("--seed", type=int, default=0)
    rrin.add_argument("--teacher", default="rife-4.0", choices=("rife-4.0", "none"),
                      help="distil the intermediate flows from this model (default rife-4.0)")
    rrin.add_argument("--flow-weight", type=float, default=0.01,
                      help="weight of the flow distillation term against the image terms (default 0.01)")
    rrin.add_argument("--flow-loss", default="l1", choices=("l1", "l2"),
                      help="distance to the teacher's flows (default l1)")
    rrin.add_argument("--max-span", type=int, default=4,
                      help="widest triplet (i, i+j, i+span) taken from video, t = j/span (default 4)")
    rrin.add_argument("--val", nargs="+", metavar="SPEC",
                      help="validation data; default: the last --validation-fraction of each training video")
    rrin.add_argument("--validation-fraction", type=float, default=0.1)
    rrin.add_argument("--validate-every", type=int, default=250)
    rrin.add_argument("--checkpoint-every", type=int, default=50)
    rrin.add_argument("--resume", action="store_true", help="continue from --out's checkpoint.pt")
    rrin.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rrin.set_defaults(run=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
