"""Temporary files in the cache that name their owner (host and process), so the next fetch can remove the ones
whose process is gone; every file reaches its final name by ``os.replace`` only when complete."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .cache import cache_dir, cache_unusable

# A temporary whose owner cannot be checked (another machine, the naming of older versions) is removed only this
# long after its last change, so that a slow but live download elsewhere keeps its files.
_UNKNOWN_OWNER_STALE_S = 24 * 3600.0


def owner_tag() -> str:
    """``<host>-<pid>`` for temp names; the host part also names the PID namespace (containers share hosts)."""
    host = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"
    try:
        host += f"_{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        pass  # no /proc (macOS, Windows): the host name alone
    return f"{host}-{os.getpid()}"


@contextmanager
def atomic_output(dest: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file next to ``dest`` (and its path) that replaces ``dest`` when the block succeeds and is removed
    otherwise."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.{owner_tag()}.", suffix=".part")
    except OSError as exc:
        raise cache_unusable(exc) from None
    tmp = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                yield f, tmp
        except OSError as exc:  # the sources report their own read errors: this is the temp file (full disk)
            raise cache_unusable(exc) from None
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared
            os.replace(tmp, dest)
        except OSError as exc:
            raise cache_unusable(exc) from None
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
    host = owner_tag().rsplit("-", 1)[0]
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
