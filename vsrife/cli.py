"""``python -m vsrife``: where the plugin is, which models exist, fetch their weights."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

from vsrife import __version__
from vsrife.registry import MODELS, ModelEntry, get_model

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

    hashes = ",".join(w.sha256[:12] for w in entry.files)
    psnr = "-" if entry.reference_psnr_db is None else f"{entry.reference_psnr_db:.2f} dB"
    return [entry.name, entry.architecture, _format_size(entry.total_size), hashes, cache_status(entry), psnr]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _cmd_models_list(args: argparse.Namespace) -> int:
    from vsrife.weights import cache_dir

    header = ["NAME", "ARCHITECTURE", "SIZE", "SHA256", "CACHED", "REFERENCE PSNR"]
    _print_table(header, [_model_row(entry) for entry in MODELS.values()])
    print(f"\ncache: {cache_dir()}")
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
    from vsrife.weights import WeightsError, ensure_cached

    for entry in _selected_models(args):
        try:
            paths = ensure_cached(entry, progress=not args.quiet)
        except WeightsError as exc:
            raise CliError(f"model {entry.name}: {exc}") from None
        for role, path in paths.items():
            print(f"{entry.name} {role}: {path} (sha256 verified)")
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
