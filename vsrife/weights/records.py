"""What a cached file must hold and whether it does: the registry's SHA-256 and size, or the hash record of its first
download (trust on first use), checked by hashing the content anew on every call."""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from vsrife.registry import ModelEntry, WeightFile

from .cache import cached_path
from .errors import WeightsError

CHUNK = 1 << 20  # bytes read, hashed or copied at a time
ContentState = Literal["ok", "missing", "corrupt"]
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


def anchor(path: Path, weight: WeightFile) -> str:
    """Where the expected hash of the file ``path`` comes from, for messages: "the registry" or its record."""
    if weight.sha256 is not None:
        return "the registry"
    record = read_record(path)
    if record is None:
        return "no record"
    return f"the record {record_path(path)} of its first download ({record.recorded[:10]}, from {record.source})"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
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
