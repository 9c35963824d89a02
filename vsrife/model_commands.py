"""``python -m vsrife models list|download|verify``: the registry's models, their cache and their hashes."""

from __future__ import annotations

import argparse
import sys

from vsrife.errors import CliError
from vsrife.registry import FAMILIES, METHODS, MODELS, ModelEntry, get_model


def _format_size(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def _model_row(entry: ModelEntry) -> list[str]:
    from vsrife.weights import cache_status, expected_files, hash_origin

    # the registry's hash and size, or those recorded at the first download; files without either show none
    known = expected_files(entry)
    hashes = ",".join(w.sha256[:12] if w is not None and w.sha256 and w.released else "-" for w in known)
    sizes = [w.size if w is not None else None for w in known]
    size = _format_size(None if None in sizes else sum(s for s in sizes if s is not None))
    psnr = "-" if entry.reference_psnr_db is None else f"{entry.reference_psnr_db:.2f} dB"
    filter_name = f"vfi.{METHODS[entry.method].filter}"
    return [entry.name, entry.family, entry.architecture, str(entry.padding), "yes" if entry.ensemble else "no",
            size, hashes, hash_origin(entry), cache_status(entry), psnr, filter_name]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def list_models(args: argparse.Namespace) -> int:
    from vsrife.weights import cache_dir, cache_problem, unavailable_reason

    header = ["NAME", "FAMILY", "ARCHITECTURE", "PADDING", "ENSEMBLE", "SIZE", "SHA256", "HASH", "CACHED",
              "REFERENCE PSNR", "FILTER"]
    _print_table(header, [_model_row(entry) for entry in MODELS.values()])
    problem = cache_problem()
    print(f"\ncache: {cache_dir()}" + ("" if problem is None else f" (unusable: {problem}; set VSRIFE_MODEL_DIR)"))
    print("\nHASH: pinned = the registry's SHA-256; first-use = none pinned: recorded in the cache at the first "
          "download,\n      once the file proved to be the model's weights; recorded = every load is checked "
          "against that record")
    print("\nfamilies:")
    for family, description in FAMILIES.items():
        print(f"  {family}: {description}")
    notes = [reason for entry in MODELS.values() if (reason := unavailable_reason(entry)) is not None]
    if notes:
        print("\nnot downloadable (use model_path=):")
        for note in notes:
            print(f"  {note}")
    return 0


def _selected_models(args: argparse.Namespace) -> list[ModelEntry]:
    pinned = getattr(args, "pinned", False)
    if sum((args.all, pinned, bool(args.names))) > 1:
        raise CliError("give model names, --all or --pinned, not more than one")
    if not args.all and not pinned and not args.names:
        raise CliError(f"name the models to {args.models_command} or use --all; available: {', '.join(MODELS)}")
    if pinned:
        return [entry for entry in MODELS.values() if all(f.pinned and f.sources for f in entry.files)]
    try:
        return list(MODELS.values()) if args.all else [get_model(name) for name in args.names]
    except ValueError as exc:
        raise CliError(str(exc)) from None


def download_models(args: argparse.Namespace) -> int:
    from vsrife.weights import WeightsError, ensure_cached, hash_origin, unavailable_reason

    bulk = args.all or args.pinned  # a selection goes on past a model it cannot fetch
    failed = []
    for entry in _selected_models(args):
        reason = unavailable_reason(entry)
        if reason is not None:
            if not bulk:
                raise CliError(reason)
            print(f"{entry.name}: skipped: {reason}")
            continue
        first_use = hash_origin(entry) == "first-use"
        try:
            paths = ensure_cached(entry, progress=not args.quiet)
        except WeightsError as exc:
            if not bulk:
                raise CliError(f"model {entry.name}: {exc}") from None
            print(f"error: model {entry.name}: {exc}", file=sys.stderr)
            failed.append(entry.name)
            continue
        check = "sha256 recorded at this first download" if first_use else "sha256 verified"
        for role, path in paths.items():
            print(f"{entry.name} {role}: {path} ({check})")
    if failed:
        raise CliError(f"{len(failed)} models could not be downloaded: {', '.join(failed)}")
    return 0


def _verify_line(entry: ModelEntry) -> tuple[str, bool]:
    """The `models verify` line for ``entry``, and whether one of its cached files is corrupt."""
    from vsrife.weights import WeightsError, cached_path, hash_origin, rehash_cached

    if entry.model_path_only:
        return f"{entry.name}: no released file (model_path only), nothing to verify", False
    if not entry.released:
        return f"{entry.name}: no released file (weights not released yet), nothing to verify", False
    try:
        matches = rehash_cached(entry)
        origin = hash_origin(entry)
    except WeightsError as exc:  # a cached file or record that cannot be read is as bad as a corrupt one
        return f"{entry.name}: {exc}", True
    against = "the registry" if origin == "pinned" else "the hash recorded at its first download"
    corrupt = [str(path) for path, ok in matches.items() if not ok]
    if corrupt:
        return (f"{entry.name}: CORRUPT {', '.join(corrupt)} (SHA-256 differs from {against}; "
                f"`python -m vsrife models download {entry.name}` replaces it)"), True
    missing = [w.filename for w in entry.files if cached_path(entry, w) not in matches]
    if len(missing) == len(entry.files):
        return f"{entry.name}: not cached", False
    checked = "" if origin == "pinned" else f" ({against})"
    if missing:
        return f"{entry.name}: ok{checked}, but {', '.join(missing)} not cached", False
    return f"{entry.name}: ok{checked}", False


def verify_models(args: argparse.Namespace) -> int:
    any_corrupt = False
    for entry in _selected_models(args):
        line, corrupt = _verify_line(entry)
        print(line, flush=True)  # one model at a time: hashing the larger files takes a moment
        any_corrupt |= corrupt
    return 1 if any_corrupt else 0
