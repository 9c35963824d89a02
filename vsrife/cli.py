"""``python -m vsrife``: interpolate videos and stills, print scripts, manage weights, train RRIN."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsrife import __version__, model_commands, parameters
from vsrife.errors import CliError, VfiError
from vsrife.parameters import parse_fraction
from vsrife.registry import METHODS, MODELS, ModelEntry, get_model

if TYPE_CHECKING:
    from vsrife.planning import Plan

DISTRIBUTION = "vapoursynth-vfi"
PLUGIN_FILENAME = "libvfi.so"


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


# ---------------------------------------------------------------------------------------------- train


def _cmd_train(args: argparse.Namespace) -> int:
    from vsrife.training.data import open_source
    from vsrife.training.synthetic import SyntheticMotion
    from vsrife.training.trainer import TrainConfig, Trainer, TrainingError

    config = TrainConfig(
        out=Path(args.out), steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr, device=args.device,
        precision=args.precision, seed=args.seed, teacher=args.teacher, flow_weight=args.flow_weight,
        flow_loss=args.flow_loss, validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every, stage=args.stage, init=args.init or "",
        clip_grad_norm=args.clip_grad_norm, head_lr_scale=args.head_lr_scale, levels=args.levels, data=list(args.data),
        val=list(args.val or []),
    )
    try:
        if not (args.max_motion is None or 0 < args.max_motion <= 256):
            raise TrainingError(f"--max-motion must be between 0 and 256 pixels (got {args.max_motion})")
        motion = SyntheticMotion() if args.max_motion is None else SyntheticMotion.up_to(args.max_motion)
        validation_fraction = 0.0 if args.val else args.validation_fraction
        sources = [open_source(spec, args.max_span, validation_fraction, motion) for spec in args.data]
        val_sources = [open_source(spec, 2, 1.0, motion) for spec in args.val] if args.val else sources
        trainer = Trainer(config, sources, val_sources)
        if args.resume:
            trainer.resume()
        final = trainer.run(progress=not args.quiet)
    except OSError as exc:  # an unwritable --out, a full disk, a file that vanished mid-run
        raise CliError(f"{exc.strerror or exc}: {exc.filename or args.out}") from None
    score = "" if final is None else (f" (validation end-point error {final:.3f} px)" if args.stage == "flow"
                                      else f" (validation PSNR {final:.2f} dB)")
    print(f"weights: {config.out / 'rrin_fp16.pth'}{score}")
    return 0


# ---------------------------------------------------------------------------------------------- interpolate


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _check_model(args: argparse.Namespace) -> ModelEntry:
    """The model the filter will run; model mistakes in the command line's words, before the filter would say
    them in its own."""
    from vsrife.weights import unavailable_reason

    name = args.model or METHODS[args.method].default_model
    try:
        entry = get_model(name, args.method)
    except ValueError as exc:
        raise CliError(f"--model {name}: {exc}") from None
    if entry.method != args.method:
        raise CliError(f"--model {name} is {METHODS[entry.method].describe()}: add --method {entry.method}")
    if args.model_path is None and unavailable_reason(entry) is not None:
        what = f"--model {name}" if args.model else f"--method {args.method} (model {name})"
        if entry.obtain:
            how = entry.obtain.replace("as model_path=", "with --model-path")
            raise CliError(f"{what}: no weights to download: {how}")
        raise CliError(f"{what}: its weights are not released yet; give your own weight file with --model-path FILE")
    return entry


def _prepare_model(args: argparse.Namespace) -> None:
    """_check_model, then fetch missing weights with our progress (none with --quiet) rather than the filter's."""
    from vsrife.weights import WeightsError, ensure_cached, offline

    entry = _check_model(args)
    name = entry.name
    if args.model_path is None and not offline():
        try:
            ensure_cached(entry, progress=not args.quiet)
        except WeightsError as exc:
            raise CliError(f"model {name}: {exc}") from None


@contextmanager
def _media_errors() -> Iterator[None]:
    """The media layer's, VapourSynth's and the file system's errors as CLI errors (one line, exit code 1)."""
    import vapoursynth as vs

    from vsrife.errors import MediaError

    try:
        yield
    except (MediaError, vs.Error) as exc:  # vs.Error: a frame that failed mid-render, with the filter's message
        raise CliError(" ".join(str(exc).split())) from None
    except OSError as exc:  # an output folder that cannot be created, a full disk
        raise CliError(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)) from None


def _filter_args(args: argparse.Namespace) -> dict[str, object]:
    """The filter arguments the user gave (the rest keep the plugin's defaults), the rate's aside; a CliError for an
    option the chosen filter does not take."""
    filter_name = METHODS[args.method].filter
    given: dict[str, object] = {}
    for parameter in parameters.PARAMETERS.values():
        value = getattr(args, parameter.name, None)
        if parameter.group == "rate" or value is None:
            continue
        if filter_name not in parameter.functions:
            owners = "/".join(name for name in parameters.FILTERS if name in parameter.functions)
            raise CliError(f"{parameter.flag} is a {owners} option; {filter_name} has none")
        given[parameter.name] = value
    return given


def _plan(args: argparse.Namespace, *, progress: bool = False) -> Plan:
    from vsrife.planning import RateRequest, plan

    rate = RateRequest(multi=args.multi, factor=args.factor_num, fps=args.fps_num)
    return plan(Path(args.input), args.method, rate, _filter_args(args), start=args.start, end=args.end,
                montage=args.montage, deinterlace=args.deinterlace, image_rate=args.rate, warn=_warn,
                progress=progress)


def _is_folder(output: str) -> bool:
    """OUTPUT names a folder of frames: it ends with a slash or is an existing folder."""
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from vsrife import cluster, render

    if args.cluster is None and args.chunk_frames is not None:
        raise CliError("--chunk-frames needs --cluster")
    folder = _is_folder(args.output)
    if folder and (args.codec is not None or args.crf is not None or args.lossless):
        raise CliError("--codec, --crf and --lossless are for a video file; a folder gets lossless PNG frames")
    if folder and args.cluster is not None:
        raise CliError("--cluster writes a video file; a folder of frames is not supported with it")
    encoding = {"codec": args.codec, "crf": args.crf, "lossless": args.lossless, "overwrite": args.overwrite,
                "progress": not args.quiet, "warn": _warn}
    with _media_errors():
        plan_ = _plan(args, progress=not args.quiet)
        _prepare_model(args)
        if folder:
            written = render.interpolate_to_folder(plan_, Path(args.output), threads=args.threads,
                                                   overwrite=args.overwrite, progress=not args.quiet, warn=_warn)
            summary = f"{written} frames"
        elif args.cluster is None:
            summary = f"{render.interpolate(plan_, Path(args.output), threads=args.threads, **encoding)} frames"
        else:
            report = cluster.interpolate(
                plan_, Path(args.output), address=args.cluster,
                chunk_frames=args.chunk_frames or cluster.DEFAULT_CHUNK_FRAMES,
                threads=1 if args.threads is None else args.threads, **encoding)
            summary = f"{report.frames} frames from {len(report.chunks)} chunks"
        if not args.quiet:
            print(f"{args.output}: {summary}", file=sys.stderr)
        return 0


def _cmd_script(args: argparse.Namespace) -> int:
    from vsrife.script import script_text

    with _media_errors():
        spec = _plan(args).spec
        _check_model(args)
        print(script_text(spec), end="")
        return 0


def _cmd_images(args: argparse.Namespace) -> int:
    from vsrife.stills import images

    _prepare_model(args)
    with _media_errors():
        written = images((Path(args.img0), Path(args.img1)), args.exp, Path(args.output), args.method,
                         _filter_args(args), gif=Path(args.gif) if args.gif else None,
                         mp4=Path(args.mp4) if args.mp4 else None, fps=args.fps, overwrite=args.overwrite,
                         progress=not args.quiet, warn=_warn)
        if not args.quiet:
            print(f"{args.output}: {len(written)} frames", file=sys.stderr)
        return 0


def _argument_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """``parse`` with its ValueError as argparse's usage error."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


_PARSERS: dict[str, Callable[[str], object]] = {"int": int, "float": float, "str": str, "path": str, "clip": str}


def _add_filter_options(parser: argparse.ArgumentParser, *, rate: bool) -> None:
    """--method and an option for every filter parameter of the table (vsrife/parameters.py); the rate's (one of
    --multi, --factor, --fps) only where ``rate``."""
    parser.add_argument("--method", default="rife", choices=tuple(METHODS),
                        help=" or ".join(f"vfi.{m.filter}" for m in METHODS.values()) + " (default rife)")
    rate_group = parser.add_mutually_exclusive_group() if rate else None
    for parameter in parameters.PARAMETERS.values():
        if parameter.cli is None or (parameter.group == "rate" and rate_group is None):
            continue
        only = [name for name in parameters.FILTERS if name in parameter.functions]
        scope = "" if len(only) == len(parameters.FILTERS) else f" ({', '.join(only)} only)"
        default = parameter.default
        shown = (f" ({parameter.name}=1)" if parameter.cli.switch else "" if default is None else
                 " (default: the filter's)" if isinstance(default, Mapping) else f" (default {default})")
        options: dict[str, Any] = {"dest": parameter.name,
                                   "help": parameter.cli_help() + shown + scope}
        if parameter.cli.switch:
            options |= {"action": "store_const", "const": 1}
        else:
            options |= {"type": _argument_type(parameter.cli.parse or _PARSERS[parameter.type]),
                        "metavar": parameter.cli.metavar}
        target = rate_group if parameter.group == "rate" and rate_group is not None else parser
        target.add_argument(parameter.flag, **options)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary on stderr")


def _add_graph_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="a video file (anything BestSource decodes) or a folder of numbered images")
    parser.add_argument("--rate", type=_argument_type(parse_fraction),
                        help="frame rate of a folder of images, e.g. 24000/1001 (default 25)")
    _add_filter_options(parser, rate=True)
    parser.add_argument("--montage", action="store_true", help="the source (each frame held) left of the result")
    parser.add_argument("--start", type=int, help="first source frame to render (default 0)")
    parser.add_argument("--end", type=int, help="last source frame to render, inclusive (default the last)")
    parser.add_argument("--deinterlace", action="store_true",
                        help="an interlaced source becomes one progressive frame per field first (bwdif, twice "
                             "the frame rate); without it such a source is interpolated as it is, with a warning")


# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vsrife", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    plugin = commands.add_parser("plugin-path", help="print the path of the installed libvfi.so")
    plugin.set_defaults(run=_cmd_plugin_path)

    models = commands.add_parser("models", help="list models, download or verify their weights")
    subcommands = models.add_subparsers(dest="models_command", required=True)
    listing = subcommands.add_parser("list", help="show the known models and whether they are cached")
    listing.set_defaults(run=model_commands.list_models)
    download = subcommands.add_parser("download", help="fetch and verify model weights into the cache")
    download.add_argument("names", nargs="*", metavar="NAME", help=f"model names ({', '.join(MODELS)})")
    download.add_argument("--all", action="store_true", help="every model in the registry")
    download.add_argument("--pinned", action="store_true",
                          help="every model whose weights the registry pins by SHA-256 (what the tests use)")
    download.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    download.set_defaults(run=model_commands.download_models)
    verify = subcommands.add_parser(
        "verify", help="re-hash cached weight files against the registry's SHA-256 (exit code 1 if corrupt)")
    verify.add_argument("names", nargs="*", metavar="NAME", help=f"model names ({', '.join(MODELS)})")
    verify.add_argument("--all", action="store_true", help="every model in the registry")
    verify.set_defaults(run=model_commands.verify_models)

    train = commands.add_parser("train", help="train an interpolation network (RRIN)")
    train_commands = train.add_subparsers(dest="train_command", required=True)
    rrin = train_commands.add_parser(
        "rrin", help="train RRIN from videos, folders of frames and synthetic scenes",
        description="Data specs: PATH[@START:END] (a video or a folder of numbered frames, optionally frames "
                    "START..END-1), synthetic[:DIR] (moving layers cut from the images in DIR; default "
                    "scikit-image's sample images). See docs/TRAINING.md.")
    rrin.add_argument("--data", nargs="+", required=True, metavar="SPEC", help="training data specs")
    rrin.add_argument("--stage", default="joint", choices=("flow", "fuse", "joint"),
                      help="flow: the flow net alone on bidirectional flows; fuse: the other three nets on the "
                           "image with the flow net frozen; joint: everything (default joint)")
    rrin.add_argument("--init", metavar="WEIGHTS",
                      help="start from these weights (a run's checkpoint.pt or rrin_fp16.pth) instead of a fresh init")
    rrin.add_argument("--max-motion", type=float, metavar="PX",
                      help="synthetic scenes: foreground layers move up to PX pixels per axis, the background half "
                           "(default 24)")
    rrin.add_argument("--clip-grad-norm", type=float, default=0.0, metavar="X",
                      help="clip the gradient's norm to X (default 0: no clipping)")
    rrin.add_argument("--head-lr-scale", type=float, default=1.0, metavar="X",
                      help="learning-rate factor of each trained U-Net's last convolution, an output scale for "
                           "Adam (default 1)")
    rrin.add_argument("--levels", type=int, default=1,
                      help="run the flow net coarse to fine over this many levels in training and validation "
                           "(default 1: one pass; the flow stage supervises every level)")
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

    interpolate = commands.add_parser(
        "interpolate", help="interpolate a video into a smoother one, audio and subtitles kept",
        description="Decodes INPUT (a video, or a folder of numbered images shown at --rate) with BestSource, runs "
                    "core.vfi.RIFE or RRIN and encodes with ffmpeg, keeping the audio, subtitles, attachments, "
                    "cover art, chapters, timecode and metadata (copied where the container allows), the colour "
                    "description, the display geometry (pixel aspect ratio, rotation), the size and HDR10 "
                    "metadata; a --start/--end cut applies to every stream; what cannot be kept is said in a "
                    "warning, what cannot work is refused before any frame is made. OUTPUT ending in / (or an "
                    "existing folder) gets numbered PNGs. Files are written under a temporary name and renamed when "
                    "complete. README.md, section Command line, has every rule.")
    _add_graph_options(interpolate)
    interpolate.add_argument("-o", "--output", required=True,
                             help="output file (its extension picks the container), or a folder for PNG frames "
                                  "(a name ending in /, or an existing folder)")
    interpolate.add_argument("--codec", help="ffmpeg video encoder (default libx264; libx265 for sources of more "
                                             "than 8 bits or HDR, which keeps HDR10 metadata; libvpx-vp9 for .webm; "
                                             "the container's own where it takes none of those)")
    quality = interpolate.add_mutually_exclusive_group()
    quality.add_argument("--crf", type=int, help="constant-quality level of the encoder (libx264 default 16)")
    quality.add_argument("--lossless", action="store_true",
                         help="every sample kept (libx264, libx264rgb, libx265, vp9, svt-av1, ffv1; RGB as RGB in "
                              "ffv1 and libx264rgb)")
    interpolate.add_argument("-y", "--overwrite", action="store_true",
                             help="replace OUTPUT if it exists (a folder: the images in it)")
    interpolate.add_argument("--threads", "--cpus-per-chunk", type=int, metavar="N",
                             help="torch threads that render (default: one per core; with --cluster: 1 per chunk, "
                                  "and Ray gives each chunk N cores); the same N on the same kind of CPU gives the "
                                  "same frames, with or without --cluster")
    cluster = interpolate.add_argument_group(
        "cluster", "render chunks of the output as Ray tasks (the `cluster` extra); INPUT and OUTPUT must be on "
                   "storage every node reads and writes at the same path")
    cluster.add_argument("--cluster", metavar="local|ADDRESS",
                         help="`local`: a Ray runtime on this machine; ADDRESS: join the cluster of `ray start "
                              "--head` there (host:port)")
    cluster.add_argument("--chunk-frames", type=int, metavar="N",
                         help="output frames per chunk (default 1000); chunks start on source frames")
    interpolate.set_defaults(run=_cmd_interpolate)

    script = commands.add_parser("script", help="print the .vpy that `interpolate` runs, for vspipe or an editor",
                                 description="Prints the VapourSynth script that `interpolate` with the same "
                                             "options runs; render it with vspipe -c y4m SCRIPT - | ffmpeg -i - OUT.")
    _add_graph_options(script)
    script.set_defaults(run=_cmd_script)

    stills = commands.add_parser("images", help="the frames between two images, as PNGs (and a GIF or MP4)",
                                 description="Writes the 2^EXP + 1 frames from IMG0 to IMG1 (both included) as "
                                             "DIR/frame_NNN.png; 16-bit images give 16-bit PNGs. DIR must be new "
                                             "or empty (--overwrite replaces the images in it); images with an "
                                             "alpha channel are refused.")
    stills.add_argument("img0", metavar="IMG0")
    stills.add_argument("img1", metavar="IMG1")
    stills.add_argument("--exp", type=int, default=1, help="2^EXP steps from IMG0 to IMG1 (default 1)")
    stills.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the PNG frames")
    stills.add_argument("--gif", help="also write an animated GIF of the frames")
    stills.add_argument("--mp4", help="also write an H.264 MP4 of the frames")
    stills.add_argument("--fps", type=_argument_type(parse_fraction), default=25,
                        help="frame rate of the GIF and MP4 (default 25)")
    _add_filter_options(stills, rate=False)
    stills.add_argument("-y", "--overwrite", action="store_true",
                        help="replace the images in DIR, and the GIF or MP4, if they exist")
    stills.set_defaults(run=_cmd_images)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except VfiError as exc:  # every error of the package whose message is meant for the user
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:  # ffmpeg-python, tqdm, imageio-ffmpeg: the `cli` extra
        print(f"error: the Python module {exc.name or exc} is missing; install the command line's extra: "
              "pip install 'vapoursynth-vfi[cli]'", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"interrupted ({signal.Signals(signum).name}); nothing written", file=sys.stderr)
        return 128 + signum
