"""Which files a filter instance loads: the user's model_path, else the cache (fetched into it unless offline)."""

from __future__ import annotations

from pathlib import Path

from vsrife.registry import ModelEntry

from .cache import cache_dir, cache_problem, cached_path, offline
from .errors import WeightsError
from .fetch import ensure_cached, unavailable_reason
from .records import anchor, cached_state


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
                f"SHA-256 in {anchor(path, weight)}) and VSRIFE_OFFLINE=1 forbids fetching a good copy; {repair}"
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
