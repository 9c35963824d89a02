"""Where the cache is (``cache_dir()``), where each file lives in it, and what to say when it cannot be written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from vsrife.registry import ModelEntry, WeightFile

from .errors import CacheUnusableError


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


def cache_unusable(error: OSError) -> CacheUnusableError:
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
    return CacheUnusableError(f"cannot write to the model cache {root} ({reason}); {remedy}")
